// The built-in CRI runtime (shoal-runtime) as a child process of shoald, on a Unix socket under
// the node's state directory. shoald talks to it only through the CRI, exactly as it would talk
// to containerd (--cri-endpoint). Containers outlive the runtime (their monitors are not its
// children): the runtime stops when shoald dies (parent-death signal) and the next shoald starts
// a new one, which finds the containers again; one that dies meanwhile is started again
// (node/child-daemon.ts).
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChildDaemon } from './child-daemon.js';
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
  private readonly child: ChildDaemon;

  constructor(o: RuntimeChildOptions) {
    this.socket = join(o.stateDir, 'cri.sock');
    this.root = join(o.stateDir, 'runtime');
    const endpoint = this.endpoint;
    // The node's own CNI directories (several nodes share a machine in the lab): the network
    // plugin's shoal-cni and its config list go there; until then pods get loopback only.
    const cniConf = join(o.stateDir, 'cni', 'net.d');
    const cniBin = join(o.stateDir, 'cni', 'bin');
    const args = [RUNTIME_MAIN, '--listen', endpoint, '--root', this.root, '--cgroup-parent', o.cgroupParent,
      '--cni-conf-dir', cniConf, '--cni-bin-dir', `${cniBin}:/usr/lib/cni:/opt/cni/bin`];
    for (const r of o.insecureRegistries) args.push('--insecure-registry', r);
    this.child = new ChildDaemon({
      logName: 'runtime',
      program: 'shoal-runtime',
      args,
      socket: this.socket,
      pidFile: join(o.stateDir, 'runtime.pid'),
      probe: () => {
        const c = criClient(endpoint, 2000);
        return { ready: () => c.runtime.Version({ version: 'v1' }), close: () => c.close() };
      },
      isOurs: (cmd) => cmd.some((a) => a.endsWith('runtime/main.js')) && cmd.includes(endpoint),
      prepare: () => {
        mkdirSync(this.root, { recursive: true, mode: 0o700 });
        rmSync(this.socket, { force: true });
        mkdirSync(cniConf, { recursive: true, mode: 0o755 });
        mkdirSync(cniBin, { recursive: true, mode: 0o755 });
      },
      // Containers keep running without it; a new one re-attaches to them.
      staleNote: 'its containers keep running',
      log: o.log,
    });
  }

  get endpoint(): string {
    return `unix://${this.socket}`;
  }

  /** Starts the runtime and waits until it answers CRI Version. */
  async start(): Promise<void> {
    await this.child.start(60_000);
  }

  /** Stops the runtime (its containers keep running, as they would across a restart). */
  async stop(): Promise<void> {
    await this.child.stop();
  }
}
