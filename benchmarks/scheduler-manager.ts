// One manager of the scheduler benchmark (benchmarks/scheduler.ts), in a process of its own so
// the leader's CPU time and memory are its own. It is shoald's manager role as shoald assembles
// it (node/daemon.ts startManager): the Manager (raft on disk with fsync, mTLS raft transport,
// the leader's orchestrator, allocator and scheduler) and one mTLS gRPC server with the CA,
// Control, RaftMembership, Dispatcher and LogBroker services. Two things differ, both said in
// the benchmark's header: no agent or container runtime runs here (the managers are drained),
// and node health comes from a stand-in for gossip that calls every node alive (no node dies
// in this benchmark; it measures placement, not failure detection).
//
// Reads its configuration (JSON) from the file named by argv[2]; writes JSON lines on stdout:
// {"ready":true,"api":ADDR}, {"leader":BOOL}, and while leader, progress of the service being
// measured: {"at":MS,"created":N,"assigned":N,"running":N,"want":N} and {"done":MS,...}.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session as Inspector } from 'node:inspector';
import { dirname } from 'node:path';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { caTable } from '../manager/ca/service.js';
import { Manager } from '../manager/control/manager.js';
import { raftMembershipTable } from '../manager/control/membership.js';
import { caDef, controlDef, controlTable, dispatcherDef, raftMembershipDef } from '../manager/control/service.js';
import { Dispatcher } from '../manager/dispatcher/service.js';
import { servicesTable } from '../manager/services/control.js';
import { networksTable } from '../manager/networks/control.js';
import { LogBroker, logBrokerDef, logBrokerTable } from '../manager/services/logs.js';
import { TASK_STATE_ORDER, type ServiceObject, type TaskObject } from '../manager/services/model.js';
import { secureService } from '../manager/security/authz.js';
import { ServerTls, type TlsIdentity } from '../manager/security/credentials.js';
import { secretsTable } from '../manager/secrets/control.js';
import { DataKey, saveDataKey } from '../manager/secrets/datakey.js';
import { NodeFiles } from '../manager/secrets/dispatch.js';
import { DataKeyKeeper } from '../manager/secrets/keeper.js';
import { dataKeyTable } from '../manager/secrets/keyservice.js';
import type { ObjectInput, StoreEvent } from '../manager/store/types.js';
import { writeDurable } from '../node/state.js';
import { apiServer } from '../node/listeners.js';

export interface ManagerConfig {
  stateDir: string;
  nodeId: string;
  clusterId: string;
  raftAddr: string;
  apiAddr: string;
  identity: TlsIdentity;
  voters: number[];
  members: [number, { raft: string; api: string }][];
  /** Objects the first leader writes (cluster, node objects); given to one manager only. */
  seed?: ObjectInput[];
  verbose?: boolean;
  /** Write a V8 CPU profile of the measured interval (service created .. all running) here. */
  profile?: string;
}

const cfg = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as ManagerConfig;
const out = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 23)} [${cfg.nodeId}] ${m}\n`);

writeDurable(join(cfg.stateDir, 'raft-members.json'), JSON.stringify(cfg.members));
const mgr = new Manager({
  stateDir: cfg.stateDir,
  nodeId: cfg.nodeId,
  clusterId: cfg.clusterId,
  raftListen: cfg.raftAddr,
  raftAdvertise: cfg.raftAddr,
  apiAddr: cfg.apiAddr,
  tls: () => cfg.identity,
  gossip: () => 'alive',
  bootstrap: true,
  voters: cfg.voters,
  log,
});
await mgr.start();
// The secrets data key as shoald keeps it: the seeding manager makes it (as `init` does), the
// others fetch it from a manager over mTLS (as after a join). No secret is used here, but the
// dispatcher looks up each node's files as it does in shoald.
if (cfg.seed) saveDataKey(cfg.stateDir, DataKey.generate());
const keeper = new DataKeyKeeper({ stateDir: cfg.stateDir, managers: () => cfg.members.map(([, m]) => m.api).filter((a) => a !== cfg.apiAddr), tls: () => cfg.identity, log });
keeper.start();
mgr.dataKey = () => keeper.key();
const dispatcher = new Dispatcher(mgr, log);
const broker = new LogBroker(mgr, log);
dispatcher.logs = broker;
dispatcher.files = (nodeId) => new NodeFiles(mgr.raft.store, keeper, nodeId, log);
const common = { policy: mgr.policy, forwarder: mgr.forwarder };
// The listener shoald uses (node/listeners.ts), so the benchmark runs through its bounds too.
const server = apiServer((m) => process.stderr.write(`${m}\n`));
server.addService(caDef(), secureService(caDef(), { ...caTable(mgr, log), ...dataKeyTable(keeper, log) }, { name: 'CA', ...common }));
server.addService(controlDef(), secureService(controlDef(), { ...controlTable(mgr, log), ...servicesTable(mgr, broker, log), ...secretsTable(mgr, keeper, log), ...networksTable(mgr, log) }, { name: 'Control', ...common }));
server.addService(raftMembershipDef(), secureService(raftMembershipDef(), raftMembershipTable(mgr, log), { name: 'RaftMembership', ...common }));
server.addService(dispatcherDef(), secureService(dispatcherDef(), dispatcher.table(), { name: 'Dispatcher', ...common }));
server.addService(logBrokerDef(), secureService(logBrokerDef(), logBrokerTable(broker), { name: 'LogBroker', ...common }));
await new Promise<void>((res, rej) => server.bindAsync(cfg.apiAddr, new ServerTls(cfg.identity), (e) => (e ? rej(e) : res())));
out({ ready: true, api: cfg.apiAddr, pid: process.pid });

let leader = false;
mgr.raft.onLeaderChange = ((prev) => (lead, role) => {
  prev?.(lead, role);
  const now = mgr.isLeader();
  if (now !== leader) out({ leader: (leader = now) });
})(mgr.raft.onLeaderChange);
if (mgr.isLeader()) out({ leader: (leader = true) });

if (cfg.seed) {
  await mgr.waitLeader(30_000);
  for (let attempt = 0; ; attempt++) {
    try {
      for (let i = 0; i < cfg.seed.length; i += 500) await mgr.raft.propose(cfg.seed.slice(i, i + 500).map((object) => ({ op: 'create' as const, object })));
      break;
    } catch (e) {
      if (attempt > 20) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  out({ seeded: cfg.seed.length });
}

// Progress of the measured service as this store sees it (counts kept from the event stream,
// so watching costs the leader little): tasks created, placed (assigned or later), running.
const counts = { created: 0, assigned: 0, running: 0 };
const add = (t: TaskObject, sign: number) => {
  counts.created += sign;
  if (TASK_STATE_ORDER[t.status.state] >= TASK_STATE_ORDER.assigned) counts.assigned += sign;
  if (t.status.state === 'running') counts.running += sign;
};
const old = new Map<string, TaskObject>();
let want = 0;
let doneAt = 0;
mgr.raft.store.watch({ kinds: ['task', 'service'] }, (evs: StoreEvent[]) => {
  for (const e of evs) {
    if (e.object.kind === 'service') {
      const s = e.object as ServiceObject;
      if (s.spec.mode.type === 'replicated') want = s.spec.mode.replicas;
      if (e.type === 'create') startProfile();
      continue;
    }
    const t = e.object as TaskObject;
    const prev = old.get(t.id);
    if (prev) add(prev, -1);
    if (e.type === 'delete') old.delete(t.id);
    else {
      old.set(t.id, t);
      add(t, 1);
    }
  }
  if (leader && want > 0 && counts.running >= want && !doneAt) {
    doneAt = Date.now();
    out({ done: doneAt, ...counts, want, stages: stages(doneAt) });
    stopProfile();
  }
});
// The CPU profile of the measured interval (what `node --cpu-prof` records, but only from the
// service's creation to the last task running, so the setup does not drown it).
let inspector: Inspector | undefined;
function startProfile(): void {
  if (!cfg.profile || inspector) return;
  inspector = new Inspector();
  inspector.connect();
  inspector.post('Profiler.enable', () => inspector!.post('Profiler.setSamplingInterval', { interval: 200 }, () => inspector!.post('Profiler.start')));
}
function stopProfile(): void {
  if (!inspector) return;
  const s = inspector;
  s.post('Profiler.stop', (err, r) => {
    if (!err && cfg.profile) {
      mkdirSync(dirname(cfg.profile), { recursive: true });
      writeFileSync(cfg.profile, JSON.stringify(r.profile));
      out({ profile: cfg.profile });
    }
    s.disconnect();
  });
}

/**
 * Where the time went, from the timestamps each stage wrote on the tasks (all clocks are this
 * machine's): for each stage the time by which the last task had passed it, from the service's
 * creation, and the median time a task spent reaching it from the stage before.
 */
function stages(doneAt: number): Record<string, string> {
  const svc = mgr.raft.store.list('service')[0] as ServiceObject | undefined;
  const t0 = svc?.status.createdAt ?? 0;
  const tasks = mgr.raft.store.list('task') as TaskObject[];
  const order = ['new', 'pending', 'assigned', 'running'] as const;
  const res: Record<string, string> = {};
  let prev: string | undefined;
  for (const st of order) {
    const at = tasks.map((t) => t.status.timestamps[st] ?? 0).sort((a, b) => a - b);
    const gap = prev ? tasks.map((t) => (t.status.timestamps[st] ?? 0) - (t.status.timestamps[prev as 'new'] ?? 0)).sort((a, b) => a - b) : [];
    res[st] = `last ${((at[at.length - 1]! - t0) / 1000).toFixed(2)} s${gap.length ? `, median step ${gap[gap.length >> 1]} ms` : ''}`;
    prev = st;
  }
  res['stored running'] = `${((doneAt - t0) / 1000).toFixed(2)} s`;
  const m = mgr.raft.metrics;
  res.raft = `${m.proposals} proposals, ${m.entries} entries, ${m.saves} fsyncs (${(m.saveMs / Math.max(1, m.saves)).toFixed(1)} ms avg)`;
  return res;
}

const progress = setInterval(() => {
  if (leader && want > 0 && !doneAt) out({ at: Date.now(), ...counts, want });
}, 500);

const stop = async () => {
  clearInterval(progress);
  keeper.stop();
  dispatcher.stop();
  server.forceShutdown();
  await mgr.stop();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
