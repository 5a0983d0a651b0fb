// Docker Swarm (Debian's docker.io 20.10) as the peer of bench:replicas and bench:failover.
//
// A SwarmPeer is one swarm on network-namespace hosts of its own, shaped like shoal's lab: a
// namespace holding a bridge, a registry host (Debian's docker-registry, seeded with the
// benchmark image: the image is pulled by each dockerd over the distribution API, as shoal's
// nodes pull from the lab's registry), and one host per node (`manager`, `worker-1`, ...) with
// its own containerd and dockerd (see swarm-host.ts for how they are isolated). The manager runs
// `swarm init` advertising its namespace's address, workers `swarm join` with the worker token
// (the Engine API calls the docker CLI makes for those commands).
// Addresses: 10.98.0.2 for the registry, 10.98.0.11 upward for the nodes; the subnet exists only
// inside the run's namespaces.
//
// Measurements (times from the client's clock; tasks' times are Swarm's own records, read from
// the API that `docker service ps` reads: the time each task reached `running`):
//  - timeReplicas: from `docker service create --detach` to all N tasks running.
//  - failover: N replicas on worker-1, worker-1's dockerd and containerd SIGKILLed; time until
//    the manager marks the node down, and until N tasks run on other workers.
// close() removes everything: services, swarm membership, daemons, shims and containers, mounts,
// cgroups, namespaces, files (and sweepActiveRuns() does the same from a signal handler).
//
// Run alone: node dist/benchmarks/swarm-peer.js [--replicas N] [--failover N] [--rounds R]
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { attachNetns, makeBridgeNetns } from '../lab/netns.js';
import { isAlive, readFrom, sleep, type ProcRef } from '../lab/procs.js';
import { load } from './bench-util.js';
import {
  RUN_PREFIX, dockerApi, dockerCli, killDaemons, requireDocker, runDir, staleRuns, startDockerHost, startInNetns, sweepRun, waitReady,
  type SwarmHost,
} from './swarm-host.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Pushes the benchmark image into a registry, run inside the registry's namespace. */
const SEED_MAIN = join(here, 'swarm-seed.js');
const SUBNET = '10.98.0.';
const REGISTRY_ADDRESS = `${SUBNET}2`;
const REGISTRY_HOST = `${REGISTRY_ADDRESS}:5000`;
/** The command every benchmark task runs, on both systems. */
export const BENCH_CMD = ['sleep', '1000000'];

export interface SwarmTask {
  ID: string;
  NodeID?: string;
  DesiredState: string;
  Status: { State: string; Timestamp: string; Err?: string; Message?: string };
}

export interface ReplicasResult {
  /** From the create call to the last task's `running` as Swarm recorded it. */
  seconds: number;
  /** From the create call to the poll that first saw all N running. */
  observedSeconds: number;
}

export interface FailoverResult {
  /** From the kill until the manager showed the node down (polled every 100 ms). */
  downSeconds: number;
  /** From the kill to the last replacement task's `running`, as Swarm recorded it. */
  seconds: number;
  observedSeconds: number;
}

const active = new Set<string>();
let runSeq = 0;

/** Sweeps every run this process has open (for SIGINT/SIGTERM handlers); returns leftovers. */
export async function sweepActiveRuns(): Promise<string[]> {
  const left: string[] = [];
  for (const r of [...active]) {
    left.push(...(await sweepRun(r)));
    active.delete(r);
  }
  return left;
}

export class SwarmPeer {
  readonly image = `${REGISTRY_HOST}/busybox:1`;
  readonly hosts: SwarmHost[] = [];
  private registry?: ProcRef;
  private services = new Set<string>();

  private constructor(readonly run: string, private readonly log: (s: string) => void) {}

  /** A swarm of one manager and `workers` workers. On failure everything made so far is removed. */
  static async start(o: { workers: number; log?: (s: string) => void }): Promise<SwarmPeer> {
    requireDocker();
    const log = o.log ?? (() => {});
    for (const r of staleRuns()) {
      const left = await sweepRun(r);
      log(`swarm: removed what a dead run left (${r})${left.length ? `; could not remove: ${left.join(', ')}` : ''}`);
    }
    const run = `${RUN_PREFIX}${process.pid}-${++runSeq}`;
    active.add(run);
    const peer = new SwarmPeer(run, log);
    try {
      await peer.build(o.workers);
      return peer;
    } catch (e) {
      const left = await peer.close();
      if (left.length) log(`swarm: could not remove: ${left.join(', ')}`);
      throw e;
    }
  }

  get manager(): SwarmHost {
    return this.hosts[0]!;
  }

  host(name: string): SwarmHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no swarm host ${name} (have ${this.hosts.map((x) => x.name).join(', ')})`);
    return h;
  }

  private async build(workers: number): Promise<void> {
    const t0 = Date.now();
    const dir = runDir(this.run);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const br = `${this.run}-br`;
    makeBridgeNetns(br);
    // The registry, then every node's namespace on the bridge.
    const regNs = `${this.run}-reg`;
    attachNetns({ bridgeNs: br, ns: regNs, port: 'v-reg', address: REGISTRY_ADDRESS, bits: 24 });
    const names = ['manager', ...Array.from({ length: workers }, (_, i) => `worker-${i + 1}`)];
    names.forEach((n, i) => attachNetns({ bridgeNs: br, ns: `${this.run}-${n}`, port: `v-${n}`, address: `${SUBNET}${11 + i}`, bits: 24 }));

    const regDir = join(dir, 'registry');
    mkdirSync(regDir, { recursive: true });
    writeFileSync(join(regDir, 'config.yml'), [
      'version: 0.1', 'log:', '  level: info', '  accesslog:', '    disabled: true',
      'storage:', '  filesystem:', `    rootdirectory: ${join(regDir, 'data')}`,
      'http:', `  addr: ${REGISTRY_HOST}`,
    ].join('\n') + '\n');
    const regLog = join(regDir, 'registry.log');
    this.registry = await startInNetns(regNs, ['docker-registry', 'serve', join(regDir, 'config.yml')], regLog);
    await waitReady('docker-registry', this.registry, regLog, () => /listening on/.test(readFrom(regLog, 0)), 30_000);
    const seed = spawnSync('nsenter', [`--net=/run/netns/${regNs}`, '--', process.execPath, SEED_MAIN, REGISTRY_HOST], { encoding: 'utf8', timeout: 60_000 });
    if (seed.status !== 0) throw new Error(`pushing the benchmark image to ${REGISTRY_HOST} failed: ${(seed.stderr || seed.error?.message || '').trim()}`);
    this.log(`swarm: registry ${REGISTRY_HOST} serving ${this.image} (netns ${regNs})`);

    const started = await Promise.all(names.map((n, i) => startDockerHost({ run: this.run, name: n, netns: `${this.run}-${n}`, address: `${SUBNET}${11 + i}`, insecureRegistry: REGISTRY_HOST })));
    this.hosts.push(...started);
    this.log(`swarm: ${names.length} dockerd(s) up (${started.map((h) => `${h.name} ${h.address} pid ${h.dockerd.pid}`).join(', ')})`);

    const m = this.manager;
    await dockerApi(m.sock, 'POST', '/swarm/init', { ListenAddr: `${m.address}:2377`, AdvertiseAddr: `${m.address}:2377` });
    const sw = await dockerApi<{ JoinTokens: { Worker: string } }>(m.sock, 'GET', '/swarm');
    for (const h of this.hosts.slice(1)) {
      await dockerApi(h.sock, 'POST', '/swarm/join', { ListenAddr: `${h.address}:2377`, AdvertiseAddr: `${h.address}:2377`, RemoteAddrs: [`${m.address}:2377`], JoinToken: sw.JoinTokens.Worker });
    }
    for (const h of this.hosts) h.nodeId = (await dockerApi<{ Swarm: { NodeID: string } }>(h.sock, 'GET', '/info')).Swarm.NodeID;
    await this.until(`all ${this.hosts.length} swarm nodes ready`, 60_000, async () => {
      const nodes = await dockerApi<{ Status: { State: string } }[]>(m.sock, 'GET', '/nodes');
      return nodes.length === this.hosts.length && nodes.every((n) => n.Status.State === 'ready');
    });
    this.log(`swarm: ${this.hosts.length === 1 ? 'one-node swarm' : `swarm of 1 manager + ${workers} worker(s)`} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (run ${this.run})`);
  }

  private async until(what: string, ms: number, f: () => Promise<boolean>, everyMs = 100): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      if (await f().catch(() => false)) return;
      if (Date.now() > end) throw new Error(`swarm: ${what}: not within ${ms / 1000} s`);
      await sleep(everyMs);
    }
  }

  /** `docker service create --detach`; returns the client's time just before the call. */
  async createService(p: { name: string; replicas: number; constraints?: string[] }): Promise<number> {
    this.services.add(p.name);
    const args = ['service', 'create', '--detach', '--no-resolve-image', '--name', p.name, '--replicas', String(p.replicas), '--stop-grace-period', '1s'];
    for (const c of p.constraints ?? []) args.push('--constraint', c);
    const t0 = Date.now();
    await dockerCli(this.manager.sock, [...args, this.image, ...BENCH_CMD]);
    return t0;
  }

  async tasks(service: string): Promise<SwarmTask[]> {
    return dockerApi<SwarmTask[]>(this.manager.sock, 'GET', `/tasks?filters=${encodeURIComponent(JSON.stringify({ service: [service] }))}`);
  }

  /** Tasks meant to run that do run (on `nodeId` only, or anywhere but `notOn`). */
  static running(tasks: SwarmTask[], o: { on?: string; notOn?: string } = {}): SwarmTask[] {
    return tasks.filter((t) => t.DesiredState === 'running' && t.Status.State === 'running' && (!o.on || t.NodeID === o.on) && (!o.notOn || t.NodeID !== o.notOn));
  }

  private static problems(tasks: SwarmTask[]): string {
    const s = [...new Set(tasks.filter((t) => t.Status.State !== 'running').map((t) => `${t.Status.State}${t.Status.Err ? `: ${t.Status.Err}` : ''}`))];
    return s.length ? ` (others: ${s.slice(0, 4).join('; ')})` : '';
  }

  /** Waits until `n` tasks of `service` run (optionally on/not on a node); returns them and when seen. */
  async waitRunning(service: string, n: number, o: { on?: string; notOn?: string; timeoutMs?: number } = {}): Promise<{ tasks: SwarmTask[]; seenAt: number }> {
    const end = Date.now() + (o.timeoutMs ?? 180_000);
    let last: SwarmTask[] = [];
    for (;;) {
      last = await this.tasks(service);
      const run = SwarmPeer.running(last, o);
      if (run.length >= n) return { tasks: run, seenAt: Date.now() };
      if (Date.now() > end) throw new Error(`swarm: ${service}: ${run.length}/${n} tasks running after ${(o.timeoutMs ?? 180_000) / 1000} s${SwarmPeer.problems(last)}`);
      await sleep(100);
    }
  }

  async timeReplicas(service: string, n: number): Promise<ReplicasResult> {
    const t0 = await this.createService({ name: service, replicas: n });
    const { tasks, seenAt } = await this.waitRunning(service, n);
    const last = Math.max(...tasks.map((t) => Date.parse(t.Status.Timestamp)));
    return { seconds: (last - t0) / 1000, observedSeconds: (seenAt - t0) / 1000 };
  }

  /** Removes a service and waits until none of its containers is left on any live node. */
  async removeService(service: string): Promise<void> {
    await dockerApi(this.manager.sock, 'DELETE', `/services/${service}`).catch((e: Error) => {
      if (!/404/.test(e.message)) throw e;
    });
    this.services.delete(service);
    const filter = encodeURIComponent(JSON.stringify({ label: [`com.docker.swarm.service.name=${service}`] }));
    await this.until(`removing ${service}'s containers`, 60_000, async () => {
      for (const h of this.hosts) {
        if (!isAlive(h.dockerd)) continue;
        const cs = await dockerApi<unknown[]>(h.sock, 'GET', `/containers/json?all=1&filters=${filter}`);
        if (cs.length > 0) return false;
      }
      return true;
    }, 250);
  }

  async setAvailability(h: SwarmHost, availability: 'active' | 'drain'): Promise<void> {
    await dockerCli(this.manager.sock, ['node', 'update', '--availability', availability, h.nodeId!]);
  }

  /**
   * N replicas on worker-1, then worker-1's dockerd and containerd SIGKILLed. Placement: the
   * service is constrained to workers (node.role==worker) and created across both; worker-2 is
   * drained (Swarm moves its tasks to worker-1), its containers gone, then set active again (Swarm
   * does not rebalance, so all N stay on worker-1; worker-2 has the image already, as it would
   * after running tasks). The kill comes once worker-1 has held all N for 2 s.
   */
  async failover(service: string, n: number): Promise<FailoverResult> {
    if (this.hosts.length < 3) throw new Error('swarm failover needs a manager and two workers');
    const [m, w1, w2] = this.hosts as [SwarmHost, SwarmHost, SwarmHost];
    await this.createService({ name: service, replicas: n, constraints: ['node.role==worker'] });
    await this.waitRunning(service, n);
    await this.setAvailability(w2, 'drain');
    await this.waitRunning(service, n, { on: w1.nodeId });
    const filter = encodeURIComponent(JSON.stringify({ label: [`com.docker.swarm.service.name=${service}`] }));
    await this.until(`${service}'s containers to leave ${w2.name}`, 60_000, async () => (await dockerApi<unknown[]>(w2.sock, 'GET', `/containers/json?filters=${filter}`)).length === 0, 250);
    await this.setAvailability(w2, 'active');
    await sleep(2000);
    const before = SwarmPeer.running(await this.tasks(service));
    if (before.length !== n || before.some((t) => t.NodeID !== w1.nodeId)) throw new Error(`swarm: before the kill, expected ${n} tasks running on ${w1.name}; found ${before.length} running, ${before.filter((t) => t.NodeID !== w1.nodeId).length} elsewhere`);
    this.log(`swarm: ${n} tasks running on ${w1.name}; SIGKILL to its dockerd (${w1.dockerd.pid}) and containerd (${w1.containerd.pid})`);

    const t0 = Date.now();
    killDaemons(w1);
    let downAt: number | undefined;
    let seenAt: number | undefined;
    let tasks: SwarmTask[] = [];
    const end = t0 + 180_000;
    while (downAt === undefined || seenAt === undefined) {
      if (downAt === undefined) {
        const node = await dockerApi<{ Status: { State: string } }>(m.sock, 'GET', `/nodes/${w1.nodeId}`);
        if (node.Status.State === 'down') downAt = Date.now();
      }
      if (seenAt === undefined) {
        const all = await this.tasks(service);
        const moved = SwarmPeer.running(all, { notOn: w1.nodeId });
        if (moved.length >= n) {
          seenAt = Date.now();
          tasks = moved;
        } else if (Date.now() > end) {
          throw new Error(`swarm: ${moved.length}/${n} tasks running off ${w1.name} ${(Date.now() - t0) / 1000} s after the kill${SwarmPeer.problems(all)}`);
        }
      }
      if (Date.now() > end) throw new Error(`swarm: ${w1.name} not marked down ${(Date.now() - t0) / 1000} s after the kill`);
      await sleep(100);
    }
    const last = Math.max(...tasks.map((t) => Date.parse(t.Status.Timestamp)));
    return { downSeconds: (downAt - t0) / 1000, seconds: (last - t0) / 1000, observedSeconds: (seenAt - t0) / 1000 };
  }

  /** Removes the whole run. The polite steps first (services removed, swarm left, dockerd asked to
   * stop: what an operator would do), each bounded; then the sweep removes whatever remains. */
  async close(): Promise<string[]> {
    if (!active.has(this.run)) return [];
    const live = this.hosts.filter((h) => isAlive(h.dockerd));
    if (live.includes(this.manager)) {
      for (const s of this.services) await dockerApi(this.manager.sock, 'DELETE', `/services/${s}`, undefined, 5000).catch(() => undefined);
    }
    for (const h of [...live].reverse()) await dockerApi(h.sock, 'POST', '/swarm/leave?force=1', undefined, 10_000).catch(() => undefined);
    for (const h of live) {
      try { process.kill(h.dockerd.pid, 'SIGTERM'); } catch { /* gone */ }
    }
    const end = Date.now() + 15_000;
    while (live.some((h) => isAlive(h.dockerd)) && Date.now() < end) await sleep(100);
    const left = await sweepRun(this.run);
    active.delete(this.run);
    return left;
  }
}

// ---- run alone: the Swarm side only ------------------------------------------------------------

function argInt(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) {
    process.stderr.write(`swarm-peer: ${name} needs a positive integer, got "${process.argv[i + 1] ?? ''}"\n`);
    process.exit(2);
  }
  return v;
}

let stopping = false;

async function main(): Promise<void> {
  const replicas = argInt('--replicas', 0) || (process.argv.includes('--failover') ? 0 : 3);
  const failover = process.argv.includes('--failover') ? argInt('--failover', 20) : 0;
  const rounds = argInt('--rounds', 1);
  const say = (s: string) => process.stdout.write(s + '\n');
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      say(`swarm-peer: ${sig}: removing the swarm`);
      void sweepActiveRuns().then((left) => {
        if (left.length) process.stderr.write(`swarm-peer: could not remove: ${left.join(', ')}\n`);
        process.exit(sig === 'SIGINT' ? 130 : 143);
      });
    });
  }
  const peer = await SwarmPeer.start({ workers: failover ? 2 : 0, log: say });
  try {
    for (let r = 1; r <= rounds && !stopping; r++) {
      if (replicas) {
        const x = await peer.timeReplicas(`bench-${r}`, replicas);
        say(`swarm-peer: round ${r}: ${replicas} replicas running ${x.seconds.toFixed(2)} s after create (seen at ${x.observedSeconds.toFixed(2)} s); load ${load()}`);
        await peer.removeService(`bench-${r}`);
      }
    }
    if (failover && !stopping) {
      const x = await peer.failover('failover', failover);
      say(`swarm-peer: failover: node down at ${x.downSeconds.toFixed(2)} s, ${failover} tasks running elsewhere at ${x.seconds.toFixed(2)} s (seen at ${x.observedSeconds.toFixed(2)} s); load ${load()}`);
    }
  } finally {
    if (!stopping) {
      const left = await peer.close();
      say(left.length ? `swarm-peer: could not remove: ${left.join(', ')}` : `swarm-peer: removed ${peer.run} completely`);
      if (left.length) process.exitCode = 1;
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    if (stopping) return; // the signal handler sweeps and exits
    process.stderr.write(`swarm-peer: ${(e as Error).message}\n`);
    void sweepActiveRuns().finally(() => process.exit(1));
  });
}

