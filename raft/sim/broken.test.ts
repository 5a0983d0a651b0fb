// The simulator must catch a broken Raft. Each variant below is the real core with one protocol
// step replaced by a buggy copy (through the protected methods of raft-api.md); for each, seeds
// are searched until the simulator reports a violation, and the violation must be of a kind the
// bug can cause. A simulator that cannot fail would fail this test.

import t from 'tap';
import { Raft } from '../core/index.js';
import { MessageType, type Message, type NodeId } from '../types.js';
import { runSeed, type SimOptions, type SimResult } from './simulator.js';

/** Follower appends after index m.index without checking that its entry there has term m.logTerm. */
class NoPrevTermCheck extends Raft {
  protected override handleAppendEntries(m: Message): void {
    const log = this.raftLog;
    if (m.index > log.committed && m.index <= log.lastIndex() && log.termOrZero(m.index) !== m.logTerm) {
      m = { ...m, logTerm: log.termOrZero(m.index) }; // pretend the previous entry matched
    }
    super.handleAppendEntries(m);
  }
}

/** A candidate counts its own vote twice (as if another voter had granted it too). */
class DoubleSelfVote extends Raft {
  protected override poll(from: NodeId, type: MessageType, granted: boolean): 'won' | 'lost' | 'pending' {
    if (from === this.id && granted) {
      const other = this.trk.voterIds().find((v) => v !== this.id && !this.trk.votes.has(v));
      if (other !== undefined) super.poll(other, type, true);
    }
    return super.poll(from, type, granted);
  }
}

/** The leader commits whatever a quorum has replicated, even entries of an earlier term (no §5.4.2 rule). */
class CommitOldTerm extends Raft {
  protected override maybeCommit(): boolean {
    const idx = this.trk.committed();
    if (idx > this.raftLog.committed) {
      this.raftLog.commitTo(idx);
      return true;
    }
    return false;
  }
}

/** Grants votes (and pre-votes) without the "candidate's log is at least as up to date" check. */
class VoteWithoutLogCheck extends Raft {
  protected override handleVoteRequest(m: Message): void {
    super.handleVoteRequest({ ...m, index: Number.MAX_SAFE_INTEGER, logTerm: Number.MAX_SAFE_INTEGER });
  }
}

/** Sends vote grants at once instead of after the vote is persisted. */
class VoteBeforePersist extends Raft {
  protected override send(p: Partial<Message> & { type: MessageType; to: NodeId }): void {
    super.send(p);
    if (p.type === MessageType.VoteResp && this.msgsAfterAppend.length > 0) {
      const m = this.msgsAfterAppend[this.msgsAfterAppend.length - 1];
      // (the candidate's own vote to itself is stepped internally: leave it where it is)
      if (m.type === MessageType.VoteResp && m.to !== this.id) this.msgs.push(this.msgsAfterAppend.pop() as Message);
    }
  }
}

/** Sends append acknowledgements at once instead of after the entries are persisted. */
class AckBeforePersist extends Raft {
  protected override send(p: Partial<Message> & { type: MessageType; to: NodeId }): void {
    super.send(p);
    const m = this.msgsAfterAppend[this.msgsAfterAppend.length - 1];
    if (p.type === MessageType.AppResp && m && m.type === MessageType.AppResp && m.to !== this.id && !m.reject) {
      this.msgs.push(this.msgsAfterAppend.pop() as Message);
    }
  }
}

/** A follower acknowledges a snapshot up to its index without installing it. */
class AckSnapshotWithoutInstall extends Raft {
  protected override handleSnapshot(m: Message): void {
    this.send({ type: MessageType.AppResp, to: m.from, index: m.snapshot?.meta.index ?? 0 });
  }
}

const SAFETY = ['election safety', 'leader elected by a quorum', 'log matching', 'leader completeness', 'committed entry could be lost', 'commit of an earlier term', 'one committed entry per index', 'state machine safety', 'linearizability', 'leader append-only', 'apply only committed'];

type Variant = { name: string; impl: typeof Raft; expect: string[]; options?: Omit<SimOptions, 'seed' | 'impl'>; maxSeeds?: number };

const variants: Variant[] = [
  { name: 'follower skips the previous-entry term check', impl: NoPrevTermCheck, expect: SAFETY },
  { name: 'candidate counts its own vote twice', impl: DoubleSelfVote, expect: SAFETY },
  {
    name: 'leader commits an earlier-term entry by counting replicas',
    impl: CommitOldTerm,
    expect: SAFETY,
    // Figure 8 of the Raft paper: 3 nodes, one entry per MsgApp, the leader-churn profile. The
    // own-term rule (checked after every step) catches it at the bad commit itself, as the commit
    // check does when the entry could still be lost, without waiting for a later leader to
    // overwrite it, which once needed up to 1,500 seeds.
    options: { nodes: 3, profile: 'leader-churn', tunables: { maxSizePerMsg: 64 } },
  },
  { name: 'vote granted without the log up-to-date check', impl: VoteWithoutLogCheck, expect: SAFETY },
  { name: 'vote sent before it is persisted', impl: VoteBeforePersist, expect: ['vote durable before granted'] },
  { name: 'append acknowledged before it is persisted', impl: AckBeforePersist, expect: ['acknowledged before persisted'] },
  // Caught as an acknowledgement of entries the follower's disk does not have; were that check
  // absent, the core's own assertion (commit beyond its log) would trip next.
  { name: 'snapshot acknowledged without being installed', impl: AckSnapshotWithoutInstall, expect: ['acknowledged before persisted', ...SAFETY, 'core or host threw'] },
];

for (const v of variants) {
  t.test(v.name, async (t) => {
    const max = v.maxSeeds ?? 500;
    const steps = v.options?.steps ?? 2000;
    let found: SimResult | undefined;
    let tried = 0;
    for (let seed = 1; seed <= max && !found; seed++) {
      tried++;
      const r = runSeed({ ...v.options, seed, steps, impl: v.impl });
      if (!r.ok) found = r;
    }
    t.ok(found, `a violation within ${max} seeds`);
    if (!found?.violation) return;
    t.comment(`seed ${found.seed} (${tried} tried): ${found.violation.invariant}: ${found.violation.detail.split('\n')[0]}`);
    t.ok(v.expect.includes(found.violation.invariant), `reported as one of: ${v.expect.join(', ')} (got ${found.violation.invariant})`);
    if (found.violation.invariant === 'core or host threw') t.match(found.violation.detail, /RaftInvariantError/, 'the core itself detected corruption');
    // The same seed with the real core is clean: the bug, not the seed, broke it.
    t.ok(runSeed({ ...v.options, seed: found.seed, steps }).ok, `seed ${found.seed} passes with the real core`);
    // And the report replays exactly.
    const again = runSeed({ ...v.options, seed: found.seed, steps, impl: v.impl });
    t.same(again.violation, found.violation, 'the failing seed replays to the same violation');
    t.same(again.schedule, found.schedule, 'with the same fault schedule');
  });
}

t.test('a host that serves reads from local state (no ReadIndex) is caught by the linearizability check', async (t) => {
  let found: SimResult | undefined;
  for (let seed = 1; seed <= 500 && !found; seed++) {
    const r = runSeed({ seed, steps: 2000, reads: 'local' });
    if (!r.ok) found = r;
  }
  t.ok(found, 'a violation within 500 seeds');
  if (!found?.violation) return;
  t.comment(`seed ${found.seed}: ${found.violation.invariant}: ${found.violation.detail.split('\n').slice(0, 3).join(' / ')}`);
  t.equal(found.violation.invariant, 'linearizability');
  t.match(found.violation.detail, /no linearization/);
  t.ok(runSeed({ seed: found.seed, steps: 2000 }).ok, 'the same seed with ReadIndex reads is clean');
});
