// Test harness for the overlay: "hosts" are network namespaces joined by a bridge that lives in a
// namespace of its own (lab/netns.ts), each running its own shoal-net; pods are network
// namespaces attached through the plugin. Everything it makes is named with a prefix and the
// test's pid, and `close()` removes it all: processes, namespaces, directories.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attachNetns, deleteNetns, makeBridgeNetns } from '../lab/netns.js';
import { startNetChild, type NetChild } from '../overlay-net/child.js';
import type { Attachment, ClusterState, Network, Service } from '../proto/network/types.js';

export interface Ran { status: number | null; stdout: string; stderr: string }

export function sh(cmd: string[], input?: string, timeoutMs = 60_000): Ran {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: timeoutMs, input });
  return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? r.error.message : '') };
}

export const nsPath = (name: string): string => `/run/netns/${name}`;

/** Runs `cmd` inside netns `name` (nsenter: no /sys remount). */
export function inNs(name: string, cmd: string[], timeoutMs = 60_000): Ran {
  return sh(['nsenter', `--net=${nsPath(name)}`, '--', ...cmd], undefined, timeoutMs);
}

/** HTTP GET from inside `ns` with busybox wget; the body, or undefined when it failed. */
export function wget(ns: string, url: string, timeoutS = 2): string | undefined {
  // busybox wget's own -T crashes (segfault) in Debian's busybox-static 1.35: coreutils' timeout instead.
  const r = inNs(ns, ['timeout', String(timeoutS), 'busybox', 'wget', '-q', '-O', '-', url], (timeoutS + 5) * 1000);
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export interface Host {
  name: string;        // node id
  netns: string;
  address: string;
  stateDir: string;
  socket: string;
  plugin?: NetChild;
}

let labs = 0;

export class OverlayLab {
  readonly prefix: string;
  readonly bridgeNs: string;
  readonly dir: string;
  readonly hosts = new Map<string, Host>();
  private readonly namespaces: string[] = [];
  private readonly procs: ChildProcess[] = [];

  constructor(tag: string) {
    this.prefix = `${tag}${process.pid}-${++labs}`;
    this.bridgeNs = `${this.prefix}-br`;
    this.dir = mkdtempSync(join(tmpdir(), `shoal-${this.prefix}-`));
    makeBridgeNetns(this.bridgeNs);
    this.namespaces.push(this.bridgeNs);
  }

  /** A host namespace on the bridge with `address`/24 on eth0, and its own shoal-net. */
  async addHost(name: string, address: string, start = true): Promise<Host> {
    const netns = `${this.prefix}-${name}`;
    this.namespaces.push(netns);
    attachNetns({ bridgeNs: this.bridgeNs, ns: netns, port: `v-${name}`, address, bits: 24 });
    const h: Host = { name, netns, address, stateDir: join(this.dir, name, 'state'), socket: join(this.dir, name, 'network.sock') };
    mkdirSync(h.stateDir, { recursive: true });
    this.hosts.set(name, h);
    if (start) await this.startPlugin(h);
    return h;
  }

  async startPlugin(h: Host): Promise<NetChild> {
    // A generous deadline: on a loaded machine the start-up reconcile (a few dozen ip/nft runs) is slow.
    h.plugin = await startNetChild({ socket: h.socket, stateDir: h.stateDir, underlayAddr: h.address, netns: nsPath(h.netns), timeoutMs: 120_000 });
    return h.plugin;
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no host ${name}`);
    return h;
  }

  /** An empty network namespace for a pod (loopback up). */
  makePodNs(name: string): string {
    const ns = `${this.prefix}-${name}`;
    sh(['ip', 'netns', 'add', ns]);
    this.namespaces.push(ns);
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Starts a long-running process inside `ns`; killed by close(). */
  spawnIn(ns: string, cmd: string[]): ChildProcess {
    const p = spawn('nsenter', [`--net=${nsPath(ns)}`, '--', ...cmd], { stdio: 'ignore', detached: true });
    this.procs.push(p);
    return p;
  }

  /** busybox httpd in `ns` on `port` answering `body` at / (its own directory). */
  serveHttp(ns: string, port: number, body: string): ChildProcess {
    const d = join(this.dir, 'www', `${ns}-${port}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'index.html'), body + '\n');
    return this.spawnIn(ns, ['busybox', 'httpd', '-f', '-p', String(port), '-h', d]);
  }

  /** Waits until something answers HTTP on `port` inside `ns` (a server just started). */
  async waitHttp(ns: string, port: number): Promise<void> {
    const end = Date.now() + 10_000;
    while (wget(ns, `http://127.0.0.1:${port}/`, 2) === undefined) {
      if (Date.now() > end) throw new Error(`nothing answers on port ${port} in ${ns}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async close(): Promise<void> {
    for (const p of this.procs) { try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ } }
    for (const h of this.hosts.values()) await h.plugin?.stop('SIGKILL').catch(() => undefined);
    // Pods first (their veth peers go with them), then hosts, then the bridge.
    for (const ns of [...this.namespaces].reverse()) deleteNetns(ns);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Builds the ClusterState one node's plugin gets: the same cluster, its own attachments. */
export function stateFor(nodeId: string, c: { networks: Network[]; nodes: { id: string; underlay_addr: string }[]; services: Service[]; attachments: Record<string, Attachment[]>; vip_range?: string }): ClusterState {
  return {
    node_id: nodeId,
    networks: c.networks,
    nodes: c.nodes,
    services: c.services,
    attachments: c.attachments[nodeId] ?? [],
    vip_range: c.vip_range ?? '10.255.0.0/16',
    dns_upstreams: [],
  };
}

/** Interfaces, nft tables of shoal's, in a namespace ('' = the test's own, i.e. the root). */
export function shoalKernelObjects(ns?: string): { links: string[]; tables: string[] } {
  const pre = ns ? ['nsenter', `--net=${nsPath(ns)}`, '--'] : [];
  const links = (JSON.parse(sh([...pre, 'ip', '-j', 'link', 'show']).stdout || '[]') as { ifname: string }[]).map((l) => l.ifname).filter((n) => /^sh(br|vx|v)-/.test(n));
  const tables = sh([...pre, 'nft', 'list', 'tables']).stdout.split('\n').filter((l) => /\bshoal\b/.test(l));
  return { links, tables };
}
