import t from 'tap';
import { decodeMessage, encodeMessage, MAX_ADDR, MAX_MEMBERS, MAX_META, MAX_NAME, MAX_PUSH_PULL_BYTES, MsgType, packPacket, unpackPacket, type Message } from './wire.js';
import { Packr } from 'msgpackr';

const samples: Message[] = [
  { type: MsgType.Ping, seq: 7, node: 'a' },
  { type: MsgType.IndirectPing, seq: 8, target: 'b', targetAddr: '127.0.0.1:1', nack: true },
  { type: MsgType.Ack, seq: 9 },
  { type: MsgType.Nack, seq: 10 },
  { type: MsgType.Suspect, inc: 3, node: 'b', from: 'a' },
  { type: MsgType.Dead, inc: 4, node: 'b', from: 'b' },
  { type: MsgType.Alive, inc: 5, node: 'c', addr: '127.0.0.1:2', meta: new Uint8Array([1, 2, 3]), vsn: [1, 1, 1] },
  { type: MsgType.PushPull, join: true, nodes: [{ name: 'd', addr: 'x:1', meta: new Uint8Array(0), inc: 2, state: 'left', vsn: [1, 1, 1] }] },
];

t.test('every message type round-trips', async (t) => {
  for (const m of samples) {
    const back = decodeMessage(encodeMessage(m));
    t.same({ ...back, ...('meta' in back ? { meta: [...back.meta] } : {}) }, { ...m, ...('meta' in m ? { meta: [...m.meta] } : {}) }, `type ${m.type}`);
  }
});

t.test('compound packets keep the parts and their order; a single message is not wrapped', async (t) => {
  const parts = samples.slice(0, 5).map(encodeMessage);
  const pkt = packPacket(parts);
  t.equal(pkt[0], MsgType.Compound);
  t.same(unpackPacket(pkt).map((p) => [...p]), parts.map((p) => [...p]));
  const one = encodeMessage(samples[0] as Message);
  t.equal(packPacket([one]), one);
  t.same(unpackPacket(one).length, 1);
  t.throws(() => packPacket([]), /no messages/);
});

t.test('malformed input is a WireError, never a crash', async (t) => {
  const packr = new Packr({ useRecords: false });
  const body = (type: number, v: unknown): Uint8Array => Uint8Array.from([type, ...packr.pack(v)]);
  const bad: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['unknown type', body(99, [1])],
    ['nested compound', body(MsgType.Compound, [1])],
    ['garbage body', Uint8Array.from([MsgType.Ping, 0xc1, 0xc1])],
    ['ping seq is a string', body(MsgType.Ping, ['x', 'a'])],
    ['ping without node', body(MsgType.Ping, [1])],
    ['negative incarnation', body(MsgType.Suspect, [-1, 'a', 'b'])],
    ['empty member name', body(MsgType.Dead, [1, '', 'b'])],
    ['alive meta not bytes', body(MsgType.Alive, [1, 'a', 'x:1', 'meta', [1, 1, 1]])],
    ['alive bad vsn', body(MsgType.Alive, [1, 'a', 'x:1', new Uint8Array(0), [1]])],
    ['push-pull unknown state', body(MsgType.PushPull, [false, [['a', 'x', new Uint8Array(0), 1, 9, [1, 1, 1]]]])],
    ['indirect nack not boolean', body(MsgType.IndirectPing, [1, 'a', 'x:1', 1])],
    ['name too long', body(MsgType.Ping, [1, 'n'.repeat(200)])],
  ];
  for (const [what, buf] of bad) t.throws(() => decodeMessage(buf), { name: 'WireError' }, what);
  t.throws(() => unpackPacket(Uint8Array.from([MsgType.Compound, 2, 0, 5])), { name: 'WireError' }, 'truncated length table');
  t.throws(() => unpackPacket(Uint8Array.from([MsgType.Compound, 1, 0, 50, 1, 2])), { name: 'WireError' }, 'part past the end');
  t.throws(() => unpackPacket(new Uint8Array(0)), { name: 'WireError' }, 'empty packet');
});

t.test('an alive with a few hundred bytes of metadata fits one 1400-byte packet with room to spare', async (t) => {
  const m = encodeMessage({ type: MsgType.Alive, inc: 1, node: 'worker-123', addr: '127.0.0.1:7946', meta: new Uint8Array(512), vsn: [1, 1, 1] });
  t.ok(m.length < 600, `alive with 512 B meta is ${m.length} B`);
});

t.test('a push/pull of the largest pool, every field at its limit, fits MAX_PUSH_PULL_BYTES; more members do not decode', async (t) => {
  const nodes = Array.from({ length: MAX_MEMBERS }, (_, i) => ({
    // 3-byte UTF-8 characters: the longest a name of MAX_NAME characters can encode to
    name: `${i}`.padEnd(MAX_NAME, '\u20ac'),
    addr: `${i}:`.padEnd(MAX_ADDR, 'a'),
    meta: new Uint8Array(MAX_META),
    inc: Number.MAX_SAFE_INTEGER,
    state: 'suspect' as const,
    vsn: [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER] as [number, number, number],
  }));
  const enc = encodeMessage({ type: MsgType.PushPull, join: true, nodes });
  t.ok(enc.length <= MAX_PUSH_PULL_BYTES, `${enc.length} bytes <= MAX_PUSH_PULL_BYTES ${MAX_PUSH_PULL_BYTES}`);
  t.ok(enc.length > 0.9 * MAX_PUSH_PULL_BYTES, 'and the bound is not loose by more than 10 %');
  t.equal((decodeMessage(enc) as { nodes: unknown[] }).nodes.length, MAX_MEMBERS, 'it decodes');
  const more = encodeMessage({ type: MsgType.PushPull, join: true, nodes: [...nodes.slice(0, 2).map((n) => ({ ...n, meta: new Uint8Array(0) })), ...Array.from({ length: MAX_MEMBERS - 1 }, (_, i) => ({ ...nodes[0]!, name: `m${i}`, meta: new Uint8Array(0) }))] });
  t.throws(() => decodeMessage(more), /push-pull.nodes: 4097 members, over the limit of 4096/, 'MAX_MEMBERS + 1 entries are refused');
});

t.test('metadata over MAX_META and addresses that are not printable ASCII are refused', async (t) => {
  const alive = (meta: Uint8Array, addr = '127.0.0.1:1'): Uint8Array => encodeMessage({ type: MsgType.Alive, inc: 1, node: 'a', addr, meta, vsn: [1, 1, 1] });
  t.throws(() => decodeMessage(alive(new Uint8Array(MAX_META + 1))), /alive.meta: 1025 bytes, over the limit of 1024/);
  t.ok(decodeMessage(alive(new Uint8Array(MAX_META))), 'MAX_META itself is fine');
  t.throws(() => decodeMessage(alive(new Uint8Array(0), 'h\u00f6st:1')), /printable ASCII/);
  t.throws(() => decodeMessage(alive(new Uint8Array(0), 'a'.repeat(MAX_ADDR + 1))), /at most 261 characters/);
});
