// Long-running lab processes: started detached inside a host's namespace with their output in a
// log file, and identified by (pid, start time) so a recycled pid is never mistaken for them.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { pidInNetns, procState } from './netns.js';

export interface ProcRef {
  pid: number;
  /** Start time in clock ticks since boot (/proc/PID/stat field 22). */
  startTime: number;
}

export function startTimeOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state), so field 22 is fields[19].
    const v = Number(fields[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export function isAlive(p: ProcRef | undefined): boolean {
  if (!p) return false;
  return procState(p.pid) !== undefined && startTimeOf(p.pid) === p.startTime;
}

/**
 * Starts `argv` inside network namespace `ns`, detached from the caller (its own session, no
 * stdin, stdout and stderr appended to `logFile`). `ip netns exec` execs the command in place,
 * so the pid returned is the command's own.
 */
export async function startDetached(ns: string, argv: string[], logFile: string, env?: NodeJS.ProcessEnv): Promise<ProcRef> {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { detached: true, stdio: ['ignore', fd, fd], env: env ?? process.env });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', (e) => reject(new Error(`could not start ${argv.join(' ')} in ${ns}: ${e.message}`)));
      child.once('spawn', () => resolve(child.pid!));
    });
    child.unref();
    // Return once `ip` has entered the namespace (the pid is then the command's), so callers
    // never see the process still in the caller's namespace.
    const end = Date.now() + 10_000;
    for (;;) {
      const st = startTimeOf(pid);
      if (st === undefined || procState(pid) === undefined) throw new Error(`${argv.join(' ')} in ${ns} exited at once; see ${logFile}`);
      if (pidInNetns(pid, ns)) return { pid, startTime: st };
      if (Date.now() > end) throw new Error(`${argv.join(' ')} did not enter network namespace ${ns} within 10 s`);
      await sleep(5);
    }
  } finally {
    closeSync(fd);
  }
}

export function signal(p: ProcRef, sig: NodeJS.Signals): boolean {
  if (!isAlive(p)) return false;
  try {
    process.kill(p.pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Waits until none of `pids` is alive; false if some survive past `ms`. */
export async function waitGone(pids: number[], ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (pids.every((p) => procState(p) === undefined)) return true;
    if (Date.now() > end) return false;
    await sleep(50);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
