// A long-lived shell that runs the runtime's short host commands (namespace creation, overlay
// mount, FIFOs) on request. Why: spawning a process from Node costs a fork of the whole Node
// process; a small shell forks itself instead. With busybox (static, its applets run without
// a dynamic loader and `mkfifo` without exec) a pod's namespaces cost one fork where
// `unshare` + `ip` from Node cost two dynamic programs and a Node fork. Without busybox the
// system `sh` is used: same scripts, external programs.
//
// Protocol: each request is one script line, run in a subshell with stdin from /dev/null and
// stdout+stderr captured; the helper then prints a marker line with the exit status. Requests
// are answered in order (one shell, one at a time).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

interface Pending { script: string; resolve: (out: string) => void; reject: (e: Error) => void }

let busyboxChecked: boolean | undefined;
function haveBusybox(): boolean {
  busyboxChecked ??= spawnSync('busybox', ['true'], { stdio: 'ignore' }).status === 0;
  return busyboxChecked;
}

export class HostHelper {
  private proc: ChildProcess | undefined;
  private readonly marker = `__shoal_done_${randomBytes(8).toString('hex')}`;
  private out = '';
  private readonly queue: Pending[] = [];
  private current: Pending | undefined;

  private start(): ChildProcess {
    const [cmd, args] = haveBusybox() ? ['busybox', ['sh']] : ['sh', []];
    // Its own session: container monitors it starts must not get the runtime's terminal signals.
    const p = spawn(cmd, args as string[], { stdio: ['pipe', 'pipe', 'ignore'], detached: true });
    p.stdout!.setEncoding('utf8');
    p.stdout!.on('data', (s: string) => this.onData(s));
    const fail = (why: string) => {
      if (this.proc !== p) return;
      this.proc = undefined;
      const e = new Error(`host helper shell (${cmd}) ${why}; the request was not completed, retry it`);
      this.current?.reject(e);
      this.current = undefined;
      this.out = '';
      this.next(); // a new helper for whatever is queued
    };
    p.on('error', (e) => fail(`could not run: ${e.message}`));
    p.on('exit', (code, sig) => fail(`exited (${sig ?? code})`));
    p.stdin!.on('error', () => {}); // reported through 'exit'
    return p;
  }

  private onData(s: string): void {
    this.out += s;
    const tag = `\n${this.marker} `;
    const i = this.out.indexOf(tag);
    if (i < 0) return;
    const end = this.out.indexOf('\n', i + tag.length);
    if (end < 0) return;
    const code = Number(this.out.slice(i + tag.length, end));
    const output = this.out.slice(0, i);
    this.out = this.out.slice(end + 1);
    const cur = this.current!;
    this.current = undefined;
    if (code === 0) cur.resolve(output);
    else cur.reject(new Error(`host command failed (exit ${code}): ${output.trim() || cur.script.slice(0, 200)}`));
    this.next();
  }

  private next(): void {
    if (this.current || this.queue.length === 0) return;
    this.current = this.queue.shift()!;
    this.proc ??= this.start();
    // The leading newline keeps the marker on a line of its own whatever the output ended with.
    this.proc.stdin!.write(`(${this.current.script}\n) </dev/null 2>&1; printf '\\n%s %d\\n' ${this.marker} $?\n`);
  }

  /** Runs a shell script line (arguments already quoted with shellQuote); resolves to its output. */
  run(script: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.queue.push({ script, resolve, reject });
      this.next();
    });
  }

  /** Runs one command with quoted arguments. */
  exec(cmd: string, args: string[]): Promise<string> {
    return this.run([cmd, ...args].map(shellQuote).join(' '));
  }

  close(): void {
    const p = this.proc;
    this.proc = undefined;
    p?.stdin?.end();
  }
}
