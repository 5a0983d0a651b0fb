import t from 'tap';
import { checkHistory, type Operation } from './linearizability.js';
import { Prng } from './prng.js';

const put = (c: number, key: string, value: string, call: number, ret: number | null): Operation => ({ clientId: c, key, op: 'put', value, call, return: ret });
const app = (c: number, key: string, value: string, call: number, ret: number | null): Operation => ({ clientId: c, key, op: 'append', value, call, return: ret });
const get = (c: number, key: string, output: string, call: number, ret: number): Operation => ({ clientId: c, key, op: 'get', output, call, return: ret });

t.test('sequential history is linearizable', async (t) => {
  const r = checkHistory([put(1, 'x', 'a', 0, 1), get(2, 'x', 'a', 2, 3), put(1, 'x', 'b', 4, 5), get(2, 'x', 'b', 6, 7)]);
  t.same(r, { ok: true });
});

t.test('empty history and never-written key read as empty string', async (t) => {
  t.same(checkHistory([]), { ok: true });
  t.same(checkHistory([get(1, 'x', '', 0, 1)]), { ok: true });
});

t.test('concurrent write may be seen or not by an overlapping read', async (t) => {
  t.ok(checkHistory([put(1, 'x', 'a', 0, 10), get(2, 'x', '', 1, 2)]).ok);
  t.ok(checkHistory([put(1, 'x', 'a', 0, 10), get(2, 'x', 'a', 1, 2)]).ok);
  // Once one overlapping read saw the new value, a later read may not see the old one.
  const r = checkHistory([put(1, 'x', 'a', 0, 10), get(2, 'x', 'a', 1, 2), get(3, 'x', '', 3, 4)]);
  t.equal(r.ok, false);
  t.equal(r.key, 'x');
});

t.test('stale read is not linearizable', async (t) => {
  const r = checkHistory([put(1, 'x', 'a', 0, 1), put(1, 'x', 'b', 2, 3), get(2, 'x', 'a', 4, 5)]);
  t.equal(r.ok, false);
  t.equal(r.key, 'x');
  t.match(r.explanation, /no linearization/);
  t.match(r.explanation, /get → "a"/);
});

t.test('lost write is not linearizable', async (t) => {
  // Both appends were acknowledged, yet a later read misses one of them.
  const r = checkHistory([app(1, 'x', 'a', 0, 1), app(2, 'x', 'b', 0, 2), get(3, 'x', 'b', 3, 4)]);
  t.equal(r.ok, false);
  t.ok(checkHistory([app(1, 'x', 'a', 0, 1), app(2, 'x', 'b', 0, 2), get(3, 'x', 'ba', 3, 4)]).ok);
  t.ok(checkHistory([app(1, 'x', 'a', 0, 1), app(2, 'x', 'b', 0, 2), get(3, 'x', 'ab', 3, 4)]).ok);
});

t.test('read of a never-written value is not linearizable', async (t) => {
  const r = checkHistory([put(1, 'x', 'a', 0, 1), get(2, 'x', 'zzz', 2, 3)]);
  t.equal(r.ok, false);
});

t.test('a timed-out write that later becomes visible is fine', async (t) => {
  const h = [put(1, 'x', 'a', 0, null), get(2, 'x', '', 5, 6), get(2, 'x', 'a', 50, 51), get(3, 'x', 'a', 60, 61)];
  t.ok(checkHistory(h).ok);
  // ...and so is one that never becomes visible.
  t.ok(checkHistory([put(1, 'x', 'a', 0, null), get(2, 'x', '', 50, 51)]).ok);
  // But it cannot take effect before it was sent.
  t.equal(checkHistory([get(2, 'x', 'a', 0, 1), put(1, 'x', 'a', 5, null)]).ok, false);
  // Nor flip back after being observed.
  t.equal(checkHistory([put(1, 'x', 'a', 0, null), get(2, 'x', 'a', 5, 6), get(2, 'x', '', 7, 8)]).ok, false);
});

t.test('unanswered operations also take Infinity and undefined for return', async (t) => {
  t.ok(checkHistory([{ clientId: 1, key: 'k', op: 'put', value: 'v', call: 0, return: Infinity }, get(2, 'k', 'v', 1, 2)]).ok);
  t.ok(checkHistory([{ clientId: 1, key: 'k', op: 'put', value: 'v', call: 0 }, get(2, 'k', 'v', 1, 2)]).ok);
  // An unanswered get has no effect at all.
  t.ok(checkHistory([{ clientId: 1, key: 'k', op: 'get', call: 0 }, get(2, 'k', '', 1, 2)]).ok);
});

t.test('cas', async (t) => {
  const cas = (c: number, expect: string, value: string, ok: boolean | undefined, call: number, ret: number | null): Operation => ({ clientId: c, key: 'x', op: 'cas', expect, value, ok, call, return: ret });
  t.ok(checkHistory([put(1, 'x', 'a', 0, 1), cas(2, 'a', 'b', true, 2, 3), get(3, 'x', 'b', 4, 5)]).ok);
  t.equal(checkHistory([put(1, 'x', 'a', 0, 1), cas(2, 'z', 'b', true, 2, 3)]).ok, false);
  t.equal(checkHistory([put(1, 'x', 'a', 0, 1), cas(2, 'a', 'b', false, 2, 3)]).ok, false);
  // Two concurrent cas from the same expected value cannot both win.
  t.equal(checkHistory([put(1, 'x', 'a', 0, 1), cas(2, 'a', 'b', true, 2, 5), cas(3, 'a', 'c', true, 2, 5)]).ok, false);
  // An unanswered cas may or may not have happened.
  t.ok(checkHistory([put(1, 'x', 'a', 0, 1), cas(2, 'a', 'b', undefined, 2, null), get(3, 'x', 'b', 9, 10)]).ok);
  t.ok(checkHistory([put(1, 'x', 'a', 0, 1), cas(2, 'a', 'b', undefined, 2, null), get(3, 'x', 'a', 9, 10)]).ok);
});

t.test('keys are independent (P-compositionality) and the broken key is named', async (t) => {
  const h = [put(1, 'x', 'a', 0, 1), put(1, 'y', 'b', 0, 1), get(2, 'x', 'a', 2, 3), get(2, 'y', 'a', 2, 3)];
  const r = checkHistory(h);
  t.equal(r.ok, false);
  t.equal(r.key, 'y');
});

t.test('ordering needs backtracking: overlapping writes read in either order', async (t) => {
  // w1 and w2 overlap; reads establish w2 then w1 as the final order. Needs the search to undo its first guess.
  const h = [put(1, 'x', '1', 0, 10), put(2, 'x', '2', 0, 10), get(3, 'x', '2', 1, 2), get(3, 'x', '1', 3, 4), get(4, 'x', '1', 11, 12)];
  t.ok(checkHistory(h).ok);
  const bad = [...h, get(4, 'x', '2', 13, 14)];
  t.equal(checkHistory(bad).ok, false);
});

t.test('a generated linearizable history of many overlapping ops passes; a mutated one fails', async (t) => {
  // Build a real linearizable history: each op takes effect at a random instant inside its interval.
  const rng = new Prng(7);
  const ops: Operation[] = [];
  let value = '';
  let time = 0;
  for (let i = 0; i < 400; i++) {
    time += rng.int(1, 3);
    const call = time - rng.int(0, 5);
    const ret = time + rng.int(0, 5);
    let o: Operation;
    if (rng.chance(0.5)) {
      o = { clientId: i % 7, key: 'k', op: 'get', output: value, call, return: ret };
    } else {
      const v = `v${i}`;
      o = { clientId: i % 7, key: 'k', op: rng.chance(0.5) ? 'put' : 'append', value: v, call, return: rng.chance(0.1) ? null : ret };
      value = o.op === 'put' ? v : value + v;
    }
    ops.push(o);
  }
  t.ok(checkHistory(ops).ok, 'linearizable');
  // Corrupt one answered read in the middle to a value that existed much earlier.
  const reads = ops.filter((o) => o.op === 'get' && o.output !== '');
  const victim = reads[Math.floor(reads.length / 2)];
  victim.output = 'v-never';
  t.equal(checkHistory(ops).ok, false, 'mutated read detected');
});

t.test('many lost writes that nobody observed do not blow up the search', async (t) => {
  const ops: Operation[] = [];
  for (let i = 0; i < 40; i++) ops.push(app(i, 'k', `lost${i};`, i, null));
  ops.push(app(99, 'k', 'seen;', 0, 5), get(98, 'k', 'seen;', 50, 51), get(97, 'k', 'seen;', 60, 61));
  // 40 unanswered appends could be placed in 40! orders; they are invisible, so none is needed.
  t.same(checkHistory(ops, { maxStepsPerKey: 10_000 }), { ok: true });
  // A lost write that was observed still has to fit: seen after the read that proves its order.
  const seen = [app(1, 'k', 'a;', 0, null), get(2, 'k', 'a;', 10, 11), app(3, 'k', 'b;', 20, 21), get(4, 'k', 'a;b;', 30, 31)];
  t.ok(checkHistory(seen).ok);
  t.equal(checkHistory([...seen, get(5, 'k', 'b;', 40, 41)]).ok, false, 'and a read that drops it is caught');
  // With cas in the history nothing is pruned (a lost write could make a cas fail).
  const withCas: Operation[] = [
    { clientId: 1, key: 'k', op: 'put', value: 'x', call: 0, return: null },
    { clientId: 2, key: 'k', op: 'cas', expect: '', value: 'y', ok: false, call: 10, return: 11 },
  ];
  t.ok(checkHistory(withCas).ok, 'the unanswered put explains the failed cas');
});

t.test('a lost put counts as seen only by a read that starts with its value (raft/sim seed 1806)', async (t) => {
  // Seed 1806's shape: lost puts "c.1" whose values occur inside appended values ("3.13;") of the
  // one read, beside lost appends the read does show. Taken as seen, the puts multiply the orders
  // to try and the search gave up; a read shows a put only as its prefix (appends only extend it).
  const ops: Operation[] = [];
  for (let c = 1; c <= 9; c++) ops.push(put(c, 'x', `${c}.1`, c, null));
  const shown = ['3.3;', '2.9;', '4.7;', '2.13;', '3.13;', '5.14;', '1.19;', '5.19;', '6.15;', '7.16;', '8.17;', '9.18;'];
  shown.forEach((v, i) => ops.push(app(20 + i, 'x', v, 20 + i, null)));
  ops.push(get(99, 'x', shown.join(''), 100, 101));
  t.same(checkHistory(ops, { maxStepsPerKey: 200_000 }), { ok: true }, 'decided within a small budget');
  // Sound: a lost put a read does start with is kept and must fit.
  const kept = [put(1, 'y', 'p', 0, null), app(2, 'y', 'a;', 10, 11), get(3, 'y', 'pa;', 20, 21)];
  t.ok(checkHistory(kept).ok, 'the put explains the read');
  t.equal(checkHistory([...kept, get(4, 'y', 'a;', 30, 31)]).ok, false, 'and a later read without it is caught');
  t.equal(checkHistory([put(1, 'y', 'p', 0, null), get(3, 'y', 'xp', 20, 21)]).ok, false, 'a read holding the value only inside is not explained by the put');
});

t.test('search budget exhausted reports unknown, never ok', async (t) => {
  const ops: Operation[] = [];
  for (let i = 0; i < 30; i++) ops.push(app(i, 'k', `${i};`, 0, 100));
  ops.push(get(99, 'k', 'impossible', 101, 102));
  const r = checkHistory(ops, { maxStepsPerKey: 1000 });
  t.equal(r.ok, false);
  t.equal(r.unknown, true);
  t.match(r.explanation, /gave up/);
});

t.test('malformed histories are rejected with a clear error', async (t) => {
  t.throws(() => checkHistory('nope' as unknown as Operation[]), /must be an array/);
  t.throws(() => checkHistory([{ clientId: 1, key: 'x', op: 'del' as 'get', call: 0, return: 1 }]), /op must be get, put, append or cas/);
  t.throws(() => checkHistory([{ clientId: 1, key: 'x', op: 'put', call: 0, return: 1 }]), /needs a string value/);
  t.throws(() => checkHistory([{ clientId: 1, key: 'x', op: 'get', call: 5, return: 1, output: '' }]), /returns \(1\) before it is called \(5\)/);
  t.throws(() => checkHistory([{ clientId: 1, key: 'x', op: 'get', call: NaN, return: 1, output: '' }]), /call must be a finite number/);
  t.throws(() => checkHistory([{ clientId: 1, key: 'x', op: 'get', call: 0, return: 1 }]), /answered get needs its output/);
  t.throws(() => checkHistory([{ clientId: 1, key: 'x', op: 'cas', value: 'a', call: 0, return: 1, ok: true }]), /cas needs a string expect/);
  t.throws(() => checkHistory([{ clientId: 1, key: 7 as unknown as string, op: 'get', call: 0, return: 1, output: '' }]), /key must be a string/);
});
