// What the overlay benchmarks share: two netns hosts with shoal-net on a bridge (the test
// harness), a network with a subnet per host, pods attached through the plugin, clean-up on
// exit or interrupt, measurements serialised machine-wide, medians and the load average.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { Attachment, Network, Service } from '../proto/network/types.js';
import { listNetns } from '../lab/netns.js';
import { OverlayLab, nsPath, stateFor } from '../test/overlay-harness.js';

export const BENCH_LOCK = '/tmp/shoal-bench.lock';

/** `--name N` as a positive number (or `def`); exits 2 with a clear message otherwise. */
export function arg(prog: string, name: string, def: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return def;
  const raw = process.argv[i + 1];
  const v = Number(raw);
  if (raw === undefined || !(v > 0)) { process.stderr.write(`${prog}: ${name} needs a positive number, got ${JSON.stringify(raw ?? '')}\n`); process.exit(2); }
  return v;
}

export function loadavg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const started = Date.now();

/** A progress line on stderr, with the seconds since the benchmark started (results go to stdout). */
export function progress(prog: string, msg: string): void {
  process.stderr.write(`${prog}: [${((Date.now() - started) / 1000).toFixed(1)} s] ${msg}\n`);
}

/** Removes what the run made (the lab's close), says so, and fails the run when something is left. */
export async function closeBench(prog: string, b: { close(): Promise<string[]> }): Promise<void> {
  progress(prog, 'removing the namespaces and processes');
  const left = await b.close();
  if (left.length) {
    process.stderr.write(`${prog}: could not remove: ${left.join(', ')}\n`);
    process.exitCode = 1;
  } else progress(prog, 'everything the run made is removed');
}

/** True when a process we descend from holds BENCH_LOCK: the whole benchmark was started as
 * `flock /tmp/shoal-bench.lock ...`. Taking the lock again from a child would wait for ever
 * (flock(1) opens the file anew, and a lock on another open file description conflicts), which is
 * how a run under the lock used to hang in its first measurement. */
export function lockHeldByAncestor(): boolean {
  let ino: number;
  try { ino = statSync(BENCH_LOCK).ino; } catch { return false; }
  const holders = new Set<number>();
  // Lines look like "3: FLOCK  ADVISORY  WRITE 4321 fe:01:131075 0 EOF" (blocked waiters carry "->").
  for (const l of readFileSync('/proc/locks', 'utf8').split('\n')) {
    const f = l.trim().split(/\s+/);
    if (f[1] !== 'FLOCK' || f[3] !== 'WRITE') continue;
    if (Number(f[5]?.split(':')[2]) === ino) holders.add(Number(f[4]));
  }
  for (let pid = process.pid, hops = 0; pid > 1 && hops < 64; hops++) {
    if (holders.has(pid)) return true;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]); // the field after the state is the ppid
    } catch { return false; }
  }
  return false;
}

/** Runs `cmd` inside netns `ns` holding the machine-wide benchmark lock (other helpers'
 * measurements wait for ours and ours for theirs), or directly when the lock is already ours
 * (see lockHeldByAncestor). Asynchronous, so an interrupt is handled at once (the clean-up
 * kills what is running) even while the lock is awaited. */
export async function lockedIn(prog: string, ns: string, cmd: string[], timeoutMs: number): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const inner = ['nsenter', `--net=${nsPath(ns)}`, '--', ...cmd];
  if (lockHeldByAncestor()) return runAsync(inner, timeoutMs);
  let r = await runAsync(['flock', '-n', '-E', '75', BENCH_LOCK, ...inner], timeoutMs);
  if (r.status === 75) {
    progress(prog, `waiting for ${BENCH_LOCK}: another measurement is running (up to 30 min)`);
    r = await runAsync(['flock', '-w', '1800', '-E', '75', BENCH_LOCK, ...inner], timeoutMs + 1_800_000);
    if (r.status === 75) r.stderr += `${BENCH_LOCK} was not free within 30 min`;
  }
  return r;
}

/** Waits for a server process to print its first line (its "ready"); an error naming `what`
 * when it exits first or says nothing within `timeoutMs`. */
export function waitReady(p: ChildProcess, what: string, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not say it was ready within ${timeoutMs / 1000} s`)), timeoutMs);
    p.stdout!.once('data', () => { clearTimeout(timer); resolve(); });
    p.once('exit', (c, sig) => { clearTimeout(timer); reject(new Error(`${what} exited (${c ?? sig}) before it was ready`)); });
    p.once('error', (e) => { clearTimeout(timer); reject(new Error(`${what} could not start: ${e.message}`)); });
  });
}

const running = new Set<ChildProcess>();

/** Kills the measurements under way and the servers, each with its whole process group: a
 * measurement runs as flock -> nsenter -> client, and SIGKILL to flock alone leaves its child
 * running in a namespace whose name is gone (the interrupt handler and close() call it). */
export function killRunning(): void {
  for (const p of [...running, ...servers]) killGroup(p);
}

function killGroup(p: ChildProcess): void {
  try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* already gone */ }
}

const servers = new Set<ChildProcess>();

/** A long-running server inside netns `ns` (its own process group, stdout piped for its ready
 * line, stderr passed on), killed by close() or an interrupt. */
export function spawnServer(ns: string, cmd: string[]): ChildProcess {
  const p = spawn('nsenter', [`--net=${nsPath(ns)}`, '--', ...cmd], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  servers.add(p);
  p.once('exit', () => servers.delete(p));
  return p;
}

function runAsync(cmd: string[], timeoutMs: number): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    running.add(p);
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => { stderr += `(killed after ${timeoutMs / 1000} s: it did not finish)`; killGroup(p); }, timeoutMs);
    p.stdout!.on('data', (b: Buffer) => { stdout += b.toString(); });
    p.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
    p.on('error', (e) => { stderr += e.message; });
    p.on('close', (status) => { clearTimeout(timer); running.delete(p); resolve({ status, stdout, stderr }); });
  });
}

export const FRONT: Network = { id: 'net-bench', name: 'bench', vni: 4242, subnet: '10.1.0.0/16', internal: false, node_subnets: [
  { node_id: 'n1', subnet: '10.1.1.0/24' }, { node_id: 'n2', subnet: '10.1.2.0/24' }] };
export const NODES = [{ id: 'n1', underlay_addr: '10.99.0.11' }, { id: 'n2', underlay_addr: '10.99.0.12' }];

export interface BenchLab {
  lab: OverlayLab;
  pods: Map<string, string>; // task -> netns name
  /** Removes everything; returns what could not be removed (namespaces, the lab directory). */
  close(): Promise<string[]>;
}

/** Two hosts, and one pod per entry of `pods` ([task, node, address]); `services` pushed too.
 * SIGINT/SIGTERM from here on kill the measurement under way and remove the lab, then exit. */
export async function benchLab(prog: string, tag: string, pods: [string, 'n1' | 'n2', string][], services: Service[] = []): Promise<BenchLab> {
  const lab = new OverlayLab(tag);
  let closing: Promise<string[]> | undefined;
  const close = () => closing ??= (killRunning(), lab.close()).then(() => [
    ...listNetns().filter((n) => n.startsWith(`${lab.prefix}-`)),
    ...readdirSync(tmpdir()).filter((f) => f.startsWith(`shoal-${lab.prefix}-`)).map((f) => `${tmpdir()}/${f}`),
  ]);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n${prog}: ${sig}: removing the benchmark's namespaces and processes\n`);
      killRunning();
      void close().then((left) => {
        if (left.length) process.stderr.write(`${prog}: could not remove: ${left.join(', ')}\n`);
        process.exit(sig === 'SIGINT' ? 130 : 143);
      });
    });
  }
  try {
    for (const [name, addr] of [['n1', '10.99.0.11'], ['n2', '10.99.0.12']] as const) {
      progress(prog, `host ${name}: namespace ${lab.prefix}-${name}, starting its shoal-net (load ${loadavg()})`);
      await lab.addHost(name, addr);
    }
    const attachments: Record<string, Attachment[]> = { n1: [], n2: [] };
    for (const [task, node, addr] of pods) attachments[node]!.push({ task_id: task, pod_namespace: 'bench', pod_name: task, networks: [{ network_id: FRONT.id, address: addr }] });
    const cluster = { networks: [FRONT], nodes: NODES, services, attachments };
    progress(prog, 'pushing the cluster state (network, services) to both plugins');
    for (const h of lab.hosts.values()) await h.plugin!.client.updateState({ full: true, version: 1, state: stateFor(h.name, cluster) });
    const map = new Map<string, string>();
    for (const [task, node, addr] of pods) {
      progress(prog, `pod ${task} on ${node} (${addr}): CNI ADD through shoal-net`);
      const ns = lab.makePodNs(task);
      map.set(task, ns);
      await lab.host(node).plugin!.client.add({ pod: { container_id: `ctr-${task}`, netns: nsPath(ns), ifname: 'eth0', args: { K8S_POD_UID: task } } });
    }
    return { lab, pods: map, close };
  } catch (e) {
    await close();
    throw e;
  }
}
