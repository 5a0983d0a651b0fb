// ExecSync: runs a command in a running container with `runc exec` (which takes the
// container's env, cwd, user and capabilities from its spec), captures stdout/stderr (each
// capped at 16 MiB as the CRI asks) and enforces the timeout.
import { spawn } from 'node:child_process';
import type { Runc } from './runc.js';

const CAP = 16 * 1024 * 1024;

export interface ExecResult { stdout: Buffer; stderr: Buffer; exitCode: number; timedOut: boolean }

export function execSync(runc: Runc, id: string, cmd: string[], timeoutSec: number): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(runc.bin, runc.args('exec', id, ...cmd), { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = []; const err: Buffer[] = [];
    let outN = 0; let errN = 0;
    child.stdout!.on('data', (b: Buffer) => { if (outN < CAP) { out.push(b.subarray(0, CAP - outN)); outN += b.length; } });
    child.stderr!.on('data', (b: Buffer) => { if (errN < CAP) { err.push(b.subarray(0, CAP - errN)); errN += b.length; } });
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    if (timeoutSec > 0) {
      timer = setTimeout(() => {
        timedOut = true;
        // runc forwards SIGTERM/SIGINT to the process it runs; SIGKILL would orphan it.
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 2000).unref();
      }, timeoutSec * 1000);
    }
    child.on('error', (e) => { if (timer) clearTimeout(timer); reject(new Error(`cannot run runc exec: ${e.message}`)); });
    // Background processes the command left behind may keep its pipes open: once runc exec
    // itself has exited, wait briefly for buffered output and then stop reading.
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      let pending = 2;
      const finish = () => {
        if (--pending > 0) return;
        clearTimeout(grace);
        resolve({ stdout: Buffer.concat(out), stderr: Buffer.concat(err), exitCode: code ?? (signal ? 128 + 15 : 255), timedOut });
      };
      const grace = setTimeout(() => { pending = 1; child.stdout!.destroy(); child.stderr!.destroy(); finish(); }, 200);
      if (child.stdout!.readableEnded) finish(); else child.stdout!.once('end', finish);
      if (child.stderr!.readableEnded) finish(); else child.stderr!.once('end', finish);
    });
  });
}
