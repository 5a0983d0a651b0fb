// The guard's bounds, on loopback TCP and a Unix socket, against raw sockets and a raw HTTP/2
// client playing a hostile one (half-sent requests, held connections); plaintext ('any-call').
// The certificate-based rules are tested with real certificates in
// manager/security/guarded-tls.test.ts; the floods on a lab host in test/hostile-listeners.test.ts.
import t from 'tap';
import http2 from 'node:http2';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { GuardedServer, resetStream, type GuardLimits } from './guarded-server.js';

const id = (b: Buffer) => b;
const def: grpc.ServiceDefinition = {
  Echo: { path: '/t.T/Echo', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id },
};
const Client = grpc.makeGenericClientConstructor(def, 'T');
let nextSawGuard: boolean | undefined;

async function serve(t: { teardown(f: () => unknown): void }, limits: Partial<GuardLimits> = {}, addr = '127.0.0.1:0'): Promise<{ s: GuardedServer; target: string; logs: string[] }> {
  const logs: string[] = [];
  const s = new GuardedServer({ name: 'test API', auth: 'any-call', limits, log: (m) => logs.push(m), options: { interceptors: [(_m, call) => {
    // The guard's interceptor must come first (it needs grpc-js's base call); this one wraps it.
    nextSawGuard ??= call.constructor.name === 'GuardedCall';
    return new grpc.ServerInterceptingCall(call);
  }] } });
  s.addService(def, { Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request) });
  const port = await s.listen(addr, grpc.ServerCredentials.createInsecure());
  t.teardown(() => s.forceShutdown());
  return { s, target: addr.startsWith('unix:') ? addr : `127.0.0.1:${port}`, logs };
}

function echo(target: string, body = 'hi', ms = 20_000): Promise<{ ok?: string; err?: grpc.ServiceError; ms: number }> {
  const c = new Client(target, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Echo: Function };
  const t0 = Date.now();
  return new Promise((r) => c.Echo(Buffer.from(body), { deadline: Date.now() + ms }, (err: grpc.ServiceError | null, v?: Buffer) => {
    c.close();
    r({ ...(err ? { err } : { ok: v!.toString() }), ms: Date.now() - t0 });
  }));
}

/** A raw HTTP/2 session that starts `n` Echo calls, each sending only part of a `size`-byte message. */
function halfSent(target: string, n: number, size: number, sent = 1000): { session: http2.ClientHttp2Session; statuses: Promise<string>[] } {
  const unix = target.startsWith('unix:');
  const session = http2.connect(unix ? 'http://localhost' : `http://${target}`, unix ? { createConnection: () => net.connect(target.slice(5)) } : {});
  session.on('error', () => {});
  const statuses: Promise<string>[] = [];
  for (let i = 0; i < n; i++) {
    const st = session.request({ ':path': '/t.T/Echo', ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' });
    statuses.push(new Promise((r) => {
      // A status ends the call for the client even while its own half stays open.
      const status = (h: http2.IncomingHttpHeaders) => { if (h['grpc-status'] !== undefined) r(`${h['grpc-status']} ${decodeURIComponent(String(h['grpc-message'] ?? ''))}`); };
      st.on('response', status);
      st.on('trailers', status);
      st.on('close', () => r(`closed (rst ${st.rstCode})`));
      st.on('error', () => {});
    }));
    st.resume();
    const hdr = Buffer.alloc(5);
    hdr.writeUInt32BE(size, 1);
    st.write(Buffer.concat([hdr, Buffer.alloc(sent, 1)]));
  }
  return { session, statuses };
}

function closedWithin(sock: net.Socket): Promise<number> {
  const t0 = Date.now();
  return new Promise((r) => {
    sock.on('close', () => r(Date.now() - t0));
    sock.on('error', () => {});
    sock.resume();
  });
}

t.test('calls work over TCP and a Unix socket; the guard is first and can reset a stream', async (t) => {
  const { s, target } = await serve(t);
  t.equal((await echo(target)).ok, 'hi');
  const dir = mkdtempSync(join(tmpdir(), `guard-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const u = await serve(t, {}, `unix://${join(dir, 's.sock')}`);
  t.equal((await echo(u.target)).ok, 'hi', 'over the Unix socket');
  t.equal(nextSawGuard, true, 'an interceptor passed in the options runs after the guard');
  // resetStream reaches grpc-js's stream (a private field of its base call): were it moved by a
  // grpc-js upgrade, the guard would close whole connections instead, and this says so.
  t.equal(s.streamsResettable, true, 'the base call carries its HTTP/2 stream');
  const probe = { stream: { closed: false, close: () => { probe.stream.closed = true; } } };
  t.equal(resetStream(probe as never, undefined), true);
  t.equal(probe.stream.closed, true);
});

t.test('at the cap, the idlest connection makes room; held ones close without a call', async (t) => {
  const { s, target, logs } = await serve(t, { maxConnections: 3, firstCallMs: 800 });
  const [host, port] = [target.split(':')[0]!, Number(target.split(':')[1])];
  const open = () => new Promise<net.Socket>((r) => { const c = net.connect(port, host, () => r(c)); });
  const held = [await open(), await open(), await open()];
  const closes = held.map(closedWithin);
  await new Promise((r) => setTimeout(r, 50));
  const fourth = await open();
  const first = await Promise.race([closes[0]!, new Promise<number>((r) => setTimeout(() => r(-1), 500))]);
  t.ok(first >= 0, 'the oldest held connection is closed to make room for the fourth');
  t.equal(s.stats.dropped.evicted, 1, 'counted');
  t.match(logs.join('\n'), /closed 127\.0\.0\.1's connection idle for \d+ ms to make room: 3 connections open \(limit 3\)/);
  t.equal(s.stats.open, 3);
  const times = await Promise.all([...closes.slice(1), closedWithin(fourth)]);
  t.ok(times.every((ms) => ms >= 500), `the others are closed at firstCallMs (${times.join(', ')} ms)`);
  t.equal(s.stats.dropped.noCall, 3);
  t.match(logs.join('\n'), /no call within 800 ms of connecting/);
  // A connection with a call in flight is never the one to go: with three busy, a fourth is refused.
  const M = 1 << 16;
  const busy = [1, 2, 3].map(() => halfSent(target, 1, M - 10, 10));
  await new Promise((r) => setTimeout(r, 300));
  const refused = await closedWithin(net.connect(port, host));
  t.ok(refused < 500, 'with every connection calling, a new one is refused at once');
  t.equal(s.stats.dropped.connections, 1);
  busy.forEach((b) => b.session.destroy());
});

t.test('at the cap, held connections that sent nothing go before a client whose call is on its way', async (t) => {
  // A Unix socket, as the local socket's flood: the client has sent its HTTP/2 preface but its
  // call has not reached the guard yet; held connections keep arriving behind it.
  const dir = mkdtempSync(join(tmpdir(), `guard-evict-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { s } = await serve(t, { maxConnections: 4 }, `unix:${join(dir, 's.sock')}`);
  const path = join(dir, 's.sock');
  const open = () => new Promise<net.Socket>((r) => { const c = net.connect(path, () => r(c)); c.on('error', () => {}); });
  const client = await open();
  client.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  const clientClosed = closedWithin(client);
  await new Promise((r) => setTimeout(r, 100));
  const held: net.Socket[] = [];
  for (let i = 0; i < 12; i++) held.push(await open());
  await new Promise((r) => setTimeout(r, 200));
  const gone = await Promise.race([clientClosed, new Promise<number>((r) => setTimeout(() => r(-1), 100))]);
  t.equal(gone, -1, 'the client is still connected, though it is the oldest connection without a call');
  t.equal(s.stats.dropped.evicted, 9, 'the held ones pushed out each other');
  held.forEach((h) => h.destroy());
  client.destroy();
});

t.test('a Unix connection gets its HTTP/2 session only when its client speaks', async (t) => {
  // grpc-js's HTTP/2 session (and nghttp2's) is freed only when V8 collects it: handed every held
  // connection of a flood, the local socket grew RSS by tens of MiB of garbage. A session starts
  // by sending the server's SETTINGS frame, so a held connection that receives nothing has none.
  const dir = mkdtempSync(join(tmpdir(), `guard-lazy-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { s, target } = await serve(t, {}, `unix:${join(dir, 's.sock')}`);
  const held = await new Promise<net.Socket>((r) => { const c = net.connect(join(dir, 's.sock'), () => r(c)); });
  let got = 0;
  held.on('data', (d: Buffer) => { got += d.length; });
  // A whole call on another connection, accepted after the held one: the held one's session, had
  // it one, would have written its SETTINGS by now.
  t.equal((await echo(target)).ok, 'hi');
  t.equal(s.stats.open, 2, 'the held connection is open and counted');
  t.equal(got, 0, 'the held connection got no HTTP/2 session (no SETTINGS frame)');
  // The same socket, once it speaks, is served: what it sent first is not lost.
  const session = http2.connect('http://localhost', { createConnection: () => held });
  session.on('error', () => {});
  const st = session.request({ ':path': '/t.T/Echo', ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' });
  const body = Buffer.from('late');
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  st.end(frame);
  const chunks: Buffer[] = [];
  st.on('data', (d: Buffer) => chunks.push(d));
  const status = await new Promise<string>((r) => { st.on('trailers', (h) => r(String(h['grpc-status']))); st.on('close', () => r(`closed (rst ${st.rstCode})`)); });
  t.equal(status, '0', 'its call succeeds');
  t.equal(Buffer.concat(chunks).subarray(5).toString(), 'late', 'and echoes the request');
  session.destroy();
});

t.test('per-host caps (loopback not exempt here)', async (t) => {
  const { s, target } = await serve(t, { maxConnectionsPerHost: 2, exemptLoopback: false });
  const [host, port] = [target.split(':')[0]!, Number(target.split(':')[1])];
  const held = await Promise.all([1, 2].map(() => new Promise<net.Socket>((r) => { const c = net.connect(port, host, () => r(c)); })));
  const ms = await closedWithin(net.connect(port, host));
  t.ok(ms < 500, 'a third connection from the same host is closed at once');
  t.equal(s.stats.dropped.connectionsPerHost, 1);
  held.forEach((h) => h.destroy());
});

t.test('a half-sent request is cut at readMs and its stream reset; reads share a budget; others go first', async (t) => {
  const M = 64 << 10;
  const { s, target, logs } = await serve(t, { maxMessageBytes: M, receiveBudgetBytes: 2 * M, readMs: 800, waitMs: 5000 });
  const bad = halfSent(target, 3, M - 10);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(s.stats.reading, 2, 'two calls read (the budget is two messages)');
  t.equal(s.stats.waiting, 1, 'the third waits, its stream paused');
  const good = await echo(target);
  t.equal(good.ok, 'hi', `a call on another connection is served (${good.ms} ms): it reads before the waiting call of the connection already reading two`);
  const statuses = await Promise.all(bad.statuses);
  t.ok(statuses.every((x) => /^4 test API: the request message was not complete within 800 ms/.test(x) || /rst/.test(x)), `every half-sent call is cut: ${statuses.join(' | ')}`);
  t.equal(s.stats.dropped.readTimeout, 3, 'three read timeouts counted');
  t.match(logs.join('\n'), /its request was not complete 800 ms after it began \(a slow or stalled sender\)/);
  t.equal(s.stats.reading, 0, 'nothing reserved afterwards');
  t.equal(s.stats.reservedBytes, 0);
  bad.session.destroy();
});

t.test('a request over the message limit is refused at its length prefix', async (t) => {
  const { s, target } = await serve(t, { maxMessageBytes: 1000 });
  const big = halfSent(target, 1, 50_000, 10);
  const [st] = await Promise.all(big.statuses);
  t.match(st!, /^8 /, `RESOURCE_EXHAUSTED (${st})`);
  t.equal(s.stats.reading, 0, 'and its turn to read is given back');
  big.session.destroy();
});

t.test('waiting calls are capped; a connection with many waiting gives way to one with few', async (t) => {
  const M = 64 << 10;
  const { s, target } = await serve(t, { maxMessageBytes: M, receiveBudgetBytes: M, maxWaiting: 4, readMs: 3000, waitMs: 3000 });
  const hog = halfSent(target, 6, M - 10);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(s.stats.reading, 1);
  t.equal(s.stats.waiting, 4, 'four wait, the sixth is refused');
  t.equal(s.stats.dropped.waiting, 1);
  const good = echo(target);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(s.stats.waiting, 4, 'a call of another connection took the place of one of the hog\'s');
  t.equal(s.stats.dropped.waiting, 2);
  t.equal((await good).ok, 'hi', 'and is served when the reading call is cut');
  hog.session.destroy();
});

/**
 * One call on a connection of its own that announces `size` bytes and, once its status has come,
 * sends `push` more (only as fast as HTTP/2 flow control lets it). Resolves when the stream
 * closes or everything was sent, with the status and the request bytes the client got to send.
 */
function refusedPush(target: string, size: number, push: number): Promise<{ status: string; rst: number | undefined; sent: number }> {
  const session = http2.connect(`http://${target}`);
  session.on('error', () => {});
  const st = session.request({ ':path': '/t.T/Echo', ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' });
  st.on('error', () => {});
  st.resume();
  const hdr = Buffer.alloc(5);
  hdr.writeUInt32BE(size, 1);
  st.write(Buffer.concat([hdr, Buffer.alloc(1000, 1)]));
  let sent = 1005;
  let status = '';
  return new Promise((resolve) => {
    const done = () => {
      session.destroy();
      resolve({ status, rst: st.rstCode, sent });
    };
    st.on('close', done);
    const onStatus = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] === undefined || status) return;
      status = `${h['grpc-status']} ${decodeURIComponent(String(h['grpc-message'] ?? ''))}`;
      const piece = Buffer.alloc(16 << 10, 2);
      let left = push;
      const go = (): void => {
        while (left > 0 && !st.destroyed) {
          left -= piece.length;
          // Counted when HTTP/2 has taken it: the write's callback.
          const ok = st.write(piece, (e) => { if (!e) sent += piece.length; });
          if (!ok) return void st.once('drain', go);
        }
        if (left <= 0) st.end(done);
      };
      go();
    };
    st.on('response', onStatus);
    st.on('trailers', onStatus);
  });
}

t.test('a call that ends before its request is read gets its stream reset: the client cannot push the rest through', async (t) => {
  // grpc-js answers a refused call with its status, then reads and drops whatever the client
  // goes on sending: a 4 MiB request refused passed all its bytes through the server (the local
  // socket's flood: hundreds of MiB of garbage, RSS far past the bound). With the reset (NO_ERROR,
  // after the status) the client can send at most one stream window (64 KiB) more.
  const M = 64 << 10;
  const PUSH = 8 << 20;
  const { s, target } = await serve(t, { maxMessageBytes: 4 << 20, receiveBudgetBytes: 4 << 20, maxWaiting: 1, waitMs: 500, readMs: 60_000 });
  // One call reads (the budget is one message), one waits, a third is refused at once.
  const reader = halfSent(target, 1, (4 << 20) - 10, 10);
  const waiter = halfSent(target, 1, (4 << 20) - 10, 10);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(s.stats.waiting, 1, 'one call waits');
  const refused = await refusedPush(target, (4 << 20) - 10, PUSH);
  t.match(refused.status, /^8 test API is busy: 1 calls are waiting/, `refused while the waiting calls are full (${refused.status})`);
  t.equal(refused.rst, http2.constants.NGHTTP2_NO_ERROR, 'its stream is reset without an error');
  t.ok(refused.sent < 4 * M, `the client sent ${refused.sent} bytes of its request, not ${PUSH}`);
  // The waiting call, refused at waitMs.
  const [waited] = await Promise.all(waiter.statuses);
  t.match(waited!, /^8 test API is busy: no turn to receive the request within 500 ms/, `${waited}`);
  reader.session.destroy();
  waiter.session.destroy();
  // grpc-js's own refusal of a message over the limit: the guard resets that stream too.
  const small = await serve(t, { maxMessageBytes: 1000 });
  const big = await refusedPush(small.target, 50_000, PUSH);
  t.match(big.status, /^8 /, `over the limit: RESOURCE_EXHAUSTED (${big.status})`);
  t.equal(big.rst, http2.constants.NGHTTP2_NO_ERROR, 'reset without an error');
  t.ok(big.sent < 4 * M, `the client sent ${big.sent} bytes of its request, not ${PUSH}`);
  // A grpc-js client refused gets the status, not the reset.
  const busy = await serve(t, { maxMessageBytes: 1 << 20, receiveBudgetBytes: 1 << 20, maxWaiting: 0 });
  const hog = halfSent(busy.target, 1, (1 << 20) - 10, 10);
  await new Promise((r) => setTimeout(r, 200));
  const r = await echo(busy.target);
  t.equal(r.err?.code, grpc.status.RESOURCE_EXHAUSTED, `a grpc-js client sees RESOURCE_EXHAUSTED (${r.err?.details})`);
  t.match(r.err?.details ?? '', /calls are waiting to send their requests/);
  hog.session.destroy();
});

t.test('shutdown closes the listener and the connections', async (t) => {
  const { s, target } = await serve(t);
  t.equal((await echo(target)).ok, 'hi');
  await new Promise<void>((r) => s.tryShutdown(() => r()));
  const after = await echo(target, 'x', 1500);
  t.ok(after.err, `no answer after shutdown (${after.err?.code})`);
});
