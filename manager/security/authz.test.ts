// The authorizer over real TLS on loopback: no certificate, an expired one, a worker on a
// manager-only RPC, a removed node, a demoted manager, another cluster's subject, a missing
// table entry, and forwarded identities (trusted only from managers).
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { createKeyAndCSR, createRootCA, issueNodeCertificate, type Role } from '../ca/pki.js';
import { controlDef } from '../control/service.js';
import { FWD_CLUSTER, FWD_NODE, FWD_ROLE, secureService, type MethodSpec } from './authz.js';
import { CHANNEL_OPTIONS, clientCredentials, pinnedCredentials, ServerTls } from './credentials.js';

const ca = await createRootCA('c1');
async function ident(nodeId: string, role: Role, clusterId = 'c1', window?: { notBefore: Date; notAfter: Date }) {
  const { keyPem, csrPem } = await createKeyAndCSR();
  const c = await issueNodeCertificate({ ca, csrPem, nodeId, role, clusterId, ...(window ?? {}) });
  return { caPem: ca.certPem, certPem: c.certPem, keyPem };
}

const server = await ident('mgr', 'manager');
const removed = new Set<string>();
const demoted = new Set<string>();
const table: Record<string, MethodSpec> = {};
for (const [m, def] of Object.entries(controlDef())) {
  table[m] = def.responseStream
    ? { roles: ['manager'], stream: async (call) => void call.end() }
    : { roles: ['manager'], unary: async (_req, ctx) => ({ nodes: [{ id: ctx.identity!.nodeId, role: ctx.identity!.role, hostname: ctx.identity!.forwardedBy ?? '' }] }) };
}
const opts = {
  name: 'Control',
  policy: {
    clusterId: () => 'c1',
    refuse: (id: string) => (removed.has(id) ? 'the node was removed' : undefined),
    effectiveRole: (id: string, r: Role): Role => (demoted.has(id) ? 'worker' : r),
  },
};
const srv = new grpc.Server();
srv.addService(controlDef(), secureService(controlDef(), table, opts));
const port = await new Promise<number>((res, rej) => srv.bindAsync('127.0.0.1:0', new ServerTls(server), (e, p) => (e ? rej(e) : res(p))));
t.teardown(() => srv.forceShutdown());

function list(creds: grpc.ChannelCredentials, md = new grpc.Metadata()): Promise<{ err?: grpc.ServiceError; res?: any }> {
  const Ctor = grpc.makeGenericClientConstructor(controlDef(), 'c');
  const c = new Ctor(`127.0.0.1:${port}`, creds, CHANNEL_OPTIONS) as any;
  return new Promise((r) => c.ListNodes({}, md, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, res: unknown) => {
    c.close();
    r(err ? { err } : { res });
  }));
}

t.test('every RPC must have a table entry', async (t) => {
  const partial = { ...table };
  delete partial.GetCluster;
  t.throws(() => secureService(controlDef(), partial, opts), /Control\.GetCluster has no authorization entry/);
});

t.test('a manager certificate passes', async (t) => {
  const r = await list(clientCredentials(await ident('m2', 'manager')));
  t.error(r.err);
  t.equal(r.res.nodes[0].id, 'm2');
});

t.test('no certificate: unauthenticated', async (t) => {
  const r = await list(pinnedCredentials(ca.certPem));
  t.equal(r.err?.code, grpc.status.UNAUTHENTICATED);
  t.match(r.err?.details, /needs a client certificate/);
});

t.test('an expired certificate: unauthenticated', async (t) => {
  const now = Date.now();
  const r = await list(clientCredentials(await ident('m3', 'manager', 'c1', { notBefore: new Date(now - 5 * 86400_000), notAfter: new Date(now - 60_000) })));
  t.equal(r.err?.code, grpc.status.UNAUTHENTICATED);
});

t.test('a certificate from another CA: unauthenticated', async (t) => {
  const other = await createRootCA('c1');
  const { keyPem, csrPem } = await createKeyAndCSR();
  const c = await issueNodeCertificate({ ca: other, csrPem, nodeId: 'evil', role: 'manager', clusterId: 'c1' });
  const r = await list(clientCredentials({ caPem: ca.certPem, certPem: c.certPem, keyPem }));
  t.equal(r.err?.code, grpc.status.UNAUTHENTICATED);
});

t.test('a worker on a manager-only RPC: permission denied', async (t) => {
  const r = await list(clientCredentials(await ident('w1', 'worker')));
  t.equal(r.err?.code, grpc.status.PERMISSION_DENIED);
  t.match(r.err?.details, /Control\.ListNodes is allowed for manager nodes only; the caller w1 is a worker/);
});

t.test('removed, demoted and foreign-cluster identities', async (t) => {
  removed.add('gone');
  const r = await list(clientCredentials(await ident('gone', 'manager')));
  t.equal(r.err?.code, grpc.status.PERMISSION_DENIED);
  t.match(r.err?.details, /node gone\) is refused: the node was removed/);
  demoted.add('dm');
  const d = await list(clientCredentials(await ident('dm', 'manager')));
  t.match(d.err?.details, /the caller dm is a worker/, 'a demoted manager acts as a worker with its old certificate');
  const f = await list(clientCredentials(await ident('m9', 'manager', 'c2')));
  t.match(f.err?.details, /belongs to cluster c2, not to this cluster c1/);
});

t.test('forwarded identities', async (t) => {
  const md = (node: string, role: string) => {
    const m = new grpc.Metadata();
    m.set(FWD_NODE, node);
    m.set(FWD_ROLE, role);
    m.set(FWD_CLUSTER, 'c1');
    return m;
  };
  const mgr = clientCredentials(await ident('fwd', 'manager'));
  const ok = await list(mgr, md('m5', 'manager'));
  t.error(ok.err);
  t.same([ok.res.nodes[0].id, ok.res.nodes[0].hostname], ['m5', 'fwd'], 'the handler sees the original caller, forwarded by fwd');
  const w = await list(mgr, md('w5', 'worker'));
  t.match(w.err?.details, /the caller w5 is a worker/, 'a forwarded worker is still a worker');
  removed.add('r5');
  const rm = await list(mgr, md('r5', 'manager'));
  t.match(rm.err?.details, /forwarded caller \(node r5\) is refused/);
  const fromWorker = await list(clientCredentials(await ident('w6', 'worker')), md('m5', 'manager'));
  t.match(fromWorker.err?.details, /only trusted from a manager certificate/);
});
