// raft-vs-etcd: shoal's replicated store against etcd, same machine, same run, same load.
//
//   npm run bench:raft -- --clients 64 --seconds 15 [--warmup 3] [--rounds 3] [--generators N]
//                         [--no-memory | --memory-only] [--memory-objects 100000]
//
// Starts 3 etcd members (Debian's etcd-server, /usr/bin/etcd) and 3 shoal managers
// (manager/store-main.js) on loopback, each with its own temp data dir on the same filesystem;
// both fsync every write batch before acknowledging (etcd's WAL; shoal's DiskStorage). The load
// generator (benchmarks/raft-load.js) runs as several processes of closed-loop clients doing Puts
// of a 16-byte key (100,000-key space) and a 256-byte value, to the leader of the system under
// test (found before each run; `--target all` spreads them round-robin over the 3 members, both
// systems then forward follower writes to their leader inside raft). The two systems are
// measured alternately, `rounds` times each; medians are reported. No CPU pinning is applied to
// either system or to the generators: both get the same placement (the whole machine).
// --clients takes one value or a comma list (1,16,64,256). The last line for each C is:
//   raft-vs-etcd C=<C>: shoal <w> w/s p99 <ms> ms, etcd <w> w/s p99 <ms> ms, ratio <x>
// Then the memory comparison: a fresh etcd cluster and a fresh shoal cluster are each filled with
// --memory-objects objects of 1 KiB (transactions of 100), every member is checked to have
// applied them, and after a few seconds' settling each process's resident set (VmRSS) is
// printed, ending with
//   raft-vs-etcd memory: shoal <max> MiB RSS per manager, etcd <max> MiB RSS per member, ratio <x>
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { StoreClient } from '../manager/storeapi/client.js';
import { encodeValue } from '../manager/storeapi/convert.js';
import { loadProto } from '../proto/load.js';

const here = dirname(fileURLToPath(import.meta.url));
const ETCD = '/usr/bin/etcd';

interface Opts { clients: number[]; seconds: number; warmup: number; rounds: number; generators?: number; memory: boolean; memoryOnly: boolean; memoryObjects: number; target: 'leader' | 'all' }

function parse(argv: string[]): Opts {
  const o: Opts = { clients: [64], seconds: 15, warmup: 3, rounds: 3, memory: true, memoryOnly: false, memoryObjects: 100_000, target: 'leader' };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${f} needs a value`);
      return x;
    };
    const num = (s: string) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${f} needs a positive integer, got ${s}`);
      return n;
    };
    if (f === '--clients') o.clients = v().split(',').map(num);
    else if (f === '--seconds') o.seconds = num(v());
    else if (f === '--warmup') o.warmup = num(v());
    else if (f === '--rounds') o.rounds = num(v());
    else if (f === '--generators') o.generators = num(v());
    else if (f === '--no-memory') o.memory = false;
    else if (f === '--memory-only') o.memoryOnly = true;
    else if (f === '--target') {
      const t = v();
      if (t !== 'leader' && t !== 'all') throw new Error(`--target must be leader or all, got ${t}`);
      o.target = t;
    }
    else if (f === '--memory-objects') o.memoryObjects = num(v());
    else throw new Error(`unknown flag ${f}; see the header of benchmarks/raft-vs-etcd.ts`);
  }
  return o;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children: ChildProcess[] = [];

function start(cmd: string, args: string[], name: string): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  let tail: string[] = [];
  createInterface({ input: c.stderr! }).on('line', (l) => {
    tail.push(l);
    if (tail.length > 20) tail = tail.slice(-20);
  });
  c.on('exit', (code, sig) => {
    if (!stopping && !stopped.has(c) && code !== 0) process.stderr.write(`${name} exited (${code ?? sig}); last output:\n${tail.join('\n')}\n`);
  });
  return c;
}

let stopping = false;
/** Processes stopped on purpose (a phase's clusters), whose exit is not an error. */
const stopped = new WeakSet<ChildProcess>();
function stopAll(procs: ChildProcess[]): void {
  for (const p of procs) {
    stopped.add(p);
    p.kill('SIGKILL');
  }
}
function killAll(): void {
  stopping = true;
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

async function freePorts(n: number): Promise<number[]> {
  const net = await import('node:net');
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<import('node:net').Server>((r) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => r(s));
  })));
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** CPU time (user + system) of a process so far, ms, from /proc (clock ticks of 10 ms). */
function cpuMsOf(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) * 10; // utime, stime (fields 14, 15)
  } catch {
    return 0;
  }
}

async function startEtcd(dir: string, ports: number[], etcdProcs: ChildProcess[]): Promise<string[]> {
  if (!existsSync(ETCD)) throw new Error(`${ETCD} not found: install Debian's etcd-server package`);
  const peer = (i: number) => `http://127.0.0.1:${ports[3 + i]}`;
  const cluster = [0, 1, 2].map((i) => `e${i}=${peer(i)}`).join(',');
  for (const i of [0, 1, 2]) {
    etcdProcs.push(start(ETCD, [
      '--name', `e${i}`, '--data-dir', join(dir, `etcd${i}`),
      '--listen-client-urls', `http://127.0.0.1:${ports[i]}`, '--advertise-client-urls', `http://127.0.0.1:${ports[i]}`,
      '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i),
      '--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', `bench-${process.pid}`,
      '--log-level', 'error', '--logger', 'zap',
    ], `etcd e${i}`));
  }
  return [0, 1, 2].map((i) => `127.0.0.1:${ports[i]}`);
}

// How shoald's bin runs Node (its shebang): a 32 MiB young generation instead of 16 MiB halves
// the scavenges of a manager under write load (measured: about 7 % less CPU per write).
const MANAGER_NODE_FLAGS = ['--max-semi-space-size=32'];
// The generators (the same for both systems) spent about a quarter of their CPU in scavenges
// with the default; the machine's CPU they do not use is left to the system under test.
const GENERATOR_NODE_FLAGS = ['--max-semi-space-size=32'];

async function startShoal(dir: string, ports: number[]): Promise<{ apis: string[]; procs: ChildProcess[] }> {
  const main = join(here, '..', 'manager', 'store-main.js');
  const peers = [1, 2, 3].flatMap((i) => ['--peer', `${i}=127.0.0.1:${ports[i - 1]},127.0.0.1:${ports[2 + i]}`]);
  const procs: ChildProcess[] = [];
  for (const i of [1, 2, 3]) {
    const c = start(process.execPath, [...MANAGER_NODE_FLAGS, main, '--id', String(i), '--data', join(dir, `shoal${i}`), '--raft', `127.0.0.1:${ports[i - 1]}`, '--api', `127.0.0.1:${ports[2 + i]}`, ...peers], `shoal ${i}`);
    procs.push(c);
  }
  return { apis: [1, 2, 3].map((i) => `127.0.0.1:${ports[2 + i]}`), procs };
}

interface GenResult { ops: number; errors: number; cpuMs?: number; lat: number[] }
interface LoadResult { wps: number; p50: number; p99: number; errors: number; serverCpuMs: number; genCpuMs: number }

async function runLoad(system: 'etcd' | 'shoal', endpoints: string[], clients: number, o: Opts, servers: ChildProcess[] = []): Promise<LoadResult> {
  const gens = Math.min(clients, o.generators ?? Math.min(4, Math.max(2, Math.ceil(clients / 32))));
  const startAt = Date.now() + 500;
  // The servers' CPU time over the measurement window (diagnostic: CPU cost per write).
  const serverCpu = () => servers.reduce((t, p) => t + cpuMsOf(p.pid), 0);
  let cpu0 = 0;
  const cpuTimer = setTimeout(() => (cpu0 = serverCpu()), startAt + o.warmup * 1000 - Date.now());
  const per = Array.from({ length: gens }, (_, g) => Math.floor(clients / gens) + (g < clients % gens ? 1 : 0));
  const results = await Promise.all(per.map((c, g) => new Promise<GenResult>((resolve, reject) => {
    const p = start(process.execPath, [...GENERATOR_NODE_FLAGS, join(here, 'raft-load.js'), system, endpoints.join(','), String(c), String(startAt), String(o.warmup), String(o.seconds), String(g)], `generator ${g}`);
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    // 'close', not 'exit': the result line can still be in the pipe when the process has exited.
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`generator ${g} failed (${code})`));
      try {
        resolve(JSON.parse(out) as GenResult);
      } catch (e) {
        reject(new Error(`generator ${g} printed no valid result (${(e as Error).message}); ${out.length} bytes`));
      }
    });
  })));
  clearTimeout(cpuTimer);
  const serverCpuMs = serverCpu() - cpu0;
  const lat = results.flatMap((r) => r.lat).sort((a, b) => a - b);
  const ops = results.reduce((s, r) => s + r.ops, 0);
  const q = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! : NaN);
  return { wps: ops / o.seconds, p50: q(0.5), p99: q(0.99), errors: results.reduce((s, r) => s + r.errors, 0), serverCpuMs, genCpuMs: results.reduce((s, r) => s + (r.cpuMs ?? 0), 0) };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function waitWritable(system: 'etcd' | 'shoal', endpoints: string[]): Promise<void> {
  // One write through every member must succeed: the cluster has a leader and every member
  // answers (a write at a follower is forwarded). Generous deadlines: the machine may be busy.
  const end = Date.now() + 120_000;
  for (let n = 0; ; n++) {
    try {
      for (const e of endpoints) {
        if (system === 'shoal') {
          const c = new StoreClient(e);
          try {
            await c.put({ kind: 'config', id: `ready-${n}`, name: `ready-${n}`, spec: null }, undefined, 10_000);
          } finally {
            c.close();
          }
        } else {
          const KV = (loadProto('etcd/rpc.proto') as any).etcdserverpb.KV as grpc.ServiceClientConstructor;
          const c = new KV(e, grpc.credentials.createInsecure()) as any;
          try {
            await new Promise((resolve, reject) => c.Put({ key: Buffer.from(`ready-${n}`), value: Buffer.from('x') }, { deadline: Date.now() + 10_000 }, (err: Error | null) => (err ? reject(err) : resolve(undefined))));
          } finally {
            c.close();
          }
        }
      }
      return;
    } catch (e) {
      if (Date.now() > end) throw new Error(`${system} did not become writable within 120 s: ${(e as Error).message}`);
      await sleep(500);
    }
  }
}

/** The endpoint of the current leader (etcd: maintenance Status over its JSON gateway). */
async function leaderOf(system: 'etcd' | 'shoal', endpoints: string[]): Promise<string> {
  if (system === 'shoal') {
    for (const e of endpoints) {
      const c = new StoreClient(e);
      const st = await c.status().catch(() => undefined);
      c.close();
      if (st?.role === 'leader') return e;
    }
  } else {
    const sts = await Promise.all(endpoints.map(async (e) => {
      const r = await fetch(`http://${e}/v3/maintenance/status`, { method: 'POST', body: '{}' });
      return { e, st: (await r.json()) as { header: { member_id: string }; leader: string } };
    }));
    const hit = sts.find((x) => x.st.header.member_id === x.st.leader);
    if (hit) return hit.e;
  }
  throw new Error(`cannot find the ${system} leader`);
}

/** Resident set size of a process, bytes (VmRSS from /proc). */
function rssOf(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

const MiB = (b: number) => (b / 2 ** 20).toFixed(0);

/** Both systems' clusters, started on fresh data directories. */
async function startClusters(dir: string, ports: number[]): Promise<{ etcd: string[]; etcdProcs: ChildProcess[]; shoal: { apis: string[]; procs: ChildProcess[] } }> {
  const etcdProcs: ChildProcess[] = [];
  const etcd = await startEtcd(dir, ports.slice(0, 6), etcdProcs);
  const shoal = await startShoal(dir, ports.slice(6));
  // Each manager prints one line when ready; one that exits first fails the run (no hang).
  for (const c of shoal.procs) {
    await new Promise<void>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`a shoal manager exited (${code}) before it was ready`));
      c.once('exit', onExit);
      createInterface({ input: c.stdout! }).once('line', () => {
        c.off('exit', onExit);
        resolve();
      });
    });
  }
  await waitWritable('etcd', etcd);
  await waitWritable('shoal', shoal.apis);
  return { etcd, etcdProcs, shoal };
}

const MEM_BATCH = 100;
const memKey = (j: number) => 'mem' + String(j).padStart(8, '0');

/**
 * Writes n objects of 1 KiB in transactions of MEM_BATCH, 16 in flight, through `put(keys)`. A
 * failed transaction (a leader change on a busy machine) is sent again: its puts are idempotent.
 */
async function fill(n: number, put: (from: number, to: number) => Promise<unknown>): Promise<number> {
  const t0 = Date.now();
  const inflight = new Set<Promise<unknown>>();
  const retrying = async (from: number, to: number): Promise<unknown> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await put(from, to);
      } catch (e) {
        if (attempt >= 10) throw e;
        await sleep(500);
      }
    }
  };
  for (let i = 0; i < n; i += MEM_BATCH) {
    const p = retrying(i, Math.min(n, i + MEM_BATCH));
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    if (inflight.size >= 16) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  return (Date.now() - t0) / 1000;
}

/**
 * The memory comparison: fresh clusters of both systems, each filled with n objects of 1 KiB,
 * every member checked to have applied them, then each process's RSS after a settling pause.
 */
async function memoryPhase(dir: string, n: number): Promise<string> {
  const ports = await freePorts(12);
  const { etcd, etcdProcs, shoal } = await startClusters(join(dir, 'memory'), ports);
  const value = Buffer.alloc(1024, 0x62);
  // etcd: KV.Txn of Puts at the leader (a follower forwards to it if the leader changes).
  const KV = (loadProto('etcd/rpc.proto') as any).etcdserverpb.KV as grpc.ServiceClientConstructor;
  const el = await leaderOf('etcd', etcd);
  const ec = new KV(el, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 64 << 20 }) as any;
  const etcdSecs = await fill(n, (from, to) => new Promise((resolve, reject) => {
    const success = [];
    for (let j = from; j < to; j++) success.push({ request_put: { key: Buffer.from(memKey(j)), value } });
    ec.Txn({ compare: [], success, failure: [] }, { deadline: Date.now() + 60_000 }, (err: Error | null) => (err ? reject(err) : resolve(undefined)));
  }));
  ec.close();
  // shoal: Store.Txn of puts at the leader.
  const sl = await leaderOf('shoal', shoal.apis);
  const sc = new StoreClient(sl);
  const spec = encodeValue(value);
  const shoalSecs = await fill(n, (from, to) => {
    const ops = [];
    for (let j = from; j < to; j++) ops.push({ type: 2, object: { kind: 'config', id: memKey(j), name: memKey(j), labels: {}, service_id: '', node_id: '', spec, status: Buffer.alloc(0) } });
    return sc.txn(ops, 60_000);
  });
  sc.close();
  // Every member has applied everything once a linearizable read of the last object answers there.
  const last = memKey(n - 1);
  for (const a of etcd) {
    const c = new KV(a, grpc.credentials.createInsecure()) as any;
    const r = await new Promise<any>((resolve, reject) => c.Range({ key: Buffer.from(last) }, (err: Error | null, res: any) => (err ? reject(err) : resolve(res))));
    c.close();
    if (!r.kvs || r.kvs.length !== 1) throw new Error(`etcd member ${a} does not hold ${last}`);
  }
  for (const a of shoal.apis) {
    const c = new StoreClient(a);
    await c.get('config', last);
    c.close();
  }
  // Let both runtimes settle (Go's and V8's collectors run on their own schedule), then measure.
  await sleep(5000);
  const reports = await Promise.all(shoal.procs.map((p) => new Promise<{ rss: number; objects: number; heapUsed: number; arrayBuffers?: number; logEntries?: number }>((resolve) => {
    const rl = createInterface({ input: p.stdout! });
    rl.on('line', (l) => {
      if (l.includes('"memory"')) {
        rl.close();
        resolve(JSON.parse(l));
      }
    });
    p.kill('SIGUSR2');
  })));
  const shoalRss = shoal.procs.map((p) => rssOf(p.pid));
  const etcdRss = etcdProcs.map((p) => rssOf(p.pid));
  console.log(`memory: ${n} objects of 1 KiB written to each system in transactions of ${MEM_BATCH} (etcd ${etcdSecs.toFixed(1)} s, shoal ${shoalSecs.toFixed(1)} s); RSS after 5 s:`);
  etcdRss.forEach((r, i) => console.log(`memory: etcd member ${i + 1}: RSS ${MiB(r)} MiB`));
  reports.forEach((r, i) => console.log(`memory: shoal manager ${i + 1}: RSS ${MiB(shoalRss[i]!)} MiB (${r.objects} objects; heap used ${MiB(r.heapUsed)} MiB, array buffers ${MiB(r.arrayBuffers ?? 0)} MiB, raft log in memory ${r.logEntries ?? '?'} entries)`));
  stopAll([...etcdProcs, ...shoal.procs]);
  const sMax = Math.max(...shoalRss);
  const eMax = Math.max(...etcdRss);
  return `raft-vs-etcd memory: shoal ${MiB(sMax)} MiB RSS per manager (max of 3), etcd ${MiB(eMax)} MiB RSS per member (max of 3), ratio ${(sMax / eMax).toFixed(2)}`;
}

async function throughputPhase(dir: string, o: Opts, finals: string[]): Promise<void> {
  // All twelve ports in one go: chosen separately, the second set could repeat a port of the
  // first that etcd has not bound yet.
  const ports = await freePorts(12);
  const { etcd, etcdProcs, shoal } = await startClusters(join(dir, 'throughput'), ports);
  console.log(`raft-vs-etcd: 3 etcd members (${ETCD}) and 3 shoal managers on loopback; data in ${dir}; ${o.rounds} alternating rounds of ${o.warmup} s warm-up + ${o.seconds} s per system; clients write to ${o.target === 'leader' ? 'the leader' : 'all members round-robin'}`);
  const lines: string[] = [];
  for (const C of o.clients) {
    const res: Record<'etcd' | 'shoal', LoadResult[]> = { etcd: [], shoal: [] };
    for (let r = 0; r < o.rounds; r++) {
      for (const sys of (r % 2 === 0 ? ['etcd', 'shoal'] : ['shoal', 'etcd']) as ('etcd' | 'shoal')[]) {
        const all = sys === 'etcd' ? etcd : shoal.apis;
        const targets = o.target === 'all' ? all : [await leaderOf(sys, all)];
        const x = await runLoad(sys, targets, C, o, sys === 'etcd' ? etcdProcs : shoal.procs);
        res[sys].push(x);
        const n = Math.max(1, x.wps * o.seconds);
        console.log(`  C=${C} round ${r + 1} ${sys.padEnd(5)}: ${x.wps.toFixed(0)} w/s, p50 ${x.p50.toFixed(2)} ms, p99 ${x.p99.toFixed(2)} ms${x.errors ? `, ${x.errors} errors` : ''}; CPU per write: servers ${(x.serverCpuMs / n).toFixed(3)} ms, generators ${(x.genCpuMs / n).toFixed(3)} ms; load ${loadavg()[0]!.toFixed(1)}`);
      }
    }
    const m = (s: 'etcd' | 'shoal') => ({ wps: median(res[s].map((x) => x.wps)), p50: median(res[s].map((x) => x.p50)), p99: median(res[s].map((x) => x.p99)) });
    const s = m('shoal');
    const e = m('etcd');
    const line = `raft-vs-etcd C=${C}: shoal ${s.wps.toFixed(0)} w/s p99 ${s.p99.toFixed(1)} ms, etcd ${e.wps.toFixed(0)} w/s p99 ${e.p99.toFixed(1)} ms, ratio ${(s.wps / e.wps).toFixed(2)}`;
    lines.push(`| ${C} | ${s.wps.toFixed(0)} | ${s.p50.toFixed(2)} | ${s.p99.toFixed(1)} | ${e.wps.toFixed(0)} | ${e.p50.toFixed(2)} | ${e.p99.toFixed(1)} | ${(s.wps / e.wps).toFixed(2)} |`);
    finals.push(line);
    console.log(line);
  }
  if (o.clients.length > 1) {
    console.log('| C | shoal w/s | shoal p50 ms | shoal p99 ms | etcd w/s | etcd p50 ms | etcd p99 ms | ratio |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const l of lines) console.log(l);
  }
  // The memory phase runs on fresh clusters: stop these first.
  stopAll([...etcdProcs, ...shoal.procs]);
  await sleep(500);
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'shoal-bench-raft-'));
  const cleanup = () => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('SIGINT', () => { cleanup(); process.exit(130); });
  process.on('SIGTERM', () => { cleanup(); process.exit(143); });
  // Never leave the clusters running behind a crash.
  process.on('uncaughtException', (e) => {
    console.error(`raft-vs-etcd: ${e.stack ?? e}`);
    cleanup();
    process.exit(1);
  });
  try {
    const finals: string[] = [];
    if (!o.memoryOnly) await throughputPhase(dir, o, finals);
    if (o.memory || o.memoryOnly) finals.push(await memoryPhase(dir, o.memoryObjects));
    console.log(`load average: ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    for (const l of finals) console.log(l); // the output ends with the result line(s)
  } finally {
    cleanup();
  }
}

main().catch((e) => {
  console.error(`raft-vs-etcd: ${(e as Error).stack ?? e}`);
  killAll();
  process.exit(1);
});
