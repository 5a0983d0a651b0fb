import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Keyring } from './keyring.js';
import type { Protection } from './security.js';
import { ByteBudget, encodeFrame, FrameDecoder, FrameError, preambleSize } from './stream-frame.js';

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const payload = Buffer.from('push/pull state');

function decodeAll(p: Protection, frame: Buffer, maxBody = 1 << 20, budget = new ByteBudget(1 << 20), chunk = 7): Buffer | undefined {
  const d = new FrameDecoder(p, maxBody, budget);
  let out: Buffer | undefined;
  for (let i = 0; i < frame.length; i += chunk) out = d.push(frame.subarray(i, i + chunk)) ?? out;
  d.release();
  return out;
}

/** The error a decoder throws on `frame`, and how many of its bytes it had taken by then. */
function refusal(p: Protection, frame: Buffer, maxBody = 1 << 20, budget = new ByteBudget(1 << 20)): { e: FrameError; at: number } {
  const d = new FrameDecoder(p, maxBody, budget);
  for (let i = 0; i < frame.length; i++) {
    try {
      d.push(frame.subarray(i, i + 1));
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
      return { e, at: i + 1 };
    }
  }
  throw new Error('the frame was accepted');
}

t.test('frames round-trip with and without key and label, in any chunking', async (t) => {
  for (const p of [{ label: '' }, { label: 'shoal/c1' }, { keyring: new Keyring([k1]), label: '' }, { keyring: new Keyring([k1]), label: 'shoal/c1' }]) {
    const f = encodeFrame(p, payload);
    for (const chunk of [1, 5, 64, f.length]) t.same(decodeAll(p, f, 1 << 20, new ByteBudget(1 << 20), chunk), payload, `key ${!!p.keyring}, label "${p.label}", chunks of ${chunk}`);
  }
});

t.test('a sender without the key is refused at the head, before any body byte is taken', async (t) => {
  const ours: Protection = { keyring: new Keyring([k1]), label: 'shoal/c1' };
  const theirs: Protection = { keyring: new Keyring([k2]), label: 'shoal/c1' };
  const big = randomBytes(100_000);
  const budget = new ByteBudget(1 << 20);
  const { e, at } = refusal(ours, encodeFrame(theirs, big), 1 << 20, budget);
  t.equal(e.reason, 'decrypt');
  t.match(e.message, /stream head: no installed key/);
  t.equal(at, preambleSize(ours), `refused after ${at} bytes: the label header and the head, nothing of the 100 kB body`);
  t.equal(budget.inUse, 0, 'no budget was reserved');
  // Garbage in place of the head, as a flood would send.
  const junk = Buffer.concat([Buffer.from([0xf4, 8]), Buffer.from('shoal/c1'), Buffer.from([2]), randomBytes(64)]);
  t.equal(refusal(ours, junk).e.reason, 'decrypt', 'random head bytes are refused');
  const notHead = refusal(ours, Buffer.concat([Buffer.from([0xf4, 8]), Buffer.from('shoal/c1'), Buffer.from([0, 0, 0, 9])]));
  t.equal(notHead.at, 11, 'a first head byte that is no sealed head is refused at once');
  // An old-style frame (a bare 4-byte length) from an older shoal has no label header.
  const old = Buffer.alloc(8);
  old.writeUInt32BE(20 * 1024 * 1024);
  t.equal(refusal(ours, old).e.reason, 'label', 'a bare length (no label header) is refused at its first byte');
});

t.test('labels: another cluster, none, or one we do not have', async (t) => {
  const kr = new Keyring([k1]);
  const r = refusal({ keyring: kr, label: 'shoal/c1' }, encodeFrame({ keyring: kr, label: 'shoal/c2' }, payload));
  t.equal(r.e.reason, 'label');
  t.match(r.e.message, /label "shoal\/c2" is not ours \("shoal\/c1"\)/);
  t.equal(r.at, 10, 'refused once the label is read');
  const unl = refusal({ keyring: kr, label: '' }, encodeFrame({ keyring: kr, label: 'shoal/c1' }, payload));
  t.equal(unl.e.reason, 'label', 'a labelled frame to an unlabelled keyed member');
  t.equal(unl.at, 1, 'refused at its first byte');
  t.equal(refusal({ label: '' }, encodeFrame({ label: 'shoal/c1' }, payload)).e.reason, 'label', 'a labelled frame to an unlabelled, unkeyed member');
});

t.test('oversize, over budget, tampered, replayed and trailing bytes are refused', async (t) => {
  const p: Protection = { keyring: new Keyring([k1]), label: 'x' };
  const f = encodeFrame(p, randomBytes(5000));
  const over = refusal(p, f, 1000);
  t.equal(over.e.reason, 'oversize', 'an authenticated length over the limit');
  t.match(over.e.message, /exceeds the limit of 1000/);
  const budget = new ByteBudget(6000);
  t.ok(budget.take(2000), 'someone holds 2000 bytes');
  const busy = refusal(p, f, 1 << 20, budget);
  t.equal(busy.e.reason, 'busy', 'no room left in the shared budget');
  t.match(busy.e.message, /2000 of 6000 bytes are held/);
  const tampered = Buffer.from(f);
  tampered[tampered.length - 20] = (tampered[tampered.length - 20] as number) ^ 1;
  t.equal(refusal(p, tampered).e.reason, 'decrypt', 'a flipped body bit');
  // A captured head in front of another body of the same length: the body is bound to its head.
  const g = encodeFrame(p, randomBytes(5000));
  const pre = preambleSize(p);
  const spliced = Buffer.concat([f.subarray(0, pre), g.subarray(pre)]);
  t.equal(refusal(p, spliced).e.reason, 'decrypt', 'a head replayed with another body');
  t.equal(refusal(p, Buffer.concat([f, Buffer.from([1])])).e.reason, 'short', 'bytes after the frame');
  const plain: Protection = { label: '' };
  const tiny = Buffer.alloc(4);
  t.equal(refusal(plain, Buffer.concat([tiny, Buffer.from([0])])).e.reason, 'short', 'an empty body');
});

t.test('the budget is given back on release', async (t) => {
  const p: Protection = { label: '' };
  const budget = new ByteBudget(100);
  const d = new FrameDecoder(p, 1000, budget);
  const f = encodeFrame(p, randomBytes(80));
  t.equal(d.push(f.subarray(0, 10)), undefined, 'part of the body');
  t.equal(budget.inUse, 80, 'the whole body is reserved once its length is known');
  t.equal(d.holding, 80);
  d.release();
  t.equal(budget.inUse, 0, 'and given back');
});
