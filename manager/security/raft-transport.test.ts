// The real raft transport (raft/transport) under the cluster's mTLS, as shoald runs it: two
// managers exchange messages and a snapshot; a peer without a client certificate, with a
// certificate from another CA, or with a worker certificate delivers nothing; a manager removed
// while its stream is open is cut off; after a renewal peers reconnect with the new certificate.
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { MessageType, type Message } from '../../raft/types.js';
import { RaftTransport } from '../../raft/transport/transport.js';
import { createKeyAndCSR, createRootCA, issueNodeCertificate, type Role, type RootCA } from '../ca/pki.js';
import type { TrustPolicy } from './authz.js';
import { pinnedCredentials, type TlsIdentity } from './credentials.js';
import { raftChannel, raftServerCredentials, refuseRaftPeer } from './raft-security.js';
import { until as waitUntil } from '../../test/until.js';

const ca = await createRootCA('c1');
const otherCa = await createRootCA('c2');

async function ident(nodeId: string, role: Role, by: RootCA = ca, clusterId = 'c1'): Promise<TlsIdentity> {
  const { keyPem, csrPem } = await createKeyAndCSR();
  return { caPem: by.certPem, certPem: (await issueNodeCertificate({ ca: by, csrPem, nodeId, role, clusterId })).certPem, keyPem };
}

function msg(over: Partial<Message>): Message {
  return { type: MessageType.App, to: 2, from: 1, term: 3, logTerm: 2, index: 10, entries: [], commit: 9, reject: false, rejectHint: 0, ...over };
}

// This file's default wait.
const until = <T>(f: () => T | undefined | null | false, what: string, ms = 15_000) => waitUntil(f, what, ms);

const removed = new Set<string>();
const policy: TrustPolicy = { clusterId: () => 'c1', refuse: (id) => (removed.has(id) ? 'removed' : undefined) };

/** A transport wired exactly as manager/control/manager.ts does; `creds` overrides the client side. */
function node(t: any, id: number, tls: () => TlsIdentity, creds?: () => grpc.ChannelCredentials) {
  const got: Message[] = [];
  const snaps: [number, boolean][] = [];
  const serials: string[] = [];
  const server = raftServerCredentials(tls());
  const tr = new RaftTransport({
    id,
    listen: '127.0.0.1:0',
    onMessage: (m) => got.push(m),
    onSnapshotStatus: (p, ok) => snaps.push([p, ok]),
    serverCredentials: server,
    channelCredentials: creds ?? (() => raftChannel(tls()).credentials),
    channelOptions: { 'grpc.ssl_target_name_override': raftChannel(tls()).options['grpc.ssl_target_name_override'] },
    authorize: (call) => {
      serials.push(call.getAuthContext()?.sslPeerCertificate?.serialNumber ?? '');
      return refuseRaftPeer(call, policy);
    },
    backoffMinMs: 50,
    backoffMaxMs: 200,
  });
  t.teardown(() => tr.stop());
  return { tr, got, snaps, serials, server };
}

async function pair(t: any, a: ReturnType<typeof node>, b: ReturnType<typeof node>) {
  await a.tr.start();
  await b.tr.start();
  a.tr.addPeer(2, `127.0.0.1:${b.tr.port}`);
  b.tr.addPeer(1, `127.0.0.1:${a.tr.port}`);
}

t.test('two managers exchange messages and a snapshot over mTLS', async (t) => {
  const ia = await ident('m1', 'manager');
  const ib = await ident('m2', 'manager');
  const a = node(t, 1, () => ia);
  const b = node(t, 2, () => ib);
  await pair(t, a, b);
  const N = 500;
  a.tr.send([...Array(N).keys()].map((i) => msg({ index: i })));
  b.tr.send([msg({ from: 2, to: 1, type: MessageType.AppResp, index: 42 })]);
  await until(() => b.got.length === N && a.got.length === 1, 'all messages');
  t.same(b.got.map((m) => m.index), [...Array(N).keys()], 'in order, none lost');
  t.equal(a.got[0]!.index, 42);
  const data = Buffer.alloc(3 << 20, 7);
  const conf = { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  a.tr.send([msg({ type: MessageType.Snap, snapshot: { meta: { index: 100, term: 4, conf }, data } })]);
  await until(() => a.snaps.length === 1, 'snapshot status');
  t.same(a.snaps, [[2, true]]);
  const s = b.got.find((m) => m.type === MessageType.Snap);
  t.ok(s && Buffer.compare(Buffer.from(s.snapshot!.data), data) === 0, 'snapshot arrived whole');
  t.equal(a.tr.received.unauthorized + b.tr.received.unauthorized, 0, 'nobody refused');
});

t.test('no client certificate, another CA, or a worker certificate: nothing is delivered', async (t) => {
  const ib = await ident('m2', 'manager');
  const b = node(t, 2, () => ib);
  await b.tr.start();
  const stranger = await ident('x1', 'manager', otherCa, 'c2');
  const worker = await ident('w1', 'worker');
  const cases: [string, () => grpc.ChannelCredentials][] = [
    // Each client pins our CA, so it would talk to b: only its own certificate is at fault.
    ['no client certificate', () => pinnedCredentials(ca.certPem)],
    ['a certificate from another CA', () => grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(stranger.keyPem), Buffer.from(stranger.certPem))],
    ['a worker certificate', () => grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(worker.keyPem), Buffer.from(worker.certPem))],
  ];
  for (const [what, creds] of cases) {
    const a = node(t, 1, () => worker, creds);
    await a.tr.start();
    a.tr.addPeer(2, `127.0.0.1:${b.tr.port}`);
    const refusedBefore = b.tr.received.unauthorized;
    // A snapshot is a separate call (sent first: a peer in back-off would not even try it).
    a.tr.send([msg({ type: MessageType.Snap, snapshot: { meta: { index: 5, term: 1, conf: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: Buffer.from('x') } })]);
    await until(() => a.snaps.length === 1, `${what}: snapshot status`);
    t.same(a.snaps, [[2, false]], `${what}: snapshot refused`);
    const deadline = Date.now() + 15000;
    // Keep sending until the sender has failed twice (it tried, and tried again after back-off).
    while (a.tr.peer(2)!.stats.failures < 2) {
      if (Date.now() > deadline) throw new Error(`${what}: the sender never failed`);
      a.tr.send([msg({ index: 1 })]);
      await new Promise((r) => setTimeout(r, 20));
    }
    t.equal(b.got.length, 0, `${what}: no message delivered`);
    // Missing and foreign certificates fail the TLS handshake, before any call reaches the
    // transport; the worker passes it and is refused by the per-call check (counted, logged).
    const refused = b.tr.received.unauthorized - refusedBefore;
    if (what === 'a worker certificate') t.ok(refused >= 3, `worker refused per call: the snapshot and at least two streams (${refused} calls)`);
    else t.equal(refused, 0, `${what}: refused at the TLS handshake`);
    await a.tr.stop();
  }
  t.equal(b.tr.received.batches, 0);
});

t.test('a manager removed while its stream is open is cut off within a second', async (t) => {
  const ia = await ident('m-rm', 'manager');
  const ib = await ident('m2', 'manager');
  const a = node(t, 1, () => ia);
  const b = node(t, 2, () => ib);
  t.teardown(() => removed.delete('m-rm'));
  await pair(t, a, b);
  a.tr.send([msg({ index: 1 })]);
  await until(() => b.got.length === 1, 'first message');
  removed.add('m-rm');
  // Keep the stream busy: once it is authorized again the stream ends and no later message lands.
  const deadline = Date.now() + 15000;
  while (b.tr.received.unauthorized === 0) {
    if (Date.now() > deadline) throw new Error('the removed manager was never refused');
    a.tr.send([msg({ index: 2 })]);
    await new Promise((r) => setTimeout(r, 20));
  }
  const delivered = b.got.length;
  for (let i = 0; i < 20; i++) {
    a.tr.send([msg({ index: 3 })]);
    await new Promise((r) => setTimeout(r, 20));
  }
  await until(() => a.tr.peer(2)!.stats.failures >= 1, 'sender sees the refusal');
  t.equal(b.got.length, delivered, 'nothing delivered after the refusal');
  t.notOk(b.got.some((m) => m.index === 3));
});

t.test('after a renewal, updateCredentials() reconnects with the new certificate', async (t) => {
  let ia = await ident('m1', 'manager');
  const ib = await ident('m2', 'manager');
  const a = node(t, 1, () => ia);
  const b = node(t, 2, () => ib);
  await pair(t, a, b);
  a.tr.send([msg({ index: 1 })]);
  await until(() => b.got.length === 1, 'first message');
  const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;
  t.equal(b.serials.at(-1), serialOf(ia.certPem), 'old certificate presented');
  ia = await ident('m1', 'manager');
  a.server.update(ia);
  a.tr.updateCredentials();
  a.tr.send([msg({ index: 2 })]);
  await until(() => b.got.length === 2, 'message after renewal');
  t.equal(b.serials.at(-1), serialOf(ia.certPem), 'new certificate presented');
  t.equal(b.got[1]!.index, 2);
  // The other direction: b dials a, whose server now presents the renewed certificate.
  b.tr.send([msg({ from: 2, to: 1, index: 9 })]);
  await until(() => a.got.length === 1, 'message to the renewed server');
  t.equal(a.got[0]!.index, 9);
});
