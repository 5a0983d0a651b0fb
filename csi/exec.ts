// Runs host tools (losetup, mkfs.ext4, mount, ...) and collects their output; a non-zero exit is
// an error naming the command and quoting what it said.
//
// Their stderr is merged into stdout (RunResult.stdout); callers read messages from there.
//
// The tools are started by small resident shells rather than by this process: forking a Node
// process of this size costs several times what a shell's fork does (measured here: ~35 ms
// against ~10 ms under load), and a stage runs three tools. Each shell runs one command at a
// time, reading it from its stdin and writing back its exit status and output, framed; more
// shells are started when all are busy, up to a few, and a shell whose command overruns its
// deadline is killed with its process group and replaced.
import { spawn, type ChildProcess } from 'node:child_process';

export interface RunResult { code: number; stdout: string; stderr: string }

export class CommandError extends Error {
  constructor(readonly cmd: string, readonly result: RunResult) {
    super(`${cmd} failed (exit ${result.code}): ${(result.stderr.trim() || result.stdout.trim()).slice(0, 600)}`);
  }
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const MARK = '\u0001SHOAL-CSI';
// Runs "$@" (stderr merged into stdout: messages are what is wanted of it), then prints a header
// with the exit status and the output's length in bytes (LC_ALL=C), then the output. Only the
// command itself is forked: the rest is shell builtins.
const PRELUDE = `export LC_ALL=C
r() { o=$("$@" 2>&1 </dev/null); c=$?; printf '${MARK} %d %d\\n%s' "$c" "\${#o}" "$o"; }
`;

interface Job { line: string; resolve: (r: RunResult) => void; reject: (e: Error) => void; timeoutMs: number }

class Shell {
  readonly proc: ChildProcess;
  private buf = Buffer.alloc(0);
  job: Job | undefined;
  private timer: NodeJS.Timeout | undefined;
  dead = false;

  constructor(private readonly onIdle: (s: Shell) => void, private readonly onDead: (s: Shell) => void) {
    this.proc = spawn('/bin/sh', [], { stdio: ['pipe', 'pipe', 'inherit'], detached: true });
    this.proc.stdin!.write(PRELUDE);
    this.proc.stdout!.on('data', (b: Buffer) => { this.buf = Buffer.concat([this.buf, b]); this.parse(); });
    this.proc.stdin!.on('error', () => {});
    this.proc.on('exit', () => this.die(new Error('the helper shell exited')));
    this.proc.on('error', (e) => this.die(e));
    this.proc.unref();
    (this.proc.stdout as unknown as { unref?: () => void }).unref?.();
    (this.proc.stdin as unknown as { unref?: () => void }).unref?.();
  }

  send(job: Job): void {
    this.job = job;
    this.timer = setTimeout(() => {
      try { process.kill(-this.proc.pid!, 'SIGKILL'); } catch { /* gone */ }
      this.die(new Error(`timed out after ${job.timeoutMs} ms`));
    }, job.timeoutMs);
    this.proc.stdin!.write(job.line);
  }

  private parse(): void {
    const nl = this.buf.indexOf(10);
    if (nl < 0 || !this.job) return;
    const head = this.buf.subarray(0, nl).toString();
    const m = new RegExp(`${MARK} (\\d+) (\\d+)$`).exec(head);
    if (!m) { this.die(new Error(`unexpected output from the helper shell: ${head.slice(0, 200)}`)); return; }
    const o = Number(m[2]);
    if (this.buf.length < nl + 1 + o) return;
    const stdout = this.buf.subarray(nl + 1, nl + 1 + o).toString();
    this.buf = this.buf.subarray(nl + 1 + o);
    const job = this.job;
    this.job = undefined;
    clearTimeout(this.timer);
    job.resolve({ code: Number(m[1]), stdout, stderr: '' });
    this.onIdle(this);
  }

  private die(e: Error): void {
    if (this.dead) return;
    this.dead = true;
    clearTimeout(this.timer);
    this.job?.reject(e);
    this.job = undefined;
    try { this.proc.stdin!.end(); } catch { /* gone */ }
    this.onDead(this);
  }
}

const MAX_SHELLS = 4;
const idle: Shell[] = [];
const all = new Set<Shell>();
const queue: Job[] = [];

function dispatch(): void {
  while (queue.length > 0) {
    let s = idle.pop();
    if (!s) {
      if (all.size >= MAX_SHELLS) return;
      s = new Shell((x) => { idle.push(x); dispatch(); }, (x) => { all.delete(x); const i = idle.indexOf(x); if (i >= 0) idle.splice(i, 1); dispatch(); });
      all.add(s);
    }
    s.send(queue.shift()!);
  }
}

export function run(cmd: string, args: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  const name = `${cmd} ${args.join(' ')}`;
  return new Promise<RunResult>((resolve, reject) => {
    queue.push({ line: `r ${[cmd, ...args].map(quote).join(' ')}\n`, timeoutMs: opts.timeoutMs ?? 600_000, reject: (e) => reject(new Error(`${name}: ${e.message}`)), resolve: (r) => {
      // 127: the shell did not find the command.
      if (r.code === 127 && /not found/.test(r.stdout)) reject(new Error(`cannot run ${cmd}: not found (is it installed? scripts/setup.sh installs it)`));
      else if (r.code !== 0 && !opts.allowFail) reject(new CommandError(name, r));
      else resolve(r);
    } });
    dispatch();
  });
}

/** Ends the helper shells (tests and tools that must exit cleanly; a server need not call it). */
export function stopShells(): void {
  for (const s of all) { try { s.proc.stdin!.end(); } catch { /* gone */ } }
}
