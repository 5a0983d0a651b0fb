// Runs the gRPC raft transport for real on loopback: batches, chunked snapshots, a dead peer, a
// black-hole peer (accepts TCP, never speaks HTTP/2: stands for a partitioned or wedged manager),
// restart after back-off, and refusal of wrong formats and wrong addressees.
import t from 'tap';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { loadProto } from '../../proto/load.js';
import { MessageType, type Message } from '../types.js';
import { decodeMessage, encodeMessage } from './codec.js';
import { RaftTransport } from './transport.js';
import { freePort } from '../../node/ports.js';
import { until as waitUntil } from '../../test/until.js';

function msg(over: Partial<Message>): Message {
  return { type: MessageType.App, to: 2, from: 1, term: 3, logTerm: 2, index: 10, entries: [], commit: 9, reject: false, rejectHint: 0, ...over };
}

// This file's default wait.
const until = <T>(f: () => T | undefined | null | false, what: string, ms = 15_000) => waitUntil(f, what, ms);


function node(t: any, id: number, listen = '127.0.0.1:0', extra: Record<string, unknown> = {}) {
  const got: Message[] = [];
  const unreachable: number[] = [];
  const snaps: [number, boolean][] = [];
  const tr = new RaftTransport({
    id, listen, onMessage: (m) => got.push(m), onUnreachable: (p) => unreachable.push(p),
    onSnapshotStatus: (p, ok) => snaps.push([p, ok]), ...extra,
  });
  t.teardown(() => tr.stop());
  return { tr, got, unreachable, snaps };
}

t.test('codec round-trips every field', async (t) => {
  const m = msg({
    type: MessageType.App, reject: true, rejectHint: 7, context: new Uint8Array([9, 8]),
    entries: [{ term: 2, index: 11, type: 0, data: new Uint8Array([1, 2, 3]) }, { term: 3, index: 12, type: 1, data: new Uint8Array() }],
  });
  const d = decodeMessage(encodeMessage(m));
  t.same(d, m);
  const s = msg({ type: MessageType.Snap, snapshot: { meta: { index: 5, term: 2, conf: { voters: [1, 2, 3], learners: [4], votersOutgoing: [], learnersNext: [], autoLeave: false, removed: [5, 6] } }, data: new Uint8Array([1]) } });
  const ds = decodeMessage(encodeMessage(s));
  t.same(ds.snapshot?.meta, s.snapshot!.meta, 'snapshot meta, removed ids included');
  t.equal(ds.snapshot?.data.length, 0, 'snapshot data is not inline');
  t.throws(() => decodeMessage(new Uint8Array([0x91, 0x01])), /12-field array/);
  t.ok(encodeMessage(m).length < 60, 'compact: ' + encodeMessage(m).length + ' bytes');
});

t.test('messages flow both ways and are batched while a write is in flight', async (t) => {
  const a = node(t, 1);
  const b = node(t, 2);
  await a.tr.start();
  await b.tr.start();
  a.tr.addPeer(2, `127.0.0.1:${b.tr.port}`);
  b.tr.addPeer(1, `127.0.0.1:${a.tr.port}`);
  const N = 2000;
  const sent: Message[] = [];
  for (let i = 0; i < N; i++) sent.push(msg({ index: i, entries: [{ term: 3, index: i + 1, type: 0, data: Buffer.from('v' + i) }] }));
  a.tr.send(sent);
  b.tr.send([msg({ from: 2, to: 1, type: MessageType.AppResp, index: 42 })]);
  await until(() => b.got.length === N && a.got.length === 1, 'all messages');
  t.same(b.got.map((m) => m.index), sent.map((m) => m.index), 'in order, none lost');
  t.same(Buffer.from(b.got[N - 1]!.entries[0]!.data).toString(), 'v' + (N - 1));
  t.equal(a.got[0]!.index, 42);
  const st = a.tr.peer(2)!.stats;
  t.equal(st.messages, N);
  t.ok(st.batches < 20, `${N} messages sent back to back went out in ${st.batches} batches`);
  t.equal(b.tr.received.batches, st.batches);
  t.equal(a.unreachable.length, 0);
});

t.test('a snapshot is streamed in chunks and arrives whole', async (t) => {
  const a = node(t, 1, '127.0.0.1:0', { snapshotChunkBytes: 64 << 10 });
  const b = node(t, 2);
  await a.tr.start();
  await b.tr.start();
  a.tr.addPeer(2, `127.0.0.1:${b.tr.port}`);
  const data = Buffer.alloc(5 << 20);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
  const conf = { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  a.tr.send([msg({ type: MessageType.Snap, snapshot: { meta: { index: 100, term: 4, conf }, data } })]);
  // heartbeats keep flowing alongside
  a.tr.send([msg({ type: MessageType.Heartbeat })]);
  await until(() => a.snaps.length === 1, 'snapshot status');
  t.same(a.snaps, [[2, true]]);
  const s = b.got.find((m) => m.type === MessageType.Snap)!;
  t.ok(s, 'MsgSnap delivered');
  t.same(s.snapshot!.meta, { index: 100, term: 4, conf });
  t.ok(Buffer.compare(Buffer.from(s.snapshot!.data), data) === 0, 'identical data');
  t.ok(b.got.some((m) => m.type === MessageType.Heartbeat));
});

t.test('a dead peer and a black-hole peer cost nothing, block nobody, and recover after back-off', async (t) => {
  const deadPort = await freePort('127.0.0.1');
  // A black hole: accepts the TCP connection and never answers (like a wedged manager).
  const sockets: net.Socket[] = [];
  const hole = net.createServer((s) => sockets.push(s));
  await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
  t.teardown(() => { for (const s of sockets) s.destroy(); hole.close(); });
  const holePort = (hole.address() as net.AddressInfo).port;

  const a = node(t, 1, '127.0.0.1:0', { sendTimeoutMs: 500, backoffMinMs: 50, backoffMaxMs: 400 });
  const b = node(t, 2);
  await a.tr.start();
  await b.tr.start();
  a.tr.addPeer(2, `127.0.0.1:${b.tr.port}`);
  a.tr.addPeer(3, `127.0.0.1:${deadPort}`);
  a.tr.addPeer(4, `127.0.0.1:${holePort}`);
  // Keep sending to all three, as a leader's heartbeats do, for a while.
  let sentToB = 0;
  for (let round = 0; round < 60; round++) {
    a.tr.send([msg({ to: 2, index: round }), msg({ to: 3, index: round }), msg({ to: 4, index: round })]);
    sentToB++;
    await new Promise((r) => setTimeout(r, 25));
  }
  await until(() => b.got.length === sentToB, 'the healthy peer got everything');
  t.same(b.got.map((m) => m.index), [...Array(sentToB).keys()], 'healthy peer unaffected, in order');
  t.ok(a.unreachable.includes(3), 'dead peer reported unreachable');
  // The black hole accepts bytes into its socket buffer; keepalive (or the send timeout) finds it out.
  await until(() => a.unreachable.includes(4), 'the black-hole peer reported unreachable', 30000);
  t.pass('black-hole peer reported unreachable');
  t.ok(a.tr.peer(3)!.stats.failures >= 1);
  t.ok(a.tr.peer(3)!.stats.dropped > 0, 'messages to a down peer are dropped, not queued');
  t.ok(a.tr.peer(4)!.stats.failures >= 1);

  // Bring node 3 up on the dead port: after its back-off, messages reach it.
  const c = node(t, 3, `127.0.0.1:${deadPort}`);
  await c.tr.start();
  await until(() => {
    a.tr.send([msg({ to: 3, index: 999 })]);
    return c.got.some((m) => m.index === 999);
  }, 'the restarted peer receives again');
  t.pass('recovered after back-off');
});

t.test('wrong format, wrong addressee and malformed messages are refused', async (t) => {
  const b = node(t, 2);
  await b.tr.start();
  const pkg = loadProto('raft/transport.proto') as any;
  const Client = pkg.shoal.raft.v1.RaftTransport as grpc.ServiceClientConstructor;
  const client = new Client(`127.0.0.1:${b.tr.port}`, grpc.credentials.createInsecure()) as any;
  t.teardown(() => client.close());
  const tryBatch = (batch: unknown) => new Promise<grpc.ServiceError | null>((resolve) => {
    const call = client.Stream((err: grpc.ServiceError | null) => resolve(err));
    call.write(batch);
    call.end();
  });
  const good = encodeMessage(msg({}));
  const e1 = await tryBatch({ format: 2, from: 1, to: 2, messages: [good] });
  t.equal(e1?.code, grpc.status.FAILED_PRECONDITION);
  t.match(e1?.details, /wire format 2 is not supported/);
  const e2 = await tryBatch({ format: 1, from: 1, to: 7, messages: [good] });
  t.match(e2?.details, /this is raft node 2, not 7/);
  const e3 = await tryBatch({ format: 1, from: 1, to: 2, messages: [Buffer.from([0xc1]), good] });
  t.equal(e3, null);
  t.equal(b.got.length, 1, 'only the good message was delivered');
  t.equal(b.tr.received.refused, 3);

  const snapErr = await new Promise<any>((resolve) => {
    const call = client.SendSnapshot((_e: unknown, ack: unknown) => resolve(ack));
    call.write({ format: 1, from: 1, to: 2, header: Buffer.alloc(0), offset: 5, total: 10, data: Buffer.alloc(5) });
    call.end();
  });
  t.equal(snapErr.accepted, false);
  t.match(snapErr.error, /first snapshot chunk must start at offset 0/);
});

t.test('a peer that goes silent mid-stream is found out by keepalive and reconnected after', async (t) => {
  const b = node(t, 2);
  await b.tr.start();
  // A TCP relay to b that can be frozen: it keeps the connections but drops every byte, as a
  // partition does (the kernel still acks, so only the application-level keepalive notices).
  let frozen = false;
  const socks: net.Socket[] = [];
  const relay = net.createServer((c) => {
    const up = net.connect(b.tr.port, '127.0.0.1');
    socks.push(c, up);
    c.on('data', (d) => { if (!frozen) up.write(d); });
    up.on('data', (d) => { if (!frozen) c.write(d); });
    const close = () => { c.destroy(); up.destroy(); };
    c.on('error', close); up.on('error', close); c.on('close', close); up.on('close', close);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  t.teardown(() => { for (const s of socks) s.destroy(); relay.close(); });
  const a = node(t, 1, '127.0.0.1:0', { backoffMinMs: 50, backoffMaxMs: 400 });
  await a.tr.start();
  a.tr.addPeer(2, `127.0.0.1:${(relay.address() as net.AddressInfo).port}`);
  a.tr.send([msg({ index: 1 })]);
  await until(() => b.got.length === 1, 'first message');
  frozen = true;
  await until(() => {
    a.tr.send([msg({ index: 2 })]);
    return a.unreachable.includes(2);
  }, 'the frozen peer reported unreachable', 30000);
  t.pass('silent peer detected');
  frozen = false;
  await until(() => {
    a.tr.send([msg({ index: 3 })]);
    return b.got.some((m) => m.index === 3);
  }, 'delivery after the heal', 30000);
  t.pass('delivers again after the heal');
});

t.test('servers accept connections with TCP_NODELAY (grpc-js internals still as expected)', async (t) => {
  const { enableNoDelay } = await import('./nodelay.js');
  const s = new grpc.Server();
  t.equal(enableNoDelay(s), true, 'grpc-js still builds its http2 server from commonServerOptions; if this fails, find another way to disable Nagle');
  s.forceShutdown();
});
