// Runs a host command to completion and collects its output; a non-zero exit is an error that
// names the command and quotes its stderr.
import { spawn } from 'node:child_process';

export interface CommandResult { code: number; stdout: string; stderr: string }

export function runCommand(cmd: string, args: string[], opts: { allowFail?: boolean; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: opts.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    child.on('error', (e) => reject(new Error(`cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code, signal) => {
      const r = { code: code ?? 128 + (signal ? 9 : 0), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (r.code !== 0 && !opts.allowFail) {
        reject(new Error(`${cmd} ${args.slice(0, 6).join(' ')} failed (exit ${r.code}${signal ? ', ' + signal : ''}): ${r.stderr.trim() || r.stdout.trim()}`));
      } else resolve(r);
    });
  });
}
