// The guard's rules for clients that never prove who they are (proto/guarded-server.ts, auth
// 'client-cert'), with real certificates of a cluster CA as the manager's API uses them: TLS asks
// for a client certificate but lets a joining node in without one. The hostile clients connect
// from 127.0.0.2 and the member from 127.0.0.1 (two hosts on loopback), with loopback not exempt
// from the per-host caps. The plaintext rules (caps in all, slow senders, oversized requests) are
// in proto/guarded-server.test.ts; the floods on a lab host in test/hostile-listeners.test.ts.
import t from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { GuardedServer, type GuardLimits } from '../../proto/guarded-server.js';
import { createKeyAndCSR, createRootCA, issueNodeCertificate } from '../ca/pki.js';
import { CHANNEL_OPTIONS, clientCredentials, pinnedCredentials, ServerTls, type TlsIdentity } from './credentials.js';

const id = (b: Buffer) => b;
const def: grpc.ServiceDefinition = {
  Echo: { path: '/t.T/Echo', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id },
  // Answers after `ms` (the request's text): calls that stay in flight.
  Slow: { path: '/t.T/Slow', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id },
};
const Client = grpc.makeGenericClientConstructor(def, 'T');
type TClient = grpc.Client & { Echo: Function; Slow: Function };

const clusterId = 'guardtest';
const ca = await createRootCA(clusterId);
async function identity(nodeId: string): Promise<TlsIdentity> {
  const { keyPem, csrPem } = await createKeyAndCSR();
  const { certPem } = await issueNodeCertificate({ ca, csrPem, nodeId, role: 'manager', clusterId });
  return { caPem: ca.certPem, certPem, keyPem };
}
const server = await identity('server');
const member = await identity('member');

const LIMITS: Partial<GuardLimits> = {
  exemptLoopback: false,
  maxUnauthenticatedPerHost: 3,
  maxCallsPerUnauthenticated: 2,
  firstCallMs: 1500,
  unauthenticatedMs: 3000,
};

async function serve(t: { teardown(f: () => unknown): void }, limits: Partial<GuardLimits> = {}): Promise<{ s: GuardedServer; addr: string; logs: string[] }> {
  const logs: string[] = [];
  const s = new GuardedServer({ name: 'test API', auth: 'client-cert', limits: { ...LIMITS, ...limits }, log: (m) => logs.push(m) });
  s.addService(def, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request),
    Slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => { setTimeout(() => cb(null, call.request), Number(call.request.toString())); },
  });
  const port = await s.listen('127.0.0.1:0', new ServerTls(server));
  t.teardown(() => s.forceShutdown());
  return { s, addr: `127.0.0.1:${port}`, logs };
}

function client(addr: string, creds: grpc.ChannelCredentials): TClient {
  return new Client(addr, creds, CHANNEL_OPTIONS) as unknown as TClient;
}

function rpc(c: TClient, method: 'Echo' | 'Slow', body: string, ms = 15_000): Promise<{ ok?: string; err?: grpc.ServiceError }> {
  return new Promise((r) => c[method](Buffer.from(body), { deadline: Date.now() + ms }, (err: grpc.ServiceError | null, v?: Buffer) => r(err ? { err } : { ok: v!.toString() })));
}

/** A TLS connection from 127.0.0.2 that presents no certificate and sends nothing after the handshake. */
function heldTls(addr: string): Promise<{ sock: tls.TLSSocket; closed: Promise<number> }> {
  const [host, port] = addr.split(':');
  return new Promise((resolve) => {
    const t0 = Date.now();
    const raw = net.connect({ host, port: Number(port), localAddress: '127.0.0.2' });
    raw.on('error', () => {});
    const sock = tls.connect({ socket: raw, ca: ca.certPem, servername: 'shoal-manager', ALPNProtocols: ['h2'], rejectUnauthorized: false });
    const closed = new Promise<number>((r) => sock.on('close', () => r(Date.now() - t0)));
    sock.on('error', () => {});
    sock.resume();
    sock.once('secureConnect', () => resolve({ sock, closed }));
    sock.once('close', () => resolve({ sock, closed }));
  });
}

t.test('a member with a certificate is authenticated at its first call', async (t) => {
  const { s, addr } = await serve(t);
  const c = client(addr, clientCredentials(member));
  t.teardown(() => c.close());
  t.same(await rpc(c, 'Echo', 'hi'), { ok: 'hi' });
  t.equal(s.stats.unauthenticatedOpen, 0, 'its connection no longer counts as unauthenticated');
});

t.test('connections without a certificate: capped per host; a member on another host is still served', async (t) => {
  const { s, addr, logs } = await serve(t);
  const held = await Promise.all([1, 2, 3].map(() => heldTls(addr)));
  t.ok(held.every((h) => !h.sock.destroyed), 'three held connections without a certificate are in');
  const fourth = await heldTls(addr);
  const fourthMs = await fourth.closed;
  t.ok(fourthMs < 1000, `a fourth from the same host is closed at once (${fourthMs} ms)`);
  t.equal(s.stats.dropped.unauthenticatedPerHost, 1, 'counted');
  t.match(logs.join('\n'), /test API: connection from 127\.0\.0\.2:\d+ refused: 3 connections from 127\.0\.0\.2 have not authenticated yet \(limit 3 per host\)/, 'and logged');
  const c = client(addr, clientCredentials(member));
  t.teardown(() => c.close());
  t.same(await rpc(c, 'Echo', 'member'), { ok: 'member' }, 'a member connecting from 127.0.0.1 meanwhile is served');
  // Held connections that never call are closed at firstCallMs, and their room is given back.
  const ms = await Promise.all(held.map((h) => h.closed));
  t.ok(ms.every((x) => x >= 1000 && x < 5000), `the held ones are closed after firstCallMs (${ms.join(', ')} ms)`);
  t.ok(s.stats.dropped.noCall >= 3, `counted as no call (${s.stats.dropped.noCall})`);
  const again = await heldTls(addr);
  t.notOk(again.sock.destroyed, 'a new connection from that host is let in again');
  again.sock.destroy();
});

t.test('a stalled TLS handshake (the first bytes of a ClientHello) is closed at firstCallMs', async (t) => {
  const { s, addr } = await serve(t);
  const [host, port] = addr.split(':');
  const sock = net.connect({ host, port: Number(port), localAddress: '127.0.0.2' });
  const t0 = Date.now();
  sock.on('connect', () => sock.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])));
  sock.on('error', () => {});
  sock.resume();
  const ms = await new Promise<number>((r) => sock.on('close', () => r(Date.now() - t0)));
  t.ok(ms >= 1000 && ms < 5000, `closed after ${ms} ms`);
  t.equal(s.stats.dropped.noCall, 1);
});

t.test('a client that calls but never presents a certificate: calls capped per connection, closed at unauthenticatedMs', async (t) => {
  const { s, addr, logs } = await serve(t);
  // From 127.0.0.1 too (grpc-js cannot pick a source address): the cap per host is not reached.
  const anon = client(addr, pinnedCredentials(ca.certPem));
  t.teardown(() => anon.close());
  t.same(await rpc(anon, 'Echo', 'bootstrap'), { ok: 'bootstrap' }, 'a call without a certificate is served (a joining node fetches the CA this way)');
  t.equal(s.stats.unauthenticatedOpen, 1, 'but the connection stays unauthenticated');
  const three = await Promise.all([rpc(anon, 'Slow', '800'), rpc(anon, 'Slow', '800'), rpc(anon, 'Slow', '800')]);
  const refused = three.filter((r) => r.err);
  t.equal(refused.length, 1, 'of three calls at once on it, one is refused');
  t.equal(refused[0]?.err?.code, grpc.status.RESOURCE_EXHAUSTED);
  t.match(refused[0]?.err?.details, /at most 2 calls at once on a connection without a client certificate/);
  t.equal(three.filter((r) => r.ok === '800').length, 2, 'the other two are served');
  // It keeps calling, so firstCallMs does not close it; unauthenticatedMs does (3 s after connecting).
  let lastOk = 0;
  let lastErr: grpc.ServiceError | undefined;
  const t0 = Date.now();
  while (Date.now() - t0 < 8000) {
    const r = await rpc(anon, 'Echo', 'again', 2000);
    if (r.ok) lastOk++;
    else { lastErr = r.err; break; }
    await new Promise((res) => setTimeout(res, 200));
  }
  t.ok(lastOk > 0, `calls went on for a while (${lastOk})`);
  t.ok(s.stats.dropped.notAuthenticated >= 1, `then its connection was closed for never authenticating (${lastErr?.details ?? 'a new connection took its place'})`);
  t.match(logs.join('\n'), /test API: closed 127\.0\.0\.1:\d+: no call with a client certificate within 3000 ms of connecting/, 'logged');
  const m = client(addr, clientCredentials(member));
  t.teardown(() => m.close());
  t.same(await rpc(m, 'Echo', 'member'), { ok: 'member' }, 'a member is served throughout');
});
