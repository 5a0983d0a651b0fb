// One daemon shoald runs as a child process (the built-in runtime, the built-in network plugin):
// started with a parent-death signal so it never outlives shoald, recorded in a pid file so the
// next shoald can stop one a killed predecessor left, its stderr re-logged line by line, started
// again with a growing delay when it exits, and ready once it answers on its Unix socket.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

/** A client of the child's socket: `ready()` succeeds once the child serves. */
export interface ReadinessProbe {
  ready(): Promise<unknown>;
  close(): void;
}

export interface ChildDaemonOptions {
  /** Prefix of its lines in shoald's log, e.g. `runtime`. */
  logName: string;
  /** The program's name in messages, e.g. `shoal-runtime`. */
  program: string;
  /** Arguments of `node`: the entry point, then its flags. */
  args: string[];
  /** The Unix socket it serves on. */
  socket: string;
  pidFile: string;
  /** A client for the readiness check (made once per wait, closed after it). */
  probe(): ReadinessProbe;
  /** Whether a process with this command line is one of ours on this socket (a pid file can be stale and the pid reused). */
  isOurs(cmdline: string[]): boolean;
  /** Runs before every start (directories, a stale socket). */
  prepare?(): void;
  /** Dropped from the start of its stderr lines (the program names itself; the log prefix already does). */
  stderrPrefix?: string;
  /** What survives it, said when one an earlier shoald left is stopped. */
  staleNote: string;
  /** What survives it, said when it exits (none: nothing said). */
  exitNote?: string;
  /** How often readiness is checked. */
  pollMs?: number;
  /** A child that ran this long before it exited starts the back-off afresh (default 60 s). */
  stableMs?: number;
  log(m: string): void;
}

/** Grace between SIGTERM and SIGKILL, for the child and for a stale one. */
const STOP_GRACE_MS = 5000;
/** The restart delay grows only while a child keeps failing: one that ran this long before it
 * exited is started again after the first delay (as Kubernetes resets its crash-loop back-off),
 * not after the 10 s that a few crashes spread over weeks would otherwise have built up. */
const STABLE_RUN_MS = 60_000;

export class ChildDaemon {
  private proc?: ChildProcess;
  private stopped = false;
  private restarts = 0;

  constructor(private readonly o: ChildDaemonOptions) {}

  /** The running child's pid (none while it is down). */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Stops a stale instance, starts the child and resolves once it answers (else rejects after timeoutMs). */
  async start(timeoutMs: number): Promise<void> {
    await this.stopStale();
    this.spawn();
    await this.waitReady(timeoutMs);
  }

  /** One a killed shoald left running holds our socket and state: stop it first. */
  private async stopStale(): Promise<void> {
    let pid = 0;
    try {
      pid = Number(readFileSync(this.o.pidFile, 'utf8').trim());
    } catch {
      return;
    }
    if (!pid || !this.isOurs(pid)) return;
    this.o.log(`${this.o.logName}: stopping the ${this.o.program} (pid ${pid}) an earlier shoald left running; ${this.o.staleNote}`);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const end = Date.now() + STOP_GRACE_MS;
    while (this.isOurs(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    if (this.isOurs(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  private isOurs(pid: number): boolean {
    let cmd: string[];
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      return false;
    }
    return this.o.isOurs(cmd);
  }

  private spawn(): void {
    this.o.prepare?.();
    // setpriv --pdeathsig: the child is stopped when shoald dies, even by SIGKILL; what it
    // manages (containers, the data path) is not its children and stays.
    const p = spawn('setpriv', ['--pdeathsig', 'TERM', '--', process.execPath, ...this.o.args], { stdio: ['ignore', 'ignore', 'pipe'] });
    const startedAt = Date.now();
    this.proc = p;
    writeFileSync(this.o.pidFile, String(p.pid));
    const strip = this.o.stderrPrefix;
    let buf = '';
    p.stderr!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (strip && line.startsWith(strip)) line = line.slice(strip.length);
        if (line) this.o.log(`${this.o.logName}: ${line}`);
      }
    });
    p.on('exit', (code, sig) => {
      if (this.proc !== p) return;
      this.proc = undefined;
      if (this.stopped) return;
      if (Date.now() - startedAt >= (this.o.stableMs ?? STABLE_RUN_MS)) this.restarts = 0;
      const delay = Math.min(500 * 2 ** this.restarts++, 10_000);
      const note = this.o.exitNote ? `${this.o.exitNote}; ` : '';
      this.o.log(`${this.o.logName}: ${this.o.program} exited (${sig ?? `code ${code}`}); ${note}starting it again in ${delay} ms`);
      setTimeout(() => {
        if (!this.stopped) this.spawn();
      }, delay).unref();
    });
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    const c = this.o.probe();
    try {
      for (;;) {
        if (existsSync(this.o.socket)) {
          try {
            await c.ready();
            this.restarts = 0;
            return;
          } catch {
            /* not serving yet */
          }
        }
        if (this.stopped) throw new Error('shoald is stopping');
        if (Date.now() > end) throw new Error(`${this.o.program} did not answer on ${this.o.socket} within ${timeoutMs / 1000} s; see the ${this.o.logName} lines in shoald's log`);
        await new Promise((r) => setTimeout(r, this.o.pollMs ?? 50));
      }
    } finally {
      c.close();
    }
  }

  /** Stops the child: SIGTERM, then SIGKILL after a grace; it is not started again. */
  async stop(): Promise<void> {
    this.stopped = true;
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        p.kill('SIGKILL');
        resolve();
      }, STOP_GRACE_MS);
      p.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      p.kill('SIGTERM');
    });
    rmSync(this.o.pidFile, { force: true });
  }
}
