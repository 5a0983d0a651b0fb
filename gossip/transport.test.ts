// The TCP side of the gossip transport on loopback, against raw sockets acting as a hostile host:
// what it drops, how many streams it keeps open, what it buffers and for how long.
import t from 'tap';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Keyring } from './keyring.js';
import { encodeFrame } from './stream-frame.js';
import { splitAddr, UdpTcpTransport } from './transport-udp-tcp.js';

const key = randomBytes(32);
const prot = { keyring: new Keyring([key]), label: 'shoal/test' };

async function server(t: Tap, limits = {}, logs: string[] = []): Promise<UdpTcpTransport> {
  const s = await UdpTcpTransport.listen('127.0.0.1', 0, prot, { limits: { streamTimeoutMs: 1500, ...limits }, log: (m) => logs.push(m) });
  s.setHandlers({ packet: () => {}, stream: (_from, data) => Buffer.concat([Buffer.from('re:'), data]) });
  t.teardown(() => s.close());
  return s;
}
type Tap = { teardown(f: () => unknown): void };

function connect(addr: string): Promise<net.Socket> {
  const { host, port } = splitAddr(addr);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port }, () => resolve(s));
    s.on('error', reject);
  });
}

/** Resolves when the server closes the socket; with the ms it took. */
function closed(s: net.Socket): Promise<number> {
  const t0 = Date.now();
  return new Promise((r) => {
    if (s.destroyed) return r(0);
    s.on('close', () => r(Date.now() - t0));
    s.on('error', () => {});
    s.resume();
  });
}

t.test('a member exchange still works', async (t) => {
  const s = await server(t);
  const c = await UdpTcpTransport.listen('127.0.0.1', 0, prot);
  t.teardown(() => c.close());
  const reply = await c.request(s.addr, Buffer.from('hello'), 2000);
  t.equal(Buffer.from(reply!).toString(), 're:hello');
  for (let i = 0; i < 50 && s.stats.streamsOpen > 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(s.stats.streamsOpen, 0, 'the stream is closed after its reply');
});

t.test('a stream without the key is dropped at its head; a 20 MiB length is never buffered', async (t) => {
  const logs: string[] = [];
  const s = await server(t, {}, logs);
  const sock = await connect(s.addr);
  const bye = closed(sock);
  // A frame as an attacker would write it: the label is public, the head is junk, the body huge.
  const head = Buffer.concat([Buffer.from([0xf4, prot.label.length]), Buffer.from(prot.label), Buffer.from([2]), randomBytes(32)]);
  sock.write(head);
  sock.write(randomBytes(1 << 20), () => {});
  await bye;
  t.equal(s.stats.dropped.decrypt, 1, 'dropped and counted as not authenticated');
  t.equal(s.stats.bufferedBytesMax, 0, 'not one body byte was reserved');
  t.match(logs.join('\n'), /dropped \(decrypt\) from 127\.0\.0\.1:\d+: stream head: no installed key/, 'and logged, naming the sender and why');
});

t.test('an authenticated length over the limit is dropped as oversize', async (t) => {
  const s = await server(t, { maxPayload: 1000 });
  const sock = await connect(s.addr);
  const bye = closed(sock);
  sock.write(encodeFrame(prot, randomBytes(5000)));
  await bye;
  t.equal(s.stats.dropped.oversize, 1);
});

t.test('streams open at once are capped per host; the rest are closed as they arrive', async (t) => {
  const s = await server(t, { maxInboundStreamsPerHost: 3, streamTimeoutMs: 5000 });
  const held = await Promise.all([1, 2, 3].map(() => connect(s.addr)));
  for (const h of held) h.write(Buffer.from([0xf4])); // a first byte, then nothing
  await new Promise((r) => setTimeout(r, 100));
  t.equal(s.stats.streamsOpen, 3, 'three held streams');
  const fourth = await connect(s.addr);
  const ms = await closed(fourth);
  t.ok(ms < 4000, 'the fourth is closed at once, not at the stream deadline');
  t.equal(s.stats.dropped.busy, 1, 'counted as busy');
  // A member's own exchange is refused too while this host holds its slots: the cap is per host.
  held.forEach((h) => h.destroy());
  await new Promise((r) => setTimeout(r, 100));
  t.equal(s.stats.streamsOpen, 0, 'slots come back when the held streams close');
});

t.test('a slow sender is cut at the stream deadline, even while it keeps trickling bytes', async (t) => {
  const s = await server(t, { streamTimeoutMs: 800 });
  const sock = await connect(s.addr);
  const frame = encodeFrame(prot, randomBytes(2000));
  let i = 0;
  const trickle = setInterval(() => {
    if (!sock.destroyed && i < frame.length - 1) sock.write(frame.subarray(i, ++i));
  }, 50);
  const ms = await closed(sock);
  clearInterval(trickle);
  t.ok(ms >= 700, `closed after ${ms} ms, at the deadline`);
  t.equal(s.stats.dropped.timeout, 1, 'counted as a timeout');
  t.equal(s.stats.bufferedBytes, 0, 'its reservation is given back');
});

t.test('bodies share one budget: what does not fit is refused, not queued', async (t) => {
  const s = await server(t, { bufferBudget: 10_000 });
  const a = await connect(s.addr);
  const fa = encodeFrame(prot, randomBytes(8000));
  a.write(fa.subarray(0, fa.length - 1)); // all but the last byte: 8000+ bytes reserved and held
  await new Promise((r) => setTimeout(r, 100));
  t.ok(s.stats.bufferedBytes > 8000, `held: ${s.stats.bufferedBytes} B`);
  const b = await connect(s.addr);
  const bye = closed(b);
  b.write(encodeFrame(prot, randomBytes(4000)));
  await bye;
  t.equal(s.stats.dropped.busy, 1, 'the second body would pass the budget');
  a.destroy();
});
