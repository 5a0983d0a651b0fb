// The built-in CRI runtime (shoal-runtime) as a child process of shoald, on a Unix socket under
// the node's state directory. shoald talks to it only through the CRI, exactly as it would talk
// to containerd (--cri-endpoint). Containers outlive the runtime (their monitors are not its
// children): the runtime stops when shoald dies (parent-death signal) and the next shoald starts
// a new one, which finds the containers again; one that dies meanwhile is started again.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { criClient } from './cri/client.js';

const here = dirname(fileURLToPath(import.meta.url));
export const RUNTIME_MAIN = join(here, '..', 'runtime', 'main.js');

export interface RuntimeChildOptions {
  stateDir: string;
  /** Registries reached over plain HTTP (the lab's). */
  insecureRegistries: string[];
  /** Pods' cgroups go below this (e.g. /shoal, or a lab node's own). */
  cgroupParent: string;
  log(m: string): void;
}

export class RuntimeChild {
  readonly socket: string;
  readonly root: string;
  private proc?: ChildProcess;
  private stopped = false;
  private restarts = 0;
  private readonly pidFile: string;

  constructor(private readonly o: RuntimeChildOptions) {
    this.socket = join(o.stateDir, 'cri.sock');
    this.root = join(o.stateDir, 'runtime');
    this.pidFile = join(o.stateDir, 'runtime.pid');
  }

  get endpoint(): string {
    return `unix://${this.socket}`;
  }

  /** Starts the runtime and waits until it answers CRI Version. */
  async start(): Promise<void> {
    await this.stopStale();
    this.spawn();
    await this.waitReady(60_000);
  }

  /** A runtime a killed shoald left running holds our socket and root: stop it first. */
  private async stopStale(): Promise<void> {
    let pid = 0;
    try {
      pid = Number(readFileSync(this.pidFile, 'utf8').trim());
    } catch {
      return;
    }
    if (!pid || !isOurRuntime(pid, this.socket)) return;
    this.o.log(`runtime: stopping the shoal-runtime (pid ${pid}) an earlier shoald left running; its containers keep running`);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const end = Date.now() + 5000;
    while (isOurRuntime(pid, this.socket) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    if (isOurRuntime(pid, this.socket)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  private spawn(): void {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    rmSync(this.socket, { force: true });
    // The node's own CNI directories (several nodes share a machine in the lab): the network
    // plugin's shoal-cni and its config list go there; until then pods get loopback only.
    const cniConf = join(this.o.stateDir, 'cni', 'net.d');
    const cniBin = join(this.o.stateDir, 'cni', 'bin');
    mkdirSync(cniConf, { recursive: true, mode: 0o755 });
    mkdirSync(cniBin, { recursive: true, mode: 0o755 });
    const args = [RUNTIME_MAIN, '--listen', this.endpoint, '--root', this.root, '--cgroup-parent', this.o.cgroupParent,
      '--cni-conf-dir', cniConf, '--cni-bin-dir', `${cniBin}:/usr/lib/cni:/opt/cni/bin`];
    for (const r of this.o.insecureRegistries) args.push('--insecure-registry', r);
    // setpriv --pdeathsig: the runtime is stopped when shoald dies, even by SIGKILL (its containers
    // are not its children and keep running); the next shoald starts a new one.
    const p = spawn('setpriv', ['--pdeathsig', 'TERM', '--', process.execPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = p;
    writeFileSync(this.pidFile, String(p.pid));
    let buf = '';
    p.stderr!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line) this.o.log(`runtime: ${line}`);
      }
    });
    p.on('exit', (code, sig) => {
      if (this.proc !== p) return;
      this.proc = undefined;
      if (this.stopped) return;
      // Containers keep running without it; a new one re-attaches to them.
      const delay = Math.min(500 * 2 ** this.restarts++, 10_000);
      this.o.log(`runtime: shoal-runtime exited (${sig ?? `code ${code}`}); starting it again in ${delay} ms`);
      setTimeout(() => {
        if (!this.stopped) this.spawn();
      }, delay).unref();
    });
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    const c = criClient(this.endpoint, 2000);
    try {
      for (;;) {
        if (existsSync(this.socket)) {
          try {
            await c.runtime.Version({ version: 'v1' });
            this.restarts = 0;
            return;
          } catch {
            /* not serving yet */
          }
        }
        if (this.stopped) throw new Error('shoald is stopping');
        if (Date.now() > end) throw new Error(`shoal-runtime did not answer on ${this.socket} within ${timeoutMs / 1000} s; see the runtime lines in shoald's log`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      c.close();
    }
  }

  /** Stops the runtime (its containers keep running, as they would across a restart). */
  async stop(): Promise<void> {
    this.stopped = true;
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        p.kill('SIGKILL');
        resolve();
      }, 5000);
      p.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      p.kill('SIGTERM');
    });
    rmSync(this.pidFile, { force: true });
  }
}

function isOurRuntime(pid: number, socket: string): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmd.some((a) => a.endsWith('runtime/main.js')) && cmd.includes(`unix://${socket}`);
  } catch {
    return false;
  }
}
