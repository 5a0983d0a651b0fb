// The command side of the streaming server, the same for WebSocket and SPDY clients
// (stream-io.ts): exec (`runc exec`), exec with a terminal (`shoal-shim tty-exec`), and attach
// to a running container (its output; its stdin and terminal when it was created with them).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import type { Runc } from './runc.js';
import type { Containers } from './container.js';
import { exitStatus, failure, success, type ExecHandlers, type ExecIO } from './stream-io.js';

export interface ExecRequest { kind: 'exec' | 'attach' | 'portforward'; containerId: string; cmd: string[]; stdin: boolean; stdout: boolean; stderr: boolean; tty?: boolean; expires: number;
  /** portforward: the pod's network namespace (empty: host network) and the ports asked for. */
  netns?: string; ports?: number[] }

const none: ExecHandlers = { stdin() {}, stdinEnd() {}, resize() {}, gone() {} };

/** `runc exec` with pipes: stdin, stdout and stderr as asked; the exit code in the status. */
export function runExec(runc: Runc, containers: Containers, r: ExecRequest, io: ExecIO): ExecHandlers {
  // runc writes the exec'd process's pid here, so a client that goes away can have that
  // process killed (killing `runc exec` alone would leave it running in the container).
  let pidFile: string | undefined;
  try { pidFile = join(containers.find(r.containerId).dir, `exec-${randomBytes(8).toString('hex')}.pid`); } catch { /* removed meanwhile: runc exec fails below */ }
  const child = spawn(runc.bin, runc.args('exec', ...(pidFile ? ['--pid-file', pidFile] : []), r.containerId, ...r.cmd), { stdio: [r.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  let exited = false;
  const killExecd = () => {
    if (exited) return;
    // The pid file may not be written yet: look for it until runc exec is gone (checked every 50 ms).
    const tryKill = () => {
      if (exited) return;
      let pid = 0;
      try { pid = Number(readFileSync(pidFile!, 'utf8').trim()); } catch { /* not yet */ }
      if (pid > 0) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } return; }
      if (!pidFile) { child.kill('SIGKILL'); return; }
      setTimeout(tryKill, 50);
    };
    tryKill();
  };
  child.stdout!.on('data', (b: Buffer) => { if (r.stdout) io.stdout(b); });
  child.stderr!.on('data', (b: Buffer) => { if (r.stderr) io.stderr(b); });
  child.stdin?.on('error', () => {});
  child.on('error', (e) => { exited = true; io.finish(failure(`cannot run runc exec: ${e.message}`)); });
  // As in ExecSync: leftover background processes may hold the pipes, so the command's own
  // exit ends the session once buffered output had a moment to arrive.
  child.on('exit', (code, signal) => {
    exited = true;
    if (pidFile) rmSync(pidFile, { force: true });
    let pending = 2;
    const done = () => { if (--pending === 0) { clearTimeout(grace); io.finish(exitStatus(code ?? (signal ? 137 : 255))); } };
    const grace = setTimeout(() => { pending = 1; child.stdout!.destroy(); child.stderr!.destroy(); done(); }, 200);
    if (child.stdout!.readableEnded) done(); else child.stdout!.once('end', done);
    if (child.stderr!.readableEnded) done(); else child.stderr!.once('end', done);
  });
  return {
    stdin: (b) => { child.stdin?.write(b); },
    stdinEnd: () => { child.stdin?.end(); },
    resize: () => {},
    // The client is gone (disconnected, or sent garbage): nobody reads the output any more.
    gone: () => { child.stdin?.end(); killExecd(); },
  };
}

/** How long a TTY exec waits for the client's first window size before it starts without one. */
const FIRST_SIZE_WAIT_MS = 500;

/**
 * Exec with a terminal: shoal-shim runs `runc exec -d --tty` and relays the pty it receives
 * (stdout and stderr are one stream on a terminal); later window sizes go to the shim on fd 3.
 * The process starts once the client's first size is known (clients send it at once; at most
 * FIRST_SIZE_WAIT_MS), with that size already set: runc takes it as the process's
 * `consoleSize` (`runc exec --process`), so even the first thing the process does sees it.
 */
export function runTtyExec(runc: Runc, containers: Containers, shimBin: string, r: ExecRequest, io: ExecIO): ExecHandlers {
  let dir: string;
  try { dir = containers.find(r.containerId).dir; } catch (e) { io.finish(failure((e as Error).message)); return none; }
  let child: ChildProcess | undefined;
  let ctl: Writable | undefined;
  let sdir = '';
  const early: Buffer[] = [];
  let earlyEnd = false;
  let left = false;
  const start = (size?: [number, number]) => {
    if (child || left) return;
    clearTimeout(wait);
    // runc's console socket: a Unix socket path must stay under 108 bytes, so not in the bundle.
    sdir = mkdtempSync(join(tmpdir(), 'shoal-tty-'));
    let proc: string[] = [];
    if (size) {
      try {
        // The container's own process settings (user, env, cwd, capabilities...), with this command.
        const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { process: Record<string, unknown> };
        writeFileSync(join(sdir, 'process.json'), JSON.stringify({ ...spec.process, args: r.cmd, terminal: true, consoleSize: { width: size[0], height: size[1] } }));
        proc = ['--process', join(sdir, 'process.json')];
      } catch { /* no readable spec: started without a size, which follows on fd 3 */ }
    }
    const args = runc.args('exec', '-d', '--tty', '--console-socket', join(sdir, 'console.sock'), '--pid-file', join(sdir, 'exec.pid'), ...proc, r.containerId, ...(proc.length ? [] : r.cmd));
    const c = spawn(shimBin, ['tty-exec', sdir, runc.bin, ...args], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    child = c;
    ctl = c.stdio[3] as Writable;
    ctl.on('error', () => {});
    if (size && !proc.length) ctl.write(`${size[0]} ${size[1]}\n`);
    let err = '';
    c.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    c.stdout!.on('data', (b: Buffer) => io.stdout(b));
    c.stdin!.on('error', () => {});
    for (const b of early) c.stdin!.write(b);
    if (earlyEnd) c.stdin!.end();
    c.on('close', (code) => {
      rmSync(sdir, { recursive: true, force: true });
      const n = code ?? 255;
      io.finish(n !== 0 && err && n === 255 ? failure(err.trim()) : exitStatus(n));
    });
  };
  const wait = setTimeout(() => start(), FIRST_SIZE_WAIT_MS);
  return {
    stdin: (b) => { if (child) child.stdin!.write(b); else early.push(Buffer.from(b)); },
    stdinEnd: () => { if (child) child.stdin!.end(); else earlyEnd = true; },
    resize: (w, h) => { if (child) ctl!.write(`${w} ${h}\n`); else start([w, h]); },
    gone: () => {
      left = true;
      clearTimeout(wait);
      if (!child) return;
      child.stdin!.end();
      if (child.exitCode !== null) return;
      // The client left: end the exec'd process (its pid is in exec.pid).
      try { const pid = Number(readFileSync(join(sdir, 'exec.pid'), 'utf8')); if (pid > 0) process.kill(pid, 'SIGKILL'); } catch { /* not started or gone */ }
    },
  };
}

/**
 * Attach: the container's output from now on (one stream with a terminal), its stdin and
 * terminal size if it was created with them. As containerd: when the client closes stdin the
 * attach ends, unless the container has `stdin_once`, whose stdin is then closed for good
 * (the process reads end-of-file; on a terminal, the terminal hangs up) while its output keeps
 * streaming until it exits.
 */
export function runAttach(containers: Containers, r: ExecRequest, io: ExecIO): ExecHandlers {
  let rec;
  try { rec = containers.find(r.containerId); } catch (e) { io.finish(failure((e as Error).message)); return none; }
  const id = rec.id;
  const tty = !!rec.config.tty;
  const once = !!rec.config.stdin_once;
  let input = r.stdin ? containers.openStdin(id) : undefined;
  let done = false;
  const stop = containers.follow(id, {
    data: (stream, b) => { if (done) return; if (stream === 'stdout' ? r.stdout : r.stderr) (stream === 'stdout' ? io.stdout : io.stderr)(b); },
    exit: () => { if (!done) { done = true; input?.end(); io.finish(success()); } },
  });
  const detach = () => { if (done) return; done = true; stop(); input?.end(); input = undefined; };
  const stdinOver = () => {
    if (!r.stdin || done) return;
    input?.end();
    input = undefined;
    if (once) { void containers.closeStdin(id).catch(() => {}); return; }
    detach();
    io.finish(success());
  };
  return {
    stdin: (b) => { input?.write(b); },
    stdinEnd: stdinOver,
    resize: (w, h) => { if (tty) containers.resize(id, w, h); },
    gone: () => { if (r.stdin && once && !done) void containers.closeStdin(id).catch(() => {}); detach(); },
  };
}
