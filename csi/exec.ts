// Runs a host tool (losetup, mkfs.ext4, mount, ...) and collects its output; a non-zero exit is
// an error naming the command and quoting what it said.
import { spawn } from 'node:child_process';

export interface RunResult { code: number; stdout: string; stderr: string }

export class CommandError extends Error {
  constructor(readonly cmd: string, readonly result: RunResult) {
    super(`${cmd} failed (exit ${result.code}): ${(result.stderr.trim() || result.stdout.trim()).slice(0, 600)}`);
  }
}

export function run(cmd: string, args: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', (e) => { if (timer) clearTimeout(timer); reject(new Error(`cannot run ${cmd}: ${e.message} (is it installed? scripts/setup.sh installs it)`)); });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const r = { code: code ?? (signal ? 128 + 9 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (r.code !== 0 && !opts.allowFail) reject(new CommandError(`${cmd} ${args.join(' ')}`, r));
      else resolve(r);
    });
  });
}
