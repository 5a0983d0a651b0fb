// bench:scheduler: how fast the managers turn one service of many replicas into tasks running on
// many nodes.
//
//   flock /tmp/shoal-bench.lock nice -n 10 npm run bench:scheduler -- --nodes 1000 --tasks 10000 [--runs 3]
//                                        [--agent-procs 4] [--timeout 600] [--cpu-prof DIR] [--verbose]
//
// The cluster: 3 managers, each a process of its own running shoald's manager role exactly as
// shoald assembles it (benchmarks/scheduler-manager.ts: raft on disk with fsync, mTLS raft
// transport, the orchestrator, allocator and scheduler loops on the leader, one mTLS gRPC server
// with the CA, Control and Dispatcher services), on loopback. Processes of their own rather than
// in-process managers, so the leader's CPU time and memory are its own and the agents' work is
// not counted in them; the manager role rather than whole shoald processes, because a shoald
// also runs an agent with a container runtime and takes its node health from gossip: here the
// managers are drained (as large Swarm clusters run them) and a stand-in for gossip calls every
// node alive (nothing fails in this benchmark: it measures placement, not failure detection).
//
// The nodes: `--nodes` simulated agents, in `--agent-procs` processes (4; benchmarks/
// scheduler-agents.ts) so one busy event loop does not hold up a thousand agents' heartbeats.
// Each is the real agent's session code
// (node/agent/agent.ts): its own node certificate, issued directly by the cluster's CA here
// (the join path costs ~10 ms of CSR and signing per node and is not what is measured), its own
// mTLS connection to one of the managers, Session, Heartbeat, Assignments (full set, then deltas)
// and UpdateTaskStatus batched every 100 ms. What is simulated is the executor: an agent reports
// `running` for a task as soon as the task is assigned to it, with no pod, image or container.
// That stands for agents, not containers: the figure is the managers' (validate, orchestrate,
// allocate, schedule, replicate, dispatch, record status), and a container start (see
// bench:start) would only add the same constant on every node. Each agent reports 4 CPUs and
// 8 GiB; the service reserves 10m CPU and 16 MiB per task, so the resource filter does real work.
//
// Measured: from the CreateService call until the leader's store holds all `--tasks` tasks in
// state running (the leader process watches its own store and stamps the moment; same clock).
// Also the leader's CPU time over that interval (/proc/PID/stat) and its resident memory at the
// end. Each run brings up a fresh cluster; the medians of the runs are reported. The placement
// is checked afterwards: every slot once, every task on a worker, the spread even.
// For reference (published, not run here: Nomad is not packaged for this machine), Nomad's
// one-million-container run placed about 3,300 containers per second. Ends with:
//   scheduler nodes=<N> tasks=<T>: <t> tasks/s, leader cpu <s> s, leader rss <MiB> MiB
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { DataKey } from '../manager/secrets/datakey.js';
import { newClusterObject, newNodeObject } from '../manager/ca/cluster-init.js';
import { createKeyAndCSR, createRootCA, issueNodeCertificate, type RootCA } from '../manager/ca/pki.js';
import { raftIdOf } from '../manager/control/model.js';
import { controlDef } from '../manager/control/service.js';
import { CHANNEL_OPTIONS, clientCredentials, type TlsIdentity } from '../manager/security/credentials.js';
import type { ObjectInput } from '../manager/store/types.js';
import { freePort } from '../node/ports.js';
import type { AgentsConfig } from './scheduler-agents.js';
import type { ManagerConfig } from './scheduler-manager.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Children and the run's directory, removed on SIGINT/SIGTERM too (a run leaves nothing behind). */
const live = { procs: new Set<ChildProcess>(), dirs: new Set<string>() };
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    for (const p of live.procs) p.kill('SIGKILL');
    for (const d of live.dirs) rmSync(d, { recursive: true, force: true });
    process.stdout.write(`bench:scheduler: stopped by ${sig}; its processes and files were removed\n`);
    process.exit(130);
  });
}
const MiB = 1024 * 1024;

interface Opts { nodes: number; tasks: number; runs: number; verbose: boolean; timeoutS: number; agentProcs: number; profile?: string }

function parse(argv: string[]): Opts {
  const o: Opts = { nodes: 1000, tasks: 10_000, runs: 3, verbose: false, timeoutS: 600, agentProcs: 4 };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const num = (min: number) => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < min) throw new Error(`${f} needs a whole number of at least ${min}`);
      return v;
    };
    if (f === '--nodes') o.nodes = num(1);
    else if (f === '--tasks') o.tasks = num(1);
    else if (f === '--runs') o.runs = num(1);
    else if (f === '--timeout') o.timeoutS = num(10);
    else if (f === '--agent-procs') o.agentProcs = num(1);
    else if (f === '--verbose') o.verbose = true;
    else if (f === '--cpu-prof') {
      o.profile = argv[++i];
      if (!o.profile) throw new Error('--cpu-prof needs a directory (each manager writes its V8 CPU profile there)');
    }
    else throw new Error(`unknown flag ${f}: use --nodes N --tasks T [--runs R] [--agent-procs P] [--timeout S] [--cpu-prof DIR] [--verbose]`);
  }
  return o;
}

const say = (m: string) => process.stdout.write(m + '\n');
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function identity(ca: RootCA, nodeId: string, role: 'manager' | 'worker'): Promise<TlsIdentity> {
  const { keyPem, csrPem } = await createKeyAndCSR();
  const { certPem } = await issueNodeCertificate({ ca, csrPem, nodeId, role, clusterId: 'bench' });
  return { caPem: ca.certPem, certPem, keyPem };
}

/** CPU time (s) of a process so far, from /proc/PID/stat (utime + stime). */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100; // USER_HZ is 100 on Linux
}

function memMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function readTail(f: string): string {
  try {
    return readFileSync(f, 'utf8').trim().split('\n').slice(-15).join('\n    ');
  } catch {
    return '(none)';
  }
}

interface ManagerProc {
  name: string;
  proc: ChildProcess;
  api: string;
  leader: boolean;
  lines: ((o: any) => void)[];
  exited: Promise<void>;
}

interface AgentGroup {
  proc: ChildProcess;
  sessions: number;
  streams: number;
  exited: Promise<void>;
}

function startAgents(cfgFile: string): AgentGroup {
  const proc = spawn(process.execPath, [join(here, 'scheduler-agents.js'), cfgFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  live.procs.add(proc);
  proc.once('exit', () => live.procs.delete(proc));
  const g: AgentGroup = { proc, sessions: 0, streams: 0, exited: new Promise((r) => proc.once('exit', () => r())) };
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    try {
      const o = JSON.parse(l) as { sessions: number; streams: number };
      g.sessions = o.sessions;
      g.streams = o.streams;
    } catch {
      // not a progress line
    }
  });
  return g;
}

function startManager(cfgFile: string, name: string, verbose: boolean): ManagerProc {
  const proc = spawn(process.execPath, [join(here, 'scheduler-manager.js'), cfgFile], { stdio: ['ignore', 'pipe', verbose ? 'inherit' : 'pipe'] });
  live.procs.add(proc);
  proc.once('exit', () => live.procs.delete(proc));
  if (!verbose) proc.stderr!.pipe(createWriteStream(cfgFile.replace(/\.json$/, '.log')));
  const m: ManagerProc = { name, proc, api: '', leader: false, lines: [], exited: new Promise((r) => proc.once('exit', () => r())) };
  let err = '';
  proc.stderr?.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
  proc.once('exit', (code, sig) => {
    if (code !== 0 && sig !== 'SIGTERM' && sig !== 'SIGKILL') say(`  manager ${name} exited (${code ?? sig}): ${err.trim().split('\n').slice(-5).join(' | ')}`);
  });
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    let o: any;
    try {
      o = JSON.parse(l);
    } catch {
      return;
    }
    if (o.ready) m.api = o.api;
    if (o.leader !== undefined) m.leader = o.leader;
    for (const f of m.lines) f(o);
  });
  return m;
}

async function until<T>(what: string, f: () => T | undefined | false, ms: number, every = 100): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

function call<T>(c: any, method: string, req: unknown, ms = 60_000): Promise<T> {
  return new Promise((res, rej) => c[method](req, { deadline: Date.now() + ms }, (e: grpc.ServiceError | null, r: T) => (e ? rej(new Error(`${method}: ${e.details ?? e.message}`)) : res(r))));
}

interface RunResult { seconds: number; rate: number; cpu: number; rss: number; hwm: number; agentsCpu: number; spread: string }

async function run(o: Opts, n: number, ca: RootCA, mgrIds: TlsIdentity[], agentIds: TlsIdentity[]): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), `shoal-bench-sched-${process.pid}-${n}-`));
  live.dirs.add(dir);
  const names = ['m0', 'm1', 'm2'];
  const managers: ManagerProc[] = [];
  const groups: AgentGroup[] = [];
  let client: any;
  try {
    const raft = await Promise.all(names.map(() => freePort('127.0.0.1')));
    const api = await Promise.all(names.map(() => freePort('127.0.0.1')));
    const members: ManagerConfig['members'] = names.map((m, i) => [raftIdOf(m), { raft: `127.0.0.1:${raft[i]}`, api: `127.0.0.1:${api[i]}` }]);
    const seed: ObjectInput[] = [newClusterObject('bench', ca, DataKey.generate() /* the bench issues its certificates itself: its managers never open the CA key */)];
    names.forEach((m, i) => {
      const obj = newNodeObject({ nodeId: m, role: 'manager', hostname: m, addr: `127.0.0.1:${api[i]}`, certPem: mgrIds[i]!.certPem, raft: { id: raftIdOf(m), addr: `127.0.0.1:${raft[i]}` } });
      // Managers take no tasks here (no agent runs beside them): drained, as large clusters run them.
      seed.push({ ...obj, spec: { ...(obj.spec as object), availability: 'drain' }, status: { ...(obj.status as object), state: 'ready' } });
    });
    agentIds.forEach((id, i) => {
      const obj = newNodeObject({ nodeId: `w${i}`, role: 'worker', hostname: `w${i}`, addr: '', certPem: id.certPem });
      seed.push({ ...obj, status: { ...(obj.status as object), state: 'ready' } });
    });
    names.forEach((m, i) => {
      const cfg: ManagerConfig = { stateDir: join(dir, m), nodeId: m, clusterId: 'bench', raftAddr: `127.0.0.1:${raft[i]}`, apiAddr: `127.0.0.1:${api[i]}`, identity: mgrIds[i]!, voters: names.map(raftIdOf), members, verbose: o.verbose, ...(o.profile ? { profile: join(o.profile, `run${n}-${m}.cpuprofile`) } : {}), ...(i === 0 ? { seed } : {}) };
      const f = join(dir, `${m}.json`);
      writeFileSync(f, JSON.stringify(cfg), { mode: 0o600 });
      managers.push(startManager(f, m, o.verbose));
    });
    let seeded = false;
    managers[0]!.lines.push((x) => (seeded ||= x.seeded !== undefined));
    await until('3 managers ready, a leader, the node objects written', () => managers.every((m) => m.api) && managers.some((m) => m.leader) && seeded, 60_000);
    const leader = managers.find((m) => m.leader)!;
    say(`  run ${n}: 3 managers up (leader ${leader.name}, pid ${leader.proc.pid}); starting ${o.nodes} agents`);

    // The agents, in groups of their own processes; agent i connects first to manager i % 3.
    const tAgents = Date.now();
    const groupSize = Math.ceil(o.nodes / o.agentProcs);
    for (let g = 0; g * groupSize < o.nodes; g++) {
      const slice = agentIds.slice(g * groupSize, (g + 1) * groupSize).map((identity, k) => ({ nodeId: `w${g * groupSize + k}`, identity }));
      const cfg: AgentsConfig = { agents: slice, managers: managers.map((m) => m.api), offset: g * groupSize, verbose: o.verbose };
      const f = join(dir, `agents-${g}.json`);
      writeFileSync(f, JSON.stringify(cfg), { mode: 0o600 });
      groups.push(startAgents(f));
    }
    let lastSay = 0;
    await until(`${o.nodes} agents in session`, () => {
      const streams = groups.reduce((n, g) => n + g.streams, 0);
      if (Date.now() - lastSay > 5000) {
        say(`    agents: ${groups.reduce((n, g) => n + g.sessions, 0)} sessions, ${streams} assignment streams (${((Date.now() - tAgents) / 1000).toFixed(1)} s)`);
        lastSay = Date.now();
      }
      return streams >= o.nodes;
    }, o.timeoutS * 1000);
    const Ctor = grpc.makeGenericClientConstructor(controlDef(), 'Control');
    client = new Ctor(leader.api, clientCredentials(mgrIds[0]!), CHANNEL_OPTIONS);
    for (;;) {
      const nodes = (await call<{ nodes: { role: string; capacity: { cpu_millis: number } }[] }>(client, 'ListNodes', {})).nodes;
      const described = nodes.filter((x) => x.role === 'worker' && Number(x.capacity?.cpu_millis) > 0).length;
      if (described === o.nodes) break;
      if (Date.now() - lastSay > 2000) {
        say(`    agents: ${described} nodes described in the store (${((Date.now() - tAgents) / 1000).toFixed(1)} s)`);
        lastSay = Date.now();
      }
      if (Date.now() - tAgents > o.timeoutS * 1000) throw new Error('timed out waiting for the agents');
      await new Promise((r) => setTimeout(r, 500));
    }
    say(`  run ${n}: ${o.nodes} agents in session (${((Date.now() - tAgents) / 1000).toFixed(1)} s); creating the service of ${o.tasks} replicas (load ${load()})`);

    const pid = leader.proc.pid!;
    const cpu0 = cpuSeconds(pid);
    const agentsCpu0 = groups.reduce((n, g) => n + cpuSeconds(g.proc.pid!), 0);
    let done: any;
    let lastProgress = '';
    let t0 = 0;
    let leaderMoved = false;
    for (const m of managers) m.lines.push((x) => {
      if (x.leader !== undefined && m !== leader) leaderMoved ||= x.leader;
      if (x.done && !done) done = { ...x, by: m.name };
    });
    leader.lines.push((x) => {
      if (x.done) return;
      else if (x.at && !done) {
        const line = `    ${((x.at - t0) / 1000).toFixed(1)} s: ${x.created} created, ${x.assigned} placed, ${x.running} running of ${x.want}`;
        if (line.slice(line.indexOf(':')) !== lastProgress) say(line);
        lastProgress = line.slice(line.indexOf(':'));
      }
    });
    t0 = Date.now();
    await call(client, 'CreateService', {
      name: 'bench',
      labels: {},
      spec: { mode: 'replicated', replicas: o.tasks, main: { image: 'busybox' }, reservations: { cpu_millis: 10, memory_bytes: 16 * MiB } },
    });
    await until(`all ${o.tasks} tasks running`, () => done, o.timeoutS * 1000, 20);
    const seconds = (done.done - t0) / 1000;
    if (leaderMoved) say(`    note: raft leadership moved during the run (the machine is too busy: load ${load()}); the figures mix two leaders`);
    say(`    stages (from the service's creation): ${Object.entries(done.stages as Record<string, string>).map(([k, v]) => `${k}: ${v}`).join('; ')}`);
    const cpu = cpuSeconds(pid) - cpu0;
    const rss = memMiB(pid, 'VmRSS');
    const hwm = memMiB(pid, 'VmHWM');
    const agentsCpu = groups.reduce((n, g) => n + cpuSeconds(g.proc.pid!), 0) - agentsCpu0;

    // Check the placement: every slot once, on workers, evenly spread.
    const tasks = (await call<{ tasks: { slot: number; node_id: string; state: string }[] }>(client, 'ListTasks', { service: 'bench', node: '' })).tasks;
    const slots = new Set(tasks.filter((t) => t.state === 'running').map((t) => Number(t.slot)));
    const perNode = new Map<string, number>();
    for (const t of tasks) perNode.set(t.node_id, (perNode.get(t.node_id) ?? 0) + 1);
    const counts = [...perNode.values()];
    if (slots.size !== o.tasks || tasks.length !== o.tasks) throw new Error(`placement check: ${tasks.length} tasks, ${slots.size} distinct running slots, want ${o.tasks}`);
    if ([...perNode.keys()].some((id) => !id.startsWith('w'))) throw new Error('placement check: a task landed on a manager');
    const spread = `${perNode.size} nodes hold ${Math.min(...counts)}..${Math.max(...counts)} tasks each`;
    const rate = o.tasks / seconds;
    say(`  run ${n}: ${o.tasks} running in ${seconds.toFixed(2)} s = ${Math.round(rate)} tasks/s; leader cpu ${cpu.toFixed(2)} s, rss ${rss.toFixed(0)} MiB (peak ${hwm.toFixed(0)}); agents' processes cpu ${agentsCpu.toFixed(2)} s; ${spread}; load ${load()}`);
    return { seconds, rate, cpu, rss, hwm, agentsCpu, spread };
  } catch (e) {
    for (const m of managers) say(`  ${m.name} log (last lines): ${readTail(join(dir, `${m.name}.log`))}`);
    throw e;
  } finally {
    for (const g of groups) g.proc.kill('SIGTERM');
    await Promise.race([Promise.all(groups.map((g) => g.exited)), new Promise((r) => setTimeout(r, 10_000))]);
    for (const g of groups) if (g.proc.exitCode === null && g.proc.signalCode === null) g.proc.kill('SIGKILL');
    client?.close();
    for (const m of managers) m.proc.kill('SIGTERM');
    await Promise.race([Promise.all(managers.map((m) => m.exited)), new Promise((r) => setTimeout(r, 10_000))]);
    for (const m of managers) if (m.proc.exitCode === null && m.proc.signalCode === null) m.proc.kill('SIGKILL');
    await Promise.all(managers.map((m) => m.exited));
    rmSync(dir, { recursive: true, force: true });
    live.dirs.delete(dir);
  }
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  say(`bench:scheduler: 3 managers (own processes, loopback, mTLS, raft with fsync), ${o.nodes} simulated agents (real agent sessions, no containers), one service of ${o.tasks} replicas; ${o.runs} run(s); ${cpus().length} CPUs, load ${load()}`);
  const t0 = Date.now();
  const ca = await createRootCA('bench');
  const mgrIds = await Promise.all(['m0', 'm1', 'm2'].map((m) => identity(ca, m, 'manager')));
  const agentIds: TlsIdentity[] = [];
  for (let i = 0; i < o.nodes; i += 50) {
    agentIds.push(...(await Promise.all(Array.from({ length: Math.min(50, o.nodes - i) }, (_, k) => identity(ca, `w${i + k}`, 'worker')))));
    if ((i / 50) % 5 === 4) say(`  issued ${agentIds.length} of ${o.nodes} node certificates (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  say(`  ${o.nodes + 3} node certificates issued by the cluster CA in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const results: RunResult[] = [];
  for (let n = 1; n <= o.runs; n++) results.push(await run(o, n, ca, mgrIds, agentIds));
  const rate = median(results.map((r) => r.rate));
  const cpu = median(results.map((r) => r.cpu));
  const rss = median(results.map((r) => r.rss));
  say(`runs: ${results.map((r) => `${Math.round(r.rate)}/s (${r.seconds.toFixed(2)} s)`).join(', ')}; medians: ${Math.round(rate)} tasks/s, leader cpu ${cpu.toFixed(2)} s, rss ${rss.toFixed(0)} MiB; load ${load()}`);
  say(`verdict: ${rate >= 5000 ? 'meets' : 'below'} the goal of 5,000 tasks/s (Nomad's published one-million-container run: about 3,300/s)`);
  say(`scheduler nodes=${o.nodes} tasks=${o.tasks}: ${Math.round(rate)} tasks/s, leader cpu ${cpu.toFixed(2)} s, leader rss ${rss.toFixed(0)} MiB`);
}

main().then(
  () => process.exit(0),
  (e) => {
    say(`bench:scheduler failed: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
