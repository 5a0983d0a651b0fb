// SPDY/3.1 (spdy.ts): frames and header blocks byte for byte, the dictionary as the spec defines
// it, and two sessions (client and server) talking over a loopback TCP connection: streams with
// data and FIN both ways, RST_STREAM, PING, GOAWAY, and what a peer's bad frames get.
import t from 'tap';
import { createServer, connect, type Socket } from 'node:net';
import { inflateSync } from 'node:zlib';
import {
  controlFrame, dataFrame, decodeHeaderBlock, encodeHeaderBlock, FrameParser, GOAWAY, PING, RST, RST_STREAM, SPDY_DICTIONARY,
  SpdySession, SpdyProtocolError, SYN_STREAM, type Frame, type SpdyStream,
} from './spdy.js';

const adler32 = (b: Buffer) => { let a = 1; let c = 0; for (const x of b) { a = (a + x) % 65521; c = (c + a) % 65521; } return ((c << 16) | a) >>> 0; };

t.test('the SPDY/3 header dictionary is the spec\'s 1423 bytes (Adler-32 0xe3c6a7c2, the id a peer checks)', async (t) => {
  t.equal(SPDY_DICTIONARY.length, 1423);
  t.equal(adler32(SPDY_DICTIONARY).toString(16), 'e3c6a7c2');
  t.equal(SPDY_DICTIONARY.subarray(0, 11).toString('hex'), '000000076f7074696f6e73', 'starts with the length-prefixed "options"');
  t.equal(SPDY_DICTIONARY.subarray(-6).toString(), 'enq=0.', 'ends with the tail string');
});

t.test('frames: the 8-byte headers, parsed back across arbitrary chunk boundaries', async (t) => {
  const c = controlFrame(PING, 0, Buffer.from([0, 0, 0, 7]));
  t.equal(c.toString('hex'), '800300060000000400000007', 'control bit, version 3, type 6, flags 0, length 4, id 7');
  const d = dataFrame(5, 1, Buffer.from('hi'));
  t.equal(d.toString('hex'), '00000005010000026869', 'stream 5, FIN, length 2');
  const got: Frame[] = [];
  const p = new FrameParser((f) => got.push(f));
  const all = Buffer.concat([c, d, dataFrame(7, 0, Buffer.alloc(0))]);
  for (const b of all) p.push(Buffer.from([b])); // one byte at a time
  t.same(got.map((f) => f.control ? ['c', f.version, f.type, f.flags, f.data.length] : ['d', f.streamId, f.flags, f.data.toString()]),
    [['c', 3, PING, 0, 4], ['d', 5, 1, 'hi'], ['d', 7, 0, '']]);
});

t.test('header blocks: names lowercased, several values NUL-joined; bad blocks are refused', async (t) => {
  const b = encodeHeaderBlock({ StreamType: 'error', port: ['80', '81'] });
  t.equal(b.toString('hex'), '00000002' + '0000000a' + Buffer.from('streamtype').toString('hex') + '00000005' + Buffer.from('error').toString('hex')
    + '00000004' + Buffer.from('port').toString('hex') + '00000005' + Buffer.from('80\x0081').toString('hex'));
  t.same(decodeHeaderBlock(b), { streamtype: ['error'], port: ['80', '81'] });
  t.throws(() => decodeHeaderBlock(b.subarray(0, b.length - 1)), /header block is truncated/, 'truncated');
  t.ok((() => { try { decodeHeaderBlock(Buffer.alloc(2)); } catch (e) { return e instanceof SpdyProtocolError; } return false; })(), 'a SpdyProtocolError');
  t.throws(() => decodeHeaderBlock(Buffer.from('7fffffff', 'hex')), /claims 2147483647 pairs in 4 bytes/, 'a pair count the block cannot hold');
  t.throws(() => decodeHeaderBlock(Buffer.from('000000010000000000000000', 'hex')), /empty name/);
});

/** A server session and a client session over a loopback TCP connection. */
async function pair(t: { teardown(fn: () => void): void }): Promise<{ server: SpdySession; client: SpdySession; raw: Socket }> {
  let server!: SpdySession;
  const srv = createServer((s) => { server = new SpdySession(s, 'server'); });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const raw = connect((srv.address() as { port: number }).port, '127.0.0.1');
  await new Promise((r) => raw.once('connect', r));
  while (!server) await new Promise((r) => setTimeout(r, 5));
  const client = new SpdySession(raw, 'client');
  t.teardown(() => { client.destroy(); server.destroy(); srv.close(); });
  return { server, client, raw };
}

t.test('sessions: streams, data and FIN both ways, RST, PING, GOAWAY', async (t) => {
  const { server, client } = await pair(t);
  const accepted: SpdyStream[] = [];
  server.on('stream', (s: SpdyStream) => {
    accepted.push(s);
    if (s.header('streamtype') === 'refuse') { s.reset(RST.REFUSED_STREAM); return; }
    s.reply({ answered: 'yes' });
    const chunks: Buffer[] = [];
    s.on('data', (b: Buffer) => chunks.push(b));
    s.on('end', () => s.end(`echo:${Buffer.concat(chunks).length}`));
  });
  const a = await client.openStream({ streamtype: 'stdin', requestid: '1' });
  t.equal(a.id, 1, 'client streams are odd');
  t.same(a.headers, { answered: ['yes'] }, 'the SYN_REPLY headers (compressed by the other side\'s zlib stream)');
  t.same(accepted[0]!.headers, { streamtype: ['stdin'], requestid: ['1'] });
  let back = '';
  a.on('data', (b: Buffer) => { back += b.toString(); });
  a.end(Buffer.alloc(200_000, 1)); // several DATA frames, more than the initial window
  await new Promise((r) => a.on('end', r));
  t.equal(back, 'echo:200000', 'the server read all of it, then our FIN; its answer ended with its FIN');
  // A second stream: the shared header compression contexts stay in step.
  const b = await client.openStream({ streamtype: 'stdout' });
  t.equal(b.id, 3);
  t.equal(accepted[1]!.header('streamtype'), 'stdout');
  const refused = await client.openStream({ streamtype: 'refuse' }).catch((e: Error) => e);
  t.match(String(refused), /reset before it was answered \(status 3\)/, 'a stream reset instead of answered');
  t.ok((await client.ping()) >= 0, 'PING answered');
  t.ok((await server.ping()) >= 0, 'PING from the server answered too');
  const goaway = new Promise<number[]>((r) => client.on('goaway', (last: number, status: number) => r([last, status])));
  const closed = new Promise((r) => client.on('close', r));
  await server.goAway();
  t.same(await goaway, [5, 0], 'GOAWAY names the last stream the server saw, status OK');
  await closed;
  t.ok(client.closed, 'the connection ends after GOAWAY');
  await client.openStream({}).then(() => t.fail('opened after close'), (e: Error) => t.match(e.message, /closing/));
});

t.test('bad input from a peer: RST for unknown streams, GOAWAY PROTOCOL_ERROR for garbage', async (t) => {
  const { server, raw } = await pair(t);
  server.on('stream', (s: SpdyStream) => s.reply());
  const frames: Frame[] = [];
  const p = new FrameParser((f) => frames.push(f));
  raw.on('data', (b: Buffer) => p.push(b));
  const until = async (ok: () => boolean) => { for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10)); };
  // DATA on a stream that was never opened.
  raw.write(dataFrame(9, 0, Buffer.from('x')));
  await until(() => frames.length > 0);
  const rst = frames[0]!;
  t.ok(rst.control && rst.type === RST_STREAM, 'answered with RST_STREAM');
  t.same(rst.control ? [rst.data.readUInt32BE(0), rst.data.readUInt32BE(4)] : [], [9, RST.INVALID_STREAM], 'INVALID_STREAM for stream 9');
  // A SYN_STREAM whose header block is not zlib at all.
  const errors: Error[] = [];
  server.on('protocolError', (e: Error) => errors.push(e));
  raw.write(controlFrame(SYN_STREAM, 0, Buffer.concat([Buffer.from('0000000b00000000' + '0000', 'hex'), Buffer.from('not zlib at all')])));
  await until(() => frames.some((f) => f.control && f.type === GOAWAY));
  const ga = frames.find((f) => f.control && f.type === GOAWAY)!;
  t.equal(ga.data.readUInt32BE(4), 1, 'GOAWAY with PROTOCOL_ERROR');
  t.match(errors[0]?.message, /header block/, 'the session says what was wrong');
  await until(() => server.closed);
  t.ok(server.closed, 'and closes the connection');
});

t.test('a header block a peer compressed is plain zlib with the dictionary', async (t) => {
  const { client, raw } = await pair(t);
  // What the client writes for a SYN_STREAM can be inflated by zlib given the same dictionary.
  const written: Buffer[] = [];
  const w = raw.write.bind(raw);
  raw.write = ((b: Buffer, ...rest: never[]) => { written.push(Buffer.from(b)); return w(b, ...rest); }) as typeof raw.write;
  void client.openStream({ streamtype: 'error' }).catch(() => {});
  for (let i = 0; i < 100 && written.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  const f = written[0]!;
  const block = f.subarray(8 + 10);
  t.equal(block.subarray(2, 6).readUInt32BE(0).toString(16), 'e3c6a7c2', 'the zlib header names the SPDY/3 dictionary');
  t.same(decodeHeaderBlock(inflateSync(block, { dictionary: SPDY_DICTIONARY, finishFlush: 2 /* Z_SYNC_FLUSH */ })), { streamtype: ['error'] });
});
