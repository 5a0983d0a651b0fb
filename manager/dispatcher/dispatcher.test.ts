// Dispatcher and agent over real mTLS gRPC with three in-process managers on one raft group: the
// assignments stream (full set, then deltas), batched status updates that only move forward, the
// node/task ownership check, and failover: when the agent's manager stops, the agent moves to
// another one and keeps its assignments. The test writes assigned task objects straight into
// the store (no service owns them, so the orchestrator leaves them be): it tests the dispatcher
// alone, not how tasks come to be.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { Agent } from '../../node/agent/agent.js';
import { freePort } from '../../node/ports.js';
import { writeDurable } from '../../node/state.js';
import { DataKey } from '../secrets/datakey.js';
import { newClusterObject, newNodeObject } from '../ca/cluster-init.js';
import { createKeyAndCSR, createRootCA, issueNodeCertificate, type Role } from '../ca/pki.js';
import { Manager } from '../control/manager.js';
import { raftIdOf } from '../control/model.js';
import { dispatcherDef } from '../control/service.js';
import { secureService } from '../security/authz.js';
import { CHANNEL_OPTIONS, clientCredentials, ServerTls, type TlsIdentity } from '../security/credentials.js';
import { Dispatcher } from './service.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-dispatcher-${process.pid}-`));
const ca = await createRootCA('cl');
async function ident(nodeId: string, role: Role): Promise<TlsIdentity> {
  const { keyPem, csrPem } = await createKeyAndCSR();
  return { caPem: ca.certPem, certPem: (await issueNodeCertificate({ ca, csrPem, nodeId, role, clusterId: 'cl' })).certPem, keyPem };
}

const names = ['ma', 'mb', 'mc'];
const ids = new Map<string, TlsIdentity>();
for (const n of names) ids.set(n, await ident(n, 'manager'));
ids.set('w1', await ident('w1', 'worker'));
ids.set('w2', await ident('w2', 'worker'));
const raftPorts = new Map<string, number>();
for (const n of names) raftPorts.set(n, await freePort('127.0.0.1'));
const members = names.map((n) => [raftIdOf(n), { raft: `127.0.0.1:${raftPorts.get(n)}`, api: '' }]);

interface Running {
  mgr: Manager;
  server: grpc.Server;
  dispatcher: Dispatcher;
  addr: string;
}
const running = new Map<string, Running>();
let saved: [string, unknown][] = [];
const memoryStore = { load: () => saved, save: (x: [string, unknown][]) => void (saved = x) };
const log = (m: string) => (process.env.SHOAL_TEST_LOG ? process.stderr.write(m + '\n') : undefined);

for (const n of names) {
  const stateDir = join(dir, n);
  writeDurable(join(stateDir, 'raft-members.json'), JSON.stringify(members));
  const mgr = new Manager({ stateDir, nodeId: n, clusterId: 'cl', raftListen: `127.0.0.1:${raftPorts.get(n)}`, raftAdvertise: `127.0.0.1:${raftPorts.get(n)}`, apiAddr: '', tls: () => ids.get(n)!, gossip: () => undefined, bootstrap: true, voters: names.map(raftIdOf), log });
  await mgr.start();
  const dispatcher = new Dispatcher(mgr, log, 500);
  const server = new grpc.Server();
  server.addService(dispatcherDef(), secureService(dispatcherDef(), dispatcher.table(), { name: 'Dispatcher', policy: mgr.policy }));
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', new ServerTls(ids.get(n)!), (e, p) => (e ? rej(e) : res(p))));
  running.set(n, { mgr, server, dispatcher, addr: `127.0.0.1:${port}` });
}
const any = () => [...running.values()][0]!.mgr;

let agent: Agent | undefined;
t.teardown(async () => {
  agent?.stop();
  for (const r of running.values()) {
    r.dispatcher.stop();
    r.server.forceShutdown();
    await r.mgr.stop();
  }
  rmSync(dir, { recursive: true, force: true });
});

async function waitFor<T>(what: string, f: () => T | undefined | false, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Tasks as the scheduler leaves them (assigned to a node); no service owns them, so the
// orchestrator leaves them alone.
const template = { main: { name: 'main', image: 'busybox' }, sidecars: [], init: [], resources: { reservations: {}, limits: {} }, placement: { constraints: [], preferences: [] }, restart: { condition: 'any', delayMs: 5000, maxAttempts: 0, windowMs: 0 }, stopGracePeriodMs: 10_000, stopSignal: 'SIGTERM' };
const task = (id: string, nodeId: string) => ({ kind: 'task' as const, id, name: id, nodeId, spec: { serviceName: 'x', slot: 1, serviceVersion: 1, desiredState: 'running', template, restarts: [] }, status: { state: 'assigned', message: '', err: '', timestamps: {} } });
const taskState = (id: string) => (any().raft.store.get('task', id)?.status as { state?: string } | undefined)?.state;

t.test('set up: a leader, the cluster and node objects', async (t) => {
  await any().waitLeader(15_000);
  const cluster = newClusterObject('cl', ca, DataKey.generate());
  const objs = [cluster, ...names.map((n) => newNodeObject({ nodeId: n, role: 'manager', hostname: n, addr: running.get(n)!.addr, certPem: ids.get(n)!.certPem, raft: { id: raftIdOf(n), addr: `127.0.0.1:${raftPorts.get(n)}` } })), newNodeObject({ nodeId: 'w1', role: 'worker', hostname: 'w1', addr: '', certPem: ids.get('w1')!.certPem }), newNodeObject({ nodeId: 'w2', role: 'worker', hostname: 'w2', addr: '', certPem: ids.get('w2')!.certPem })];
  const leader = [...running.values()].find((r) => r.mgr.isLeader())!.mgr;
  await leader.raft.propose(objs.map((object) => ({ op: 'create' as const, object })));
  await leader.raft.propose([{ op: 'create', object: task('t1', 'w1') }, { op: 'create', object: task('t2', 'w1') }, { op: 'create', object: task('other', 'w2') }]);
  for (const r of running.values()) await r.mgr.raft.waitApplied(leader.raft.store.applied);
  t.pass('three managers hold the objects');
});

t.test('assignments: the full set first, then deltas; status batched and forward-only', async (t) => {
  const sessions: string[] = [];
  agent = new Agent({
    tls: () => ids.get('w1')!,
    hostname: 'w1',
    addr: '',
    gossipAddr: () => '',
    managers: () => names.filter((n) => running.has(n)).map((n) => running.get(n)!.addr),
    onSession: (s, m) => sessions.push(`${s.sessionId}@${m}`),
    store: memoryStore,
    log,
  });
  agent.start();
  await waitFor('the full set', () => agent!.tasks.size === 2);
  t.same([...agent.tasks.keys()].sort(), ['t1', 't2'], "only this node's tasks");
  const leader = [...running.values()].find((r) => r.mgr.isLeader())!.mgr;
  await leader.raft.propose([{ op: 'create', object: task('t3', 'w1') }, { op: 'create', object: task('other2', 'w2') }]);
  await waitFor('t3 as a delta', () => agent!.tasks.has('t3'));
  await leader.raft.propose([{ op: 'delete', kind: 'task', id: 't1' }]);
  await waitFor('t1 removed', () => !agent!.tasks.has('t1'));
  t.same([...agent.tasks.keys()].sort(), ['t2', 't3']);
  agent.report('t2', { state: 'running', message: 'started' });
  await waitFor('t2 running in the store', () => taskState('t2') === 'running');
  agent.report('t2', { state: 'accepted' });
  await new Promise((r) => setTimeout(r, 600));
  t.equal(taskState('t2'), 'running', 'a backward transition is ignored');
  t.equal((agent.tasks.get('t2') as { status: { state: string } }).status.state, 'assigned', "the agent's own report is not sent back to it");
  // A change the agent must act on is sent (the desired state, here).
  const cur = leader.raft.store.get('task', 't2')!;
  const base = task('t2', 'w1');
  await leader.raft.propose([{ op: 'update', object: { ...base, spec: { ...base.spec, desiredState: 'shutdown' }, status: cur.status }, expectVersion: cur.version }]);
  await waitFor('the new desired state at the agent', () => (agent!.tasks.get('t2') as { spec: { desiredState: string } }).spec.desiredState === 'shutdown');
  t.equal((agent.tasks.get('t2') as { status: { state: string } }).status.state, 'running', 'with the task as it is now');
  t.ok(sessions.length >= 1);
});

t.test('a node cannot report status for another node\'s task', async (t) => {
  const addr = running.get(names[0]!)!.addr;
  const Ctor = grpc.makeGenericClientConstructor(dispatcherDef(), 'd');
  const c = new Ctor(addr, clientCredentials(ids.get('w1')!), CHANNEL_OPTIONS) as any;
  t.teardown(() => c.close());
  const sid = await new Promise<string>((res, rej) => {
    const s = c.Session({ hostname: 'w1' });
    s.on('data', (m: { session_id: string }) => {
      res(m.session_id);
      s.cancel();
    });
    s.on('error', (e: Error) => (e.message.includes('Cancelled') ? undefined : rej(e)));
  });
  const err = await new Promise<grpc.ServiceError | null>((res) => c.UpdateTaskStatus({ session_id: sid, updates: [{ task_id: 'other', state: 'running' }] }, (e: grpc.ServiceError | null) => res(e)));
  t.equal(err?.code, grpc.status.PERMISSION_DENIED);
  t.match(err?.details, /task other is not assigned to node w1/);
  const bad = await new Promise<grpc.ServiceError | null>((res) => c.Heartbeat({ session_id: 'nope' }, (e: grpc.ServiceError | null) => res(e)));
  t.equal(bad?.code, grpc.status.NOT_FOUND, 'an unknown session is refused');
  t.equal(taskState('other'), 'assigned', 'nothing written');
});

t.test('a session cannot move or rename its node: addresses must be where it connects from; the hostname is the joined one', async (t) => {
  const addr = running.get(names.find((n) => running.has(n))!)!.addr;
  const Ctor = grpc.makeGenericClientConstructor(dispatcherDef(), 'd');
  const c = new Ctor(addr, clientCredentials(ids.get('w2')!), CHANNEL_OPTIONS) as any;
  t.teardown(() => c.close());
  const open = (req: object) => new Promise<{ sid?: string; err?: grpc.ServiceError }>((res) => {
    const s = c.Session(req);
    s.on('data', (m: { session_id: string }) => {
      res({ sid: m.session_id });
      s.cancel();
    });
    s.on('error', (e: grpc.ServiceError) => res({ err: e }));
  });
  const moved = await open({ hostname: 'w2', addr: '10.9.9.9:4242' });
  t.equal(moved.err?.code, grpc.status.PERMISSION_DENIED, 'an address that is not the connection\'s source is refused');
  t.match(moved.err?.details, /announces addr 10\.9\.9\.9:4242 but connects from 127\.0\.0\.1/, 'saying which and from where');
  const gossip = await open({ hostname: 'w2', addr: '127.0.0.1:4242', gossip_addr: '10.9.9.9:7946' });
  t.equal(gossip.err?.code, grpc.status.PERMISSION_DENIED, 'a foreign gossip address too');
  const renamed = await open({ hostname: 'not-w2', addr: '127.0.0.1:4242' });
  t.ok(renamed.sid, 'a session from the right address opens');
  await new Promise((r) => setTimeout(r, 500));
  const n = any().raft.store.get('node', 'w2') as { status: { hostname: string; addr: string } };
  t.equal(n.status.hostname, 'w2', 'the hostname stays the joined one');
  t.equal(n.status.addr, '127.0.0.1:4242', 'the address is recorded');
});

t.test("the agent's manager stops: it moves to another manager and keeps its assignments", async (t) => {
  const cur = agent!.manager!;
  const name = names.find((n) => running.get(n)?.addr === cur)!;
  const r = running.get(name)!;
  running.delete(name);
  r.dispatcher.stop();
  r.server.forceShutdown();
  await r.mgr.stop();
  t.same([...agent!.tasks.keys()].sort(), ['t2', 't3'], 'assignments kept while disconnected');
  const next = await waitFor('a session with another manager', () => agent!.manager && agent!.manager !== cur && agent!.manager);
  t.comment(`moved from ${cur} to ${next}`);
  await waitFor('the new full set', () => agent!.tasks.size === 2);
  t.same([...agent!.tasks.keys()].sort(), ['t2', 't3']);
  agent!.report('t3', { state: 'running' });
  await waitFor('t3 running, written through the new manager', () => taskState('t3') === 'running');
  t.equal(taskState('t2'), 'running');
  // A restarted agent starts from the saved assignments before any manager answers.
  const again = new Agent({ tls: () => ids.get('w1')!, hostname: 'w1', addr: '', gossipAddr: () => '', managers: () => [], onSession: () => {}, store: memoryStore, log });
  t.same([...again.tasks.keys()].sort(), ['t2', 't3'], 'assignments restored from the store');
  again.stop();
});

t.test('stopping a dispatcher ends the open Assignments streams (the server can then shut down cleanly)', async (t) => {
  const name = names.find((n) => running.has(n))!;
  const r = running.get(name)!;
  const Ctor = grpc.makeGenericClientConstructor(dispatcherDef(), 'd');
  const c = new Ctor(r.addr, clientCredentials(ids.get('w2')!), CHANNEL_OPTIONS) as any;
  t.teardown(() => c.close());
  const session = c.Session({ hostname: 'w2' });
  session.on('error', () => {});
  const sid = await new Promise<string>((res) => session.once('data', (m: { session_id: string }) => res(m.session_id)));
  const stream = c.Assignments({ session_id: sid });
  let first = false;
  let status: number | undefined;
  stream.on('data', () => (first = true));
  stream.on('error', () => {});
  stream.on('status', (s: { code: number }) => (status = s.code));
  await waitFor('the first assignments message', () => first);
  r.dispatcher.stop();
  await waitFor('the stream to end', () => status !== undefined);
  t.equal(status, grpc.status.OK, 'ended by the server with OK');
  // tryShutdown now finishes without waiting for the client to go away.
  await new Promise<void>((res) => r.server.tryShutdown(() => res()));
  t.pass('server shut down');
});
