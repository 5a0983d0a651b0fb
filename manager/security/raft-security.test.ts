// The raft transport's security pieces over real TLS: the handshake needs a client certificate
// signed by the cluster CA, and only current managers of this cluster pass the stream check.
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { createKeyAndCSR, createRootCA, issueNodeCertificate, type Role } from '../ca/pki.js';
import { controlDef } from '../control/service.js';
import { CHANNEL_OPTIONS, pinnedCredentials } from './credentials.js';
import { raftChannel, raftServerCredentials, refuseRaftPeer } from './raft-security.js';

const ca = await createRootCA('c1');
async function ident(nodeId: string, role: Role) {
  const { keyPem, csrPem } = await createKeyAndCSR();
  return { caPem: ca.certPem, certPem: (await issueNodeCertificate({ ca, csrPem, nodeId, role, clusterId: 'c1' })).certPem, keyPem };
}
const policy = { clusterId: () => 'c1', refuse: (id: string) => (id === 'gone' ? 'removed' : undefined), effectiveRole: (id: string, r: Role): Role => (id === 'demoted' ? 'worker' : r) };
// Any service will do to carry the check: the Control definition's ListNodes stands in for the
// raft stream handler here.
const impl: grpc.UntypedServiceImplementation = {};
for (const m of Object.keys(controlDef())) {
  impl[m] = (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    const why = refuseRaftPeer(call, policy);
    cb(why ? (Object.assign(new Error(why.details), why) as grpc.ServiceError) : null, why ? null : { nodes: [] });
  };
}
const srv = new grpc.Server();
srv.addService(controlDef(), impl);
const port = await new Promise<number>(async (res, rej) => srv.bindAsync('127.0.0.1:0', raftServerCredentials(await ident('m1', 'manager')), (e, p) => (e ? rej(e) : res(p))));
t.teardown(() => srv.forceShutdown());

function call(creds: grpc.ChannelCredentials, opts: grpc.ChannelOptions = CHANNEL_OPTIONS): Promise<grpc.ServiceError | null> {
  const Ctor = grpc.makeGenericClientConstructor(controlDef(), 'c');
  const c = new Ctor(`127.0.0.1:${port}`, creds, opts) as any;
  return new Promise((r) => c.ListNodes({}, { deadline: Date.now() + 3000 }, (e: grpc.ServiceError | null) => {
    c.close();
    r(e);
  }));
}

t.test('a manager passes', async (t) => {
  const ch = raftChannel(await ident('m2', 'manager'));
  t.equal(await call(ch.credentials, ch.options), null);
});

t.test('no client certificate: the TLS handshake itself fails', async (t) => {
  const e = await call(pinnedCredentials(ca.certPem));
  t.equal(e?.code, grpc.status.UNAVAILABLE);
});

t.test('workers, demoted and removed managers are refused', async (t) => {
  for (const [id, role, why] of [['w1', 'worker', /allowed for manager nodes only/], ['demoted', 'manager', /is a worker/], ['gone', 'manager', /refused: removed/]] as const) {
    const e = await call(raftChannel(await ident(id, role)).credentials);
    t.equal(e?.code, grpc.status.PERMISSION_DENIED, id);
    t.match(e?.details, why);
  }
});
