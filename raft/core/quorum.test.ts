// Quorum math against a dumb reference: for random majority and joint configurations, the
// committed index and the vote outcome must match a brute-force definition.
import t from 'tap';
import { jointCommitted, jointVote, majorityCommitted, majorityVote, type VoteResult } from './quorum.js';
import { seeded } from './test-network.js';

/** Brute force: the largest index that at least a majority has reached. */
function dumbCommitted(ids: number[], match: Map<number, number>): number {
  if (ids.length === 0) return Infinity;
  const q = Math.floor(ids.length / 2) + 1;
  let best = 0;
  for (const candidate of new Set([0, ...ids.map((id) => match.get(id) ?? 0)])) {
    const n = ids.filter((id) => (match.get(id) ?? 0) >= candidate).length;
    if (n >= q && candidate > best) best = candidate;
  }
  return best;
}

function dumbVote(ids: number[], votes: Map<number, boolean>): VoteResult {
  if (ids.length === 0) return 'won';
  const q = Math.floor(ids.length / 2) + 1;
  const yes = ids.filter((id) => votes.get(id) === true).length;
  const undecided = ids.filter((id) => !votes.has(id)).length;
  if (yes >= q) return 'won';
  if (yes + undecided < q) return 'lost';
  return 'pending';
}

function dumbJointVote(a: VoteResult, b: VoteResult): VoteResult {
  if (a === 'lost' || b === 'lost') return 'lost';
  if (a === 'won' && b === 'won') return 'won';
  return 'pending';
}

t.test('majority and joint quorum math match the reference on 20,000 random cases', (t) => {
  const rnd = seeded(2026);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = () => {
    const ids: number[] = [];
    const size = int(8);
    for (let i = 0; i < size; i++) {
      const id = 1 + int(10);
      if (!ids.includes(id)) ids.push(id);
    }
    return ids;
  };
  let mismatches = 0;
  for (let iter = 0; iter < 20_000; iter++) {
    const inc = pick();
    const out = rnd() < 0.5 ? [] : pick();
    const match = new Map<number, number>();
    const votes = new Map<number, boolean>();
    for (let id = 1; id <= 10; id++) {
      if (rnd() < 0.8) match.set(id, int(20));
      const v = rnd();
      if (v < 0.4) votes.set(id, true);
      else if (v < 0.7) votes.set(id, false);
    }
    const mo = (id: number) => match.get(id);
    const cases: [unknown, unknown][] = [
      [majorityCommitted(new Set(inc), mo), dumbCommitted(inc, match)],
      [majorityVote(new Set(inc), votes), dumbVote(inc, votes)],
      [jointCommitted({ incoming: new Set(inc), outgoing: new Set(out) }, mo), Math.min(dumbCommitted(inc, match), dumbCommitted(out, match))],
      [jointVote({ incoming: new Set(inc), outgoing: new Set(out) }, votes), dumbJointVote(dumbVote(inc, votes), dumbVote(out, votes))],
    ];
    for (const [got, want] of cases) {
      if (got !== want) {
        mismatches++;
        if (mismatches < 5) t.fail(`inc=${inc} out=${out} match=${JSON.stringify([...match])} votes=${JSON.stringify([...votes])}: got ${String(got)}, want ${String(want)}`);
      }
    }
  }
  t.equal(mismatches, 0, 'no mismatch');
  t.end();
});

t.test('edge cases', (t) => {
  t.equal(majorityCommitted(new Set(), () => 5), Infinity, 'an empty majority commits everything (joint with empty outgoing)');
  t.equal(majorityVote(new Set(), new Map()), 'won');
  t.equal(majorityCommitted(new Set([1, 2]), (id) => (id === 1 ? 10 : undefined)), 0, 'a missing match counts as 0');
  t.equal(majorityCommitted(new Set([1, 2, 3, 4]), (id) => [0, 5, 6, 7, 8][id]), 6, 'four voters need three');
  t.equal(majorityVote(new Set([1, 2, 3]), new Map([[1, true], [2, false]])), 'pending');
  t.equal(majorityVote(new Set([1, 2, 3]), new Map([[1, false], [2, false]])), 'lost');
  t.equal(jointCommitted({ incoming: new Set([1, 2, 3]), outgoing: new Set([3, 4, 5]) }, (id) => [0, 9, 9, 1, 1, 1][id]), 1, 'joint takes the smaller half');
  t.end();
});
