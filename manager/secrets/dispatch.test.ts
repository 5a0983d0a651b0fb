// Secrets and configs between a real manager (raft store on disk, the control API, the dispatcher
// over mTLS) and real agents: the secret is sealed before it reaches raft (the WAL holds no clear
// text, while a config's data, stored as it is, is found there: the search works); a node receives
// a secret only while one of its unfinished tasks uses it, and is told to drop it when the task
// ends or leaves; a node without such a task receives nothing; a manager without the data key
// ends the stream (UNAVAILABLE) rather than send tasks without their secrets; CA.GetDataKey hands
// the key to managers only, and a keeper without a key file fetches it and keeps it 0600.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { Agent } from '../../node/agent/agent.js';
import { freePort } from '../../node/ports.js';
import { caDef, dispatcherDef } from '../../proto/services.js';
import { newClusterObject, newNodeObject } from '../ca/cluster-init.js';
import { createKeyAndCSR, createRootCA, issueNodeCertificate, type Role } from '../ca/pki.js';
import { Manager } from '../control/manager.js';
import { Dispatcher } from '../dispatcher/service.js';
import { secureService, type MethodSpec } from '../security/authz.js';
import { CHANNEL_OPTIONS, clientCredentials, pinnedCredentials, ServerTls, type TlsIdentity } from '../security/credentials.js';
import { secretsTable } from './control.js';
import { DataKey, keyPath, saveDataKey } from './datakey.js';
import { NodeFiles } from './dispatch.js';
import { DataKeyKeeper } from './keeper.js';
import { dataKeyTable } from './keyservice.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-secrets-dispatch-${process.pid}-`));
const log = (m: string) => (process.env.SHOAL_TEST_LOG ? process.stderr.write(m + '\n') : undefined);
const ca = await createRootCA('cl');
async function ident(nodeId: string, role: Role): Promise<TlsIdentity> {
  const { keyPem, csrPem } = await createKeyAndCSR();
  return { caPem: ca.certPem, certPem: (await issueNodeCertificate({ ca, csrPem, nodeId, role, clusterId: 'cl' })).certPem, keyPem };
}
const ids = new Map<string, TlsIdentity>();
for (const [n, r] of [['ma', 'manager'], ['mb', 'manager'], ['md', 'manager'], ['w1', 'worker'], ['w2', 'worker']] as const) ids.set(n, await ident(n, r));

// The markers: if either reaches a file in clear, a byte search finds it.
const SECRET = Buffer.from(`secret-marker-${process.pid}-${Math.random().toString(36).slice(2)}`);
const CONFIG = Buffer.from(`config-marker-${process.pid}-${Math.random().toString(36).slice(2)}`);

const stateDir = join(dir, 'ma');
const raftPort = await freePort('127.0.0.1');
const mgr = new Manager({ stateDir, nodeId: 'ma', clusterId: 'cl', raftListen: `127.0.0.1:${raftPort}`, raftAdvertise: `127.0.0.1:${raftPort}`, apiAddr: '', tls: () => ids.get('ma')!, gossip: () => undefined, bootstrap: true, log });
await mgr.start();
saveDataKey(stateDir, DataKey.generate());
const keeper = new DataKeyKeeper({ stateDir, managers: () => [], tls: () => ids.get('ma')!, log });
keeper.start();
// A second dispatcher on the same store whose keeper has no key: what a manager that has not
// fetched the key yet would do.
const keyless = new DataKeyKeeper({ stateDir: join(dir, 'keyless'), managers: () => [], tls: () => ids.get('ma')!, log, retryMs: 60_000 });

interface Served {
  server: grpc.Server;
  dispatcher: Dispatcher;
  addr: string;
}
async function serve(k: DataKeyKeeper): Promise<Served> {
  const dispatcher = new Dispatcher(mgr, log, 500);
  dispatcher.files = (nodeId) => new NodeFiles(mgr.raft.store, k, nodeId, log);
  const server = new grpc.Server();
  server.addService(dispatcherDef(), secureService(dispatcherDef(), dispatcher.table(), { name: 'Dispatcher', policy: mgr.policy }));
  const ca0: Record<string, MethodSpec> = Object.fromEntries(Object.keys(caDef()).map((m) => [m, { roles: 'bootstrap', unary: async () => ({}) } as MethodSpec]));
  server.addService(caDef(), secureService(caDef(), { ...ca0, ...dataKeyTable(k, log) }, { name: 'CA', policy: mgr.policy }));
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', new ServerTls(ids.get('ma')!), (e, p) => (e ? rej(e) : res(p))));
  return { server, dispatcher, addr: `127.0.0.1:${port}` };
}
const withKey = await serve(keeper);
const withoutKey = await serve(keyless);

const agents: Agent[] = [];
t.teardown(async () => {
  for (const a of agents) a.stop();
  for (const s of [withKey, withoutKey]) {
    s.dispatcher.stop();
    s.server.forceShutdown();
  }
  keeper.stop();
  keyless.stop();
  await mgr.stop();
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

const ctx = { identity: { nodeId: 'ma', role: 'manager' as const, clusterId: 'cl', local: true }, metadata: new grpc.Metadata(), peer: 'test' };
const api = secretsTable(mgr, keeper, log);
const callApi = (m: string, req: unknown) => api[m]!.unary!(req, ctx);

let secretId = '';
let configId = '';
const template = (refs: boolean) => ({
  main: { name: 'main', image: 'busybox' }, sidecars: [], init: [], resources: { reservations: {}, limits: {} }, placement: { constraints: [], preferences: [] },
  restart: { condition: 'any', delayMs: 5000, maxAttempts: 0, windowMs: 0 }, stopGracePeriodMs: 10_000, stopSignal: 'SIGTERM',
  ...(refs ? { secrets: [{ id: secretId, name: 'pw', target: '/run/secrets/pw', uid: 0, gid: 0, mode: 0o400 }], configs: [{ id: configId, name: 'conf', target: '/conf', uid: 0, gid: 0, mode: 0o444 }] } : {}),
});
// Tasks as the scheduler leaves them; no service owns them, so no orchestrator touches them.
const task = (id: string, nodeId: string, refs: boolean, state = 'assigned') => ({ kind: 'task' as const, id, name: id, nodeId, spec: { serviceName: 'x', slot: 1, serviceVersion: 1, desiredState: 'running', template: template(refs), restarts: [] }, status: { state, message: '', err: '', timestamps: {} } });

/** What an agent was sent, as its files holder sees it. */
class Recorder {
  readonly held = { secret: new Map<string, Buffer>(), config: new Map<string, Buffer>() };
  readonly log: string[] = [];
  reset(): void {
    this.held.secret.clear();
    this.held.config.clear();
    this.log.push('reset');
  }
  apply(ch: { action: string; secret?: { id: string; data: Buffer } | null; config?: { id: string; data: Buffer } | null }): boolean {
    const kind = ch.secret ? 'secret' : 'config';
    const f = (ch.secret ?? ch.config)!;
    this.log.push(`${ch.action} ${kind} ${f.id}`);
    if (ch.action === 'remove') this.held[kind].delete(f.id);
    else this.held[kind].set(f.id, Buffer.from(f.data));
    return true;
  }
}

function startAgent(node: string, addr: string, rec: Recorder, saved: { v: [string, unknown][] }): Agent {
  const a = new Agent({ tls: () => ids.get(node)!, hostname: node, addr: '', gossipAddr: () => '', managers: () => [addr], onSession: () => {}, store: { load: () => saved.v, save: (x) => void (saved.v = x) }, files: rec, log });
  agents.push(a);
  a.start();
  return a;
}

function walContains(marker: Buffer): { files: number; found: string[] } {
  const found: string[] = [];
  let files = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        files++;
        if (readFileSync(p).includes(marker)) found.push(p);
      }
    }
  };
  walk(join(stateDir, 'raft'));
  return { files, found };
}

t.test('set up: the cluster, managers (one demoted) and workers, a secret and a config', async (t) => {
  await mgr.waitLeader(15_000);
  const objs = [
    newClusterObject('cl', ca, keeper.key()),
    newNodeObject({ nodeId: 'ma', role: 'manager', hostname: 'ma', addr: withKey.addr, certPem: ids.get('ma')!.certPem }),
    newNodeObject({ nodeId: 'mb', role: 'manager', hostname: 'mb', addr: '', certPem: ids.get('mb')!.certPem }),
    newNodeObject({ nodeId: 'w1', role: 'worker', hostname: 'w1', addr: '', certPem: ids.get('w1')!.certPem }),
    newNodeObject({ nodeId: 'w2', role: 'worker', hostname: 'w2', addr: '', certPem: ids.get('w2')!.certPem }),
  ];
  // md still holds a manager certificate, but the cluster demoted it.
  const md = newNodeObject({ nodeId: 'md', role: 'manager', hostname: 'md', addr: '', certPem: ids.get('md')!.certPem });
  (md.spec as { desiredRole: string }).desiredRole = 'worker';
  await mgr.raft.propose([...objs, md].map((object) => ({ op: 'create' as const, object })));
  const s = await callApi('CreateSecret', { name: 'pw', labels: {}, data: SECRET });
  const c = await callApi('CreateConfig', { name: 'conf', labels: {}, data: CONFIG });
  secretId = s.id;
  configId = c.id;
  t.notOk('data' in s, 'the answer to a secret create carries no data');
  t.same(Buffer.from(c.data), CONFIG, "a config's data is shown");
});

t.test('the WAL holds the secret only as ciphertext', async (t) => {
  const sec = walContains(SECRET);
  const conf = walContains(CONFIG);
  t.ok(sec.files > 0, `searched ${sec.files} files under raft/`);
  t.same(sec.found, [], 'the secret is in no raft file in clear');
  t.ok(conf.found.length > 0, "the config's data (kept as it is) is found in the WAL: the search reads what raft wrote");
  const stored = mgr.raft.store.get('secret', secretId)!;
  t.notOk(Buffer.from((stored.spec as { sealed: Uint8Array }).sealed).includes(SECRET), 'the stored object holds the sealed bytes');
  t.same(keeper.key().open((stored.spec as { sealed: Uint8Array }).sealed, `shoal secret ${secretId}`), SECRET, 'which open to the secret with the data key');
});

t.test('only the node with a task that uses the secret receives it, while that task has not ended', async (t) => {
  await mgr.raft.propose([{ op: 'create', object: task('t1', 'w1', true) }, { op: 'create', object: task('plain', 'w2', false) }]);
  const r1 = new Recorder();
  const r2 = new Recorder();
  const saved1 = { v: [] as [string, unknown][] };
  const saved2 = { v: [] as [string, unknown][] };
  const a1 = startAgent('w1', withKey.addr, r1, saved1);
  const a2 = startAgent('w2', withKey.addr, r2, saved2);
  await waitFor('w1 to get t1', () => a1.tasks.has('t1'));
  await waitFor('w2 to get its task', () => a2.tasks.has('plain'));
  t.same(r1.held.secret.get(secretId), SECRET, 'w1 holds the secret, decrypted by the manager');
  t.same(r1.held.config.get(configId), CONFIG, 'and the config');
  t.equal(r2.held.secret.size + r2.held.config.size, 0, 'w2 was sent no secret and no config');
  t.notOk(r2.log.some((l) => l.includes(secretId)), 'not even a removal naming it');
  t.notOk(JSON.stringify(saved1.v).includes(SECRET.toString()), "w1's saved assignments hold the reference, not the data");
  t.ok(JSON.stringify(saved1.v).includes(secretId), '(the reference is there)');

  // t1 fails: its secret is taken back from w1.
  const t1 = mgr.raft.store.get('task', 't1')!;
  await mgr.raft.propose([{ op: 'update', object: { ...t1, status: { ...(t1.status as object), state: 'failed' } }, expectVersion: t1.version }]);
  await waitFor('w1 told to drop the secret', () => r1.held.secret.size === 0 && r1.held.config.size === 0);
  t.ok(r1.log.includes(`remove secret ${secretId}`), 'a removal was sent when the task ended');

  // A second task with it comes and is then deleted from the store (taken off the node).
  await mgr.raft.propose([{ op: 'create', object: task('t2', 'w1', true) }]);
  await waitFor('the secret sent again with t2', () => r1.held.secret.has(secretId));
  await mgr.raft.propose([{ op: 'delete', kind: 'task', id: 't2' }]);
  await waitFor('dropped when t2 left the node', () => r1.held.secret.size === 0);
  t.equal(r2.held.secret.size, 0, 'w2 never held it');
});

t.test('large configs arrive in messages under the 4 MiB gRPC limit', async (t) => {
  const big = [];
  for (let i = 0; i < 5; i++) big.push(await callApi('CreateConfig', { name: `big${i}`, labels: {}, data: Buffer.alloc(1000 * 1024, 65 + i) }));
  const tpl = { ...template(false), configs: big.map((c, i) => ({ id: c.id, name: c.name, target: `/big${i}`, uid: 0, gid: 0, mode: 0o444 })) };
  await mgr.raft.propose([{ op: 'create', object: { ...task('tb', 'w2', false), spec: { ...task('tb', 'w2', false).spec, template: tpl } } }]);
  const r = new Recorder();
  const a = startAgent('w2', withKey.addr, r, { v: [] });
  await waitFor('all five configs (about 5 MB) on w2', () => r.held.config.size === 5);
  t.ok(a.tasks.has('tb'), 'with the task');
  t.ok([...r.held.config.values()].every((d, i) => d.length === 1000 * 1024 && d[0] === 65 + i), 'each whole');
  a.stop();
  await mgr.raft.propose([{ op: 'delete', kind: 'task', id: 'tb' }]);
});

t.test('a manager without the data key refuses the stream instead of sending tasks without their secrets', async (t) => {
  await mgr.raft.propose([{ op: 'create', object: task('t3', 'w2', true) }]);
  const Ctor = grpc.makeGenericClientConstructor(dispatcherDef(), 'd');
  const c = new Ctor(withoutKey.addr, clientCredentials(ids.get('w2')!), CHANNEL_OPTIONS) as any;
  t.teardown(() => c.close());
  const session = c.Session({ hostname: 'w2' });
  session.on('error', () => {});
  const sid = await new Promise<string>((res) => session.once('data', (m: { session_id: string }) => res(m.session_id)));
  const err = await new Promise<grpc.ServiceError>((res) => {
    const s = c.Assignments({ session_id: sid });
    s.on('data', () => res(Object.assign(new Error('data came'), { code: -1 }) as grpc.ServiceError));
    s.on('error', res);
  });
  session.cancel();
  t.equal(err.code, grpc.status.UNAVAILABLE, 'UNAVAILABLE: the agent moves to another manager');
  t.match(err.details, /does not hold the secrets data key yet/);
});

t.test('secret create, inspect, rm: bad input refused, nothing written', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['a bad name', { name: 'no spaces', data: Buffer.from('x') }, /secret name "no spaces" is not valid/],
    ['empty data', { name: 'e', data: Buffer.alloc(0) }, /the data is empty/],
    ['over 500 KiB', { name: 'big', data: Buffer.alloc(500 * 1024 + 1, 1) }, /over the limit of 512000 bytes \(500 KiB\)/],
    ['a duplicate', { name: 'pw', data: Buffer.from('x') }, /a secret named "pw" exists already/],
  ];
  const before = mgr.raft.store.list('secret').length;
  const at = mgr.raft.store.applied;
  for (const [what, req, msg] of cases) await t.rejects(callApi('CreateSecret', { labels: {}, ...(req as object) }), msg, what);
  t.equal(mgr.raft.store.list('secret').length, before, 'nothing written');
  t.equal(mgr.raft.store.applied, at, 'nothing proposed');
  t.ok(await callApi('CreateSecret', { name: 'exact', labels: {}, data: Buffer.alloc(500 * 1024, 7) }), 'exactly 500 KiB is accepted');
  await t.rejects(callApi('CreateConfig', { name: 'big', labels: {}, data: Buffer.alloc(1000 * 1024 + 1, 1) }), /over the limit of 1024000 bytes/, 'configs: 1000 KiB');
  const got = await callApi('GetSecret', { id: 'pw' });
  t.same(Object.keys(got).sort(), ['created_at_ms', 'created_version', 'id', 'labels', 'name', 'services', 'version'], 'inspect: no data field');
  await t.rejects(callApi('RemoveSecret', { id: 'nosuch' }), /no secret "nosuch"/);
  await callApi('RemoveSecret', { id: 'exact' });
  t.notOk(mgr.raft.store.getByName('secret', 'exact'), 'an unused secret is removed');
});

t.test('CA.GetDataKey: managers only; a keeper fetches the key and keeps it 0600', async (t) => {
  const get = (id: TlsIdentity | undefined) => {
    const Ctor = grpc.makeGenericClientConstructor(caDef(), 'ca');
    const c = new Ctor(withKey.addr, id ? clientCredentials(id) : pinnedCredentials(ca.certPem), CHANNEL_OPTIONS) as any;
    return new Promise<{ err?: grpc.ServiceError; res?: { key: Buffer; key_id: string } }>((res) => c.GetDataKey({}, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, r: { key: Buffer; key_id: string }) => {
      c.close();
      res(err ? { err } : { res: r });
    }));
  };
  const m = await get(ids.get('mb'));
  t.same(m.res?.key, keeper.key().key, 'a manager gets the key');
  const w = await get(ids.get('w1'));
  t.equal(w.err?.code, grpc.status.PERMISSION_DENIED, 'a worker is refused');
  t.match(w.err?.details, /allowed for manager nodes only/);
  const d = await get(ids.get('md'));
  t.equal(d.err?.code, grpc.status.PERMISSION_DENIED, 'a demoted manager (still holding its manager certificate) is refused');
  const none = await get(undefined);
  t.equal(none.err?.code, grpc.status.UNAUTHENTICATED, 'no certificate: refused');

  const newDir = join(dir, 'mb');
  const k = new DataKeyKeeper({ stateDir: newDir, managers: () => [withoutKey.addr, withKey.addr], tls: () => ids.get('mb')!, log });
  t.teardown(() => k.stop());
  k.start();
  await waitFor('the key fetched', () => k.present);
  t.same(k.key().key, keeper.key().key, 'the same key, from the manager that holds it (the keyless one answered UNAVAILABLE)');
  t.equal(statSync(keyPath(newDir)).mode & 0o777, 0o600, 'saved mode 0600');
  const again = new DataKeyKeeper({ stateDir: newDir, managers: () => [], tls: () => ids.get('mb')!, log });
  again.start();
  t.ok(again.present, 'a restart loads it from the file');
  again.stop();
  const wk = new DataKeyKeeper({ stateDir: join(dir, 'w1'), managers: () => [withKey.addr], tls: () => ids.get('w1')!, log, retryMs: 60_000 });
  wk.start();
  await wk.fetch();
  wk.stop();
  t.notOk(wk.present || existsSync(keyPath(join(dir, 'w1'))), 'a worker cannot fetch it');
});
