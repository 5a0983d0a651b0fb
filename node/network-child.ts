// The built-in network plugin (shoal-net) as a child process of shoald, on a Unix socket under the
// node's state directory, and the CNI files that make the node's runtime use it: a config list
// whose first plugin is shoal-cni (forwarding to that socket), then Debian's portmap. shoald and
// its agent reach the plugin only through its gRPC contract (proto/network); `--network-endpoint`
// points them at another implementation instead. The data path outlives the plugin: pods keep
// their network while it is stopped or restarted (a parent-death signal stops it with shoald,
// the next shoald starts a new one, which re-attaches to what it holds).
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { networkPluginClient } from '../proto/network/types.js';
import { ChildDaemon } from './child-daemon.js';

const here = dirname(fileURLToPath(import.meta.url));
export const SHOAL_NET_MAIN = join(here, '..', 'overlay-net', 'main.js');
export const SHOAL_CNI_MAIN = join(here, '..', 'overlay-net', 'cni', 'main.js');
export const CNI_CONFLIST = '10-shoal.conflist';

/** Writes `file` whole or not at all (tmp, fsync, rename, fsync of the folder). */
function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const d = openSync(dirname(file), 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}

/**
 * The node's CNI directories (DIR/cni/net.d, DIR/cni/bin; the built-in runtime's, and what a
 * containerd on this node can be given as conf_dir/bin_dir): `10-shoal.conflist` and the
 * `shoal-cni` plugin. shoal-cni is a small script that runs this Node with its entry point, not
 * a symlink to it: a runtime's PATH (systemd, containerd) need not have the right `node`.
 */
export function writeCniFiles(stateDir: string, socket: string): { conflist: string; plugin: string } {
  const confDir = join(stateDir, 'cni', 'net.d');
  const binDir = join(stateDir, 'cni', 'bin');
  mkdirSync(confDir, { recursive: true, mode: 0o755 });
  mkdirSync(binDir, { recursive: true, mode: 0o755 });
  const conflist = join(confDir, CNI_CONFLIST);
  const list = {
    cniVersion: '1.0.0',
    name: 'shoal',
    plugins: [
      { type: 'shoal-cni', socket, capabilities: { 'io.kubernetes.cri.pod-annotations': true } },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
  const text = JSON.stringify(list, null, 2) + '\n';
  if (!existsSync(conflist) || readFileSync(conflist, 'utf8') !== text) writeAtomic(conflist, text, 0o644);
  const plugin = join(binDir, 'shoal-cni');
  const q = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
  const script = `#!/bin/sh\n# shoal-cni: the CNI plugin of shoal's network plugin (written by shoald)\nexec ${q(process.execPath)} ${q(SHOAL_CNI_MAIN)} "$@"\n`;
  if (!existsSync(plugin) || readFileSync(plugin, 'utf8') !== script) writeAtomic(plugin, script, 0o755);
  return { conflist, plugin };
}

export interface NetworkChildOptions {
  stateDir: string;
  /** This node's IPv4 address: VXLAN packets go to and from it. */
  underlayAddr: string;
  log(m: string): void;
}

export class NetworkChild {
  readonly socket: string;
  readonly dir: string;
  private readonly child: ChildDaemon;

  constructor(private readonly o: NetworkChildOptions) {
    this.socket = join(o.stateDir, 'plugins', 'network.sock');
    this.dir = join(o.stateDir, 'network');
    const listen = `unix://${this.socket}`;
    this.child = new ChildDaemon({
      logName: 'network',
      program: 'shoal-net',
      args: [SHOAL_NET_MAIN, '--listen', listen, '--state', this.dir, '--underlay-addr', o.underlayAddr],
      socket: this.socket,
      pidFile: join(o.stateDir, 'network.pid'),
      probe: () => {
        const c = networkPluginClient(this.socket, 2000);
        return { ready: () => c.status(), close: () => c.close() };
      },
      isOurs: (cmd) => cmd.some((a) => a.endsWith('overlay-net/main.js')) && cmd.includes(listen),
      prepare: () => {
        mkdirSync(this.dir, { recursive: true, mode: 0o700 });
        mkdirSync(dirname(this.socket), { recursive: true, mode: 0o700 });
      },
      stderrPrefix: 'shoal-net: ',
      // The data path is not the plugin's: it stays while the plugin is away.
      staleNote: 'pods keep their network',
      exitNote: 'pods keep their network',
      pollMs: 100,
      log: o.log,
    });
  }

  /** Starts the plugin; resolves once it answers Status (its start-up reconcile can take a while on a busy machine). */
  async start(timeoutMs = 120_000): Promise<void> {
    await this.child.start(timeoutMs);
  }

  /** Stops the plugin with SIGTERM (pods keep their network, as across a restart). */
  async stop(): Promise<void> {
    await this.child.stop();
  }

  /** Removes everything the plugin made on this node (the node leaves the cluster). Call after stop(). */
  teardown(): void {
    const r = spawnSync(process.execPath, [SHOAL_NET_MAIN, '--teardown', '--state', this.dir, '--underlay-addr', this.o.underlayAddr], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) this.o.log(`network: removing the node's network failed: ${(r.stderr || r.error?.message || '').trim()}`);
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(join(this.o.stateDir, 'cni', 'net.d', CNI_CONFLIST), { force: true });
  }
}
