// Long-running lab processes: started detached inside a host's namespace with their output in a
// log file, and identified by (pid, start time) so a recycled pid is never mistaken for them.
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
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

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  /** Wait until the log (from where it was at the start) matches `pattern`. On a timeout the
   * process and its process group are killed, so no half-started daemon is left behind. */
  ready?: { pattern: RegExp; timeoutMs: number; what?: string };
}

/**
 * Starts `argv` inside network namespace `ns`, detached from the caller (its own session and
 * process group, no stdin, stdout and stderr appended to `logFile`). nsenter execs the command
 * in place, so the pid returned is the command's own. Whenever it gives up (the process
 * never entered the namespace, or never became ready), it kills the process group first and says
 * so in the error.
 */
export async function startDetached(ns: string, argv: string[], logFile: string, o: StartOptions = {}): Promise<ProcRef> {
  const what = o.ready?.what ?? argv.join(' ');
  const from = logSize(logFile);
  const fd = openSync(logFile, 'a');
  let pid: number;
  try {
    // nsenter, not `ip netns exec`: that one mounts a fresh sysfs for the namespace, which hides
    // /sys/fs/cgroup from the daemon (and from the runtime and runc it starts).
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { detached: true, stdio: ['ignore', fd, fd], env: o.env ?? process.env });
    pid = await new Promise<number>((resolve, reject) => {
      child.once('error', (e) => reject(new Error(`could not start ${argv.join(' ')} in ${ns}: ${e.message}`)));
      child.once('spawn', () => resolve(child.pid!));
    });
    child.unref();
  } finally {
    closeSync(fd);
  }
  // Return once `ip` has entered the namespace (the pid is then the command's), so callers
  // never see the process still in the caller's namespace.
  const end = Date.now() + 10_000;
  let ref: ProcRef;
  for (;;) {
    const st = startTimeOf(pid);
    if (st === undefined || procState(pid) === undefined) {
      await killGroup(pid);
      throw new Error(`${what} in ${ns} exited at once; last lines of ${logFile}:\n${tail(logFile, from)}`);
    }
    if (pidInNetns(pid, ns)) {
      ref = { pid, startTime: st };
      break;
    }
    if (Date.now() > end) {
      await killGroup(pid);
      throw new Error(`${what} did not enter network namespace ${ns} within 10 s; killed it (process group ${pid})`);
    }
    await sleep(5);
  }
  if (!o.ready) return ref;
  const readyEnd = Date.now() + o.ready.timeoutMs;
  for (;;) {
    if (o.ready.pattern.test(readFrom(logFile, from))) return ref;
    if (!isAlive(ref)) {
      await killGroup(pid); // what it started may outlive it
      throw new Error(`${what} exited during start-up; last lines of ${logFile}:\n${tail(logFile, from)}`);
    }
    if (Date.now() > readyEnd) {
      const killed = await killGroup(pid);
      throw new Error(`${what} did not report ready within ${o.ready.timeoutMs / 1000} s; ${killed ? `killed it (SIGKILL to process group ${pid})` : `could not kill process group ${pid}: stop it by hand`} so it does not run half-started; last lines of ${logFile}:\n${tail(logFile, from)}`);
    }
    await sleep(50);
  }
}

/** SIGKILL to the process group `pgid` (a detached child leads its own); true once its leader is
 * gone. */
export async function killGroup(pgid: number): Promise<boolean> {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // already gone
  }
  return waitGone([pgid], 5000);
}

function logSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** The part of `file` after byte `offset`. */
export function readFrom(file: string, offset: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    if (size <= offset) return '';
    const buf = Buffer.alloc(size - offset);
    readSync(fd, buf, 0, buf.length, offset);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function tail(file: string, from: number, lines = 15): string {
  return readFrom(file, from).split('\n').slice(-lines - 1).join('\n');
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
