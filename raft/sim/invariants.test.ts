// The invariant checker on hand-made event sequences: each property accepts a correct sequence
// and reports the broken one, by name.
import t, { type Test } from 'tap';
import { EntryType, MessageType, type Entry, type Message } from '../types.js';
import { InvariantChecker, Violation } from './invariants.js';

const enc = new TextEncoder();
const e = (index: number, term: number, data = `${index}@${term}`): Entry => ({ index, term, type: EntryType.Normal, data: enc.encode(data) });
const msg = (p: Partial<Message> & { type: MessageType }): Message => ({ to: 0, from: 0, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, ...p });

function violates(t: Test, name: string, f: () => void): void {
  try {
    f();
    t.fail(`expected a ${name} violation`);
  } catch (err) {
    t.ok(err instanceof Violation, `${name}: a Violation`);
    t.equal((err as Violation).invariant, name);
  }
}

t.test('election safety: one leader per term, also seen through leader-only messages', async (t) => {
  const inv = new InvariantChecker([1, 2, 3]);
  inv.leaderSeen(1, 2, 'status');
  inv.leaderSeen(1, 2, 'again');
  inv.leaderSeen(2, 3, 'status');
  violates(t, 'election safety', () => inv.leaderSeen(3, 2, 'status'));
  const inv2 = new InvariantChecker([1, 2]);
  inv2.onSend(1, msg({ type: MessageType.App, from: 1, to: 2, term: 4 }));
  violates(t, 'election safety', () => inv2.onSend(2, msg({ type: MessageType.Heartbeat, from: 2, to: 1, term: 4 })));
});

t.test('log matching: same (index, term) with a different prefix is reported', async (t) => {
  const inv = new InvariantChecker([1, 2]);
  inv.onReady(1, 0, { entries: [e(1, 1), e(2, 1)] });
  inv.onReady(2, 0, { entries: [e(1, 1), e(2, 1)] });
  const inv2 = new InvariantChecker([1, 2]);
  inv2.onReady(1, 0, { entries: [e(1, 1), e(2, 1)] });
  violates(t, 'log matching', () => inv2.onReady(2, 0, { entries: [e(1, 1, 'other'), e(2, 1)] }));
});

t.test('leader append-only: a leader that already wrote in its term may not truncate', async (t) => {
  const inv = new InvariantChecker([1]);
  inv.onReady(1, 0, { entries: [e(1, 1), e(2, 1)] });
  // Becoming leader of term 2: the Ready may still carry a truncation from before, then its no-op.
  inv.onReady(1, 2, { entries: [e(2, 1), e(3, 2, '')] });
  inv.onReady(1, 2, { entries: [e(4, 2)] });
  violates(t, 'leader append-only', () => inv.onReady(1, 2, { entries: [e(4, 2, 'rewritten')] }));
});

t.test('commit: one committed entry per index, and leader completeness', async (t) => {
  const inv = new InvariantChecker([1, 2, 3]);
  inv.onReady(1, 1, { entries: [e(1, 1), e(2, 1)], hardState: { term: 1, vote: 1, commit: 2 } });
  inv.onReady(2, 0, { entries: [e(1, 1), e(2, 1)], hardState: { term: 1, vote: 1, commit: 2 } });
  // Node 3 missed entry 2 and becomes leader of term 2: it lacks a committed entry.
  inv.onReady(3, 0, { entries: [e(1, 1)] });
  violates(t, 'leader completeness', () => inv.onReady(3, 2, { entries: [e(2, 2, '')] }));
  const inv2 = new InvariantChecker([1, 2]);
  inv2.onReady(1, 0, { entries: [e(1, 1)], hardState: { term: 1, vote: 0, commit: 1 } });
  violates(t, 'one committed entry per index', () => inv2.onReady(2, 0, { entries: [e(1, 2)], hardState: { term: 2, vote: 0, commit: 1 } }));
  const inv3 = new InvariantChecker([1]);
  violates(t, 'commit within log', () => inv3.onReady(1, 0, { entries: [e(1, 1)], hardState: { term: 1, vote: 0, commit: 5 } }));
});

t.test('state machine safety and apply order', async (t) => {
  const inv = new InvariantChecker([1, 2]);
  inv.onReady(1, 0, { entries: [e(1, 1)], hardState: { term: 1, vote: 0, commit: 1 } });
  inv.onApply(1, 1, 111);
  inv.onApply(2, 1, 111);
  const inv2 = new InvariantChecker([1, 2]);
  inv2.onReady(1, 0, { entries: [e(1, 1)], hardState: { term: 1, vote: 0, commit: 1 } });
  inv2.onApply(1, 1, 111);
  violates(t, 'state machine safety', () => inv2.onApply(2, 1, 222));
  violates(t, 'apply in order', () => inv2.onApply(1, 3, 333));
  const inv3 = new InvariantChecker([1]);
  violates(t, 'apply only committed', () => inv3.onApply(1, 1, 1));
  // A snapshot that disagrees with what another node applied at that index.
  const inv4 = new InvariantChecker([1, 2]);
  inv4.onReady(1, 0, { entries: [e(1, 1)], hardState: { term: 1, vote: 0, commit: 1 } });
  inv4.onApply(1, 1, 111);
  violates(t, 'state machine safety', () => inv4.onApplySnapshot(2, 1, 999));
  violates(t, 'apply in order', () => inv4.onApplySnapshot(1, 0, 0));
});

t.test('votes: durable before granted, one per term across restarts, terms monotonic', async (t) => {
  const inv = new InvariantChecker([1, 2, 3]);
  violates(t, 'vote durable before granted', () => inv.onSend(1, msg({ type: MessageType.VoteResp, from: 1, to: 2, term: 3 })));
  inv.onPersist(1, { term: 3, vote: 2, commit: 0 });
  inv.onSend(1, msg({ type: MessageType.VoteResp, from: 1, to: 2, term: 3 }));
  inv.onSend(1, msg({ type: MessageType.VoteResp, from: 1, to: 3, term: 3, reject: true }));
  // A later term on disk also makes an earlier grant safe (it can never vote in that term again).
  inv.onPersist(2, { term: 5, vote: 0, commit: 0 });
  inv.onSend(2, msg({ type: MessageType.VoteResp, from: 2, to: 3, term: 4 }));
  // After a "restart" the node persists a different vote in the same term.
  violates(t, 'one vote per term', () => inv.onPersist(1, { term: 3, vote: 3, commit: 0 }));
  violates(t, 'durable term monotonic', () => inv.onPersist(2, { term: 4, vote: 0, commit: 0 }));
  inv.onPersist(3, { term: 1, vote: 0, commit: 5 });
  violates(t, 'durable commit monotonic', () => inv.onPersist(3, { term: 1, vote: 0, commit: 4 }));
});

t.test('checks are counted (the checker is wired in)', async (t) => {
  const inv = new InvariantChecker([1]);
  inv.onReady(1, 0, { entries: [e(1, 1)], hardState: { term: 1, vote: 1, commit: 1 } });
  t.ok(inv.checks > 0);
});
