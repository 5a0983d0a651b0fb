// The runtime's side of shoal-shim (runtime/shim/shoal-shim.c): one resident helper process for
// the pod/container start path (namespaces, overlay root, container monitors). Requests carry
// an id, so answers may come back in any order (a `start` is answered by the monitor it
// started, once runc has started the container). Every request has a deadline; a helper that
// dies or is closed fails what is pending with an error that says so, and the next request
// starts a new helper.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeadlineError } from './errors.js';

export class ShimError extends Error {}

interface Pending { op: string; resolve: (text: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

/**
 * Where the shim's C source is: runtime/shim/ of the source tree, found by walking up from this
 * compiled file (dist/runtime/ in CI, .build/NAME/runtime/ while developing).
 */
export function shimSourceDir(): string {
  for (let up = '../'; up.length <= 15; up += '../') {
    const dir = fileURLToPath(new URL(`${up}runtime/shim/`, import.meta.url));
    if (existsSync(join(dir, 'shoal-shim.c'))) return dir;
  }
  return fileURLToPath(new URL('../../runtime/shim/', import.meta.url));
}

/**
 * The shim binary for the current source, compiled with gcc on first use into
 * runtime/shim/bin/ (named by the source's hash, so a changed source is rebuilt and parallel
 * runtimes share one build; tmp + rename keeps a half-written binary from being run).
 */
export function ensureShim(): string {
  const src = join(shimSourceDir(), 'shoal-shim.c');
  if (!existsSync(src)) throw new Error(`shoal-shim source ${src} is missing; pass --shim PATH to a built shoal-shim`);
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 16);
  const binDir = join(shimSourceDir(), 'bin');
  const bin = join(binDir, `shoal-shim-${hash}`);
  if (existsSync(bin)) return bin;
  mkdirSync(binDir, { recursive: true });
  const tmp = `${bin}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', tmp, src], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`cannot build shoal-shim with gcc (install gcc and libc6-dev, or pass --shim PATH): ${r.error?.message ?? r.stderr.trim()}`);
  }
  renameSync(tmp, bin);
  return bin;
}

export class Shim {
  private proc: ChildProcess | undefined;
  private readonly pending = new Map<string, Pending>();
  private buf = '';
  private seq = 0;
  private stderr = '';

  constructor(readonly bin: string, private readonly defaultTimeoutMs = 30_000) {}

  private start(): ChildProcess {
    // Its own session: monitors it starts must not get the runtime's terminal signals.
    const p = spawn(this.bin, ['serve'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    p.stdout!.setEncoding('utf8');
    p.stdout!.on('data', (s: string) => this.onData(s));
    p.stderr!.setEncoding('utf8');
    p.stderr!.on('data', (s: string) => { this.stderr = (this.stderr + s).slice(-2000); });
    const fail = (why: string) => {
      if (this.proc !== p) return;
      this.proc = undefined;
      this.failAll(`shoal-shim ${why}${this.stderr ? ` (${this.stderr.trim()})` : ''}; the request was not completed, retry it`);
    };
    p.on('error', (e) => fail(`could not run: ${e.message}`));
    p.on('exit', (code, sig) => fail(`exited (${sig ?? code})`));
    p.stdin!.on('error', () => {}); // reported through 'exit'
    p.unref();
    (p.stdout as unknown as { unref?: () => void }).unref?.();
    (p.stderr as unknown as { unref?: () => void }).unref?.();
    (p.stdin as unknown as { unref?: () => void }).unref?.();
    return p;
  }

  private failAll(msg: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    this.buf = '';
    for (const q of all) { clearTimeout(q.timer); q.reject(new ShimError(`${q.op}: ${msg}`)); }
  }

  private onData(s: string): void {
    this.buf += s;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const m = /^(\S+) (\d+) ?(.*)$/.exec(line);
      if (!m) continue;
      const q = this.pending.get(m[1]!);
      if (!q) continue; // answered after its deadline
      this.pending.delete(m[1]!);
      clearTimeout(q.timer);
      if (m[2] === '0') q.resolve(m[3]!);
      else q.reject(new ShimError(m[3]! || `${q.op} failed (status ${m[2]})`));
    }
  }

  /** Sends one request; resolves to the answer's text, rejects with its error or after the deadline. */
  request(op: string, args: string[], timeoutMs = this.defaultTimeoutMs): Promise<string> {
    for (const a of args) if (a.includes('\0')) return Promise.reject(new ShimError(`${op}: argument contains a NUL byte`));
    return new Promise((resolve, reject) => {
      const id = String(++this.seq);
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new DeadlineError(`${op}: shoal-shim did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { op, resolve, reject, timer });
      this.proc ??= this.start();
      const body = Buffer.from([id, op, ...args].join('\0'));
      const head = Buffer.alloc(4);
      head.writeUInt32LE(body.length);
      this.proc.stdin!.write(Buffer.concat([head, body]));
    });
  }

  /** The helper's pid while it runs (tests). */
  get pid(): number | undefined { return this.proc?.pid; }

  /** Stops the helper; pending requests fail. Monitors it started keep running. */
  close(): void {
    const p = this.proc;
    this.proc = undefined;
    this.failAll('shoal-shim was closed');
    p?.stdin?.end();
  }
}
