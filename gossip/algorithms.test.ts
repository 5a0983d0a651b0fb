// Awareness, Suspicion and the broadcast queue: the small Lifeguard and
// dissemination pieces, each rule on its own.
import t from 'tap';
import { Awareness } from './awareness.js';
import { BroadcastQueue } from './broadcast-queue.js';
import { Suspicion } from './suspicion.js';

t.test('awareness: clamps to [0, max−1] and scales timeouts by score+1', async (t) => {
  const a = new Awareness(8);
  t.equal(a.scale(500), 500);
  a.applyDelta(-3);
  t.equal(a.getScore(), 0, 'never negative');
  a.applyDelta(3);
  t.equal(a.scale(500), 2000);
  a.applyDelta(100);
  t.equal(a.getScore(), 7, 'capped at max-1');
  t.equal(a.scale(1000), 8000);
  t.throws(() => new Awareness(0), /integer >= 1/);
});

t.test('suspicion: the accuser is not a confirmation; duplicates do not count; capped at k', async (t) => {
  const s = new Suspicion('a', 2, 1000, 6000, 10_000);
  t.equal(s.deadline(), 16_000, 'starts at max');
  t.notOk(s.confirm('a'), 'accuser again');
  t.ok(s.confirm('b'));
  t.notOk(s.confirm('b'), 'same confirmer twice');
  const after1 = s.deadline();
  t.ok(after1 < 16_000 && after1 > 11_000, `one confirmation shortens (${after1})`);
  t.ok(s.confirm('c'));
  t.equal(s.deadline(), 11_000, 'k confirmations reach min');
  t.notOk(s.confirm('d'), 'beyond k: nothing to shorten, not re-gossiped');
  t.equal(s.getConfirmations(), 2);
});

t.test('suspicion with k = 0 uses the minimum at once', async (t) => {
  const s = new Suspicion('a', 0, 1000, 6000, 0);
  t.equal(s.deadline(), 1000);
  t.notOk(s.confirm('b'));
});

const msg = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill);

t.test('broadcast queue: a newer update about a member replaces the queued one', async (t) => {
  const q = new BroadcastQueue();
  q.queue({ key: 'x', msg: msg(10, 1) });
  q.queue({ key: 'y', msg: msg(10, 2) });
  q.queue({ key: 'x', msg: msg(10, 3) });
  t.equal(q.length(), 2);
  const got = q.getBroadcasts(2, 1000, 5);
  t.same(got.map((m) => m[0]).sort(), [2, 3]);
});

t.test('broadcast queue: least-sent first, newest first among equals, dropped at the limit', async (t) => {
  const q = new BroadcastQueue();
  q.queue({ key: 'a', msg: msg(100, 1) });
  t.same(q.getBroadcasts(2, 1000, 3).map((m) => m[0]), [1]);
  q.queue({ key: 'b', msg: msg(100, 2) });
  q.queue({ key: 'c', msg: msg(100, 3) });
  // room for one message only: the least-sent, newest
  t.same(q.getBroadcasts(2, 102, 3).map((m) => m[0]), [3]);
  t.same(q.getBroadcasts(2, 102, 3).map((m) => m[0]), [2]);
  t.same(q.getBroadcasts(2, 102, 3).map((m) => m[0]), [3], 'c and b now tie with a at 1... newest first');
  t.equal(q.transmitsOf('a'), 1);
  for (let i = 0; i < 6; i++) q.getBroadcasts(2, 1000, 3);
  t.equal(q.length(), 0, 'every item dropped after 3 transmits');
});

t.test('broadcast queue: respects the byte budget and skips what does not fit', async (t) => {
  const q = new BroadcastQueue();
  q.queue({ key: 'big', msg: msg(500) });
  q.queue({ key: 'small', msg: msg(50) });
  const got = q.getBroadcasts(2, 300, 10);
  t.equal(got.length, 1);
  t.equal(got[0]?.length, 50);
  t.equal(q.getBroadcasts(2, 10, 10).length, 0, 'nothing fits');
});
