// The planted bugs of the mutation harness: each is the real core with one rule broken the way a
// careless change would break it. A mutant is a list of text patches to the core's TypeScript
// sources; the harness applies them to a copy (raft/mutants/build.ts), never to the code that
// ships, so the production core cannot see them. Every `find` must occur exactly once in its
// file: a refactor that moves the code makes the harness (and mutants.test.ts) say which mutant
// to update instead of silently testing nothing.
//
// `rule` names the rule of the core the mutant breaks (raft/core/README.md and the Raft paper);
// every rule has at least one mutant. Keep the ids stable: the README's table refers to them.

export interface Patch {
  /** Path from the repository root, e.g. 'raft/core/raft.ts'. */
  file: string;
  find: string;
  replace: string;
}

export interface Mutant {
  id: string;
  rule: string;
  /** The bug, in one line. */
  what: string;
  patches: Patch[];
}

const RAFT = 'raft/core/raft.ts';
const LOG = 'raft/core/log.ts';
const RAWNODE = 'raft/core/rawnode.ts';
const QUORUM = 'raft/core/quorum.ts';
const TRACKER = 'raft/core/tracker.ts';
const PROGRESS = 'raft/core/progress.ts';
const CONFCHANGE = 'raft/core/confchange.ts';

export const MUTANTS: Mutant[] = [
  // ---- elections ----------------------------------------------------------------------------
  {
    id: 'vote-stale-resp',
    rule: 'election: only votes of the current term count',
    what: 'a candidate counts a vote response from an earlier term',
    patches: [{ file: RAFT, find: '} else if (m.term < this.term) {\n      if (m.type === MessageType.App', replace: '} else if (m.term < this.term && m.type !== MessageType.VoteResp) {\n      if (m.type === MessageType.App' }],
  },
  {
    id: 'vote-twice',
    rule: 'election: one vote per term',
    what: 'a node without a leader grants its vote again to another candidate of the same term',
    patches: [{ file: RAFT, find: '(this.vote === NONE && this.lead === NONE) ||', replace: '(this.lead === NONE) ||' }],
  },
  {
    id: 'vote-self-twice',
    rule: 'election: one vote per term',
    what: 'a candidate counts its own vote twice (as if another voter had granted it)',
    patches: [
      {
        file: RAFT,
        find: "this.trk.recordVote(from, granted);\n    return this.trk.tallyVotes().result;",
        replace:
          "this.trk.recordVote(from, granted);\n    if (from === this.id && granted) { const o = this.trk.voterIds().find((v) => v !== this.id && !this.trk.votes.has(v)); if (o !== undefined) this.trk.recordVote(o, true); }\n    return this.trk.tallyVotes().result;",
      },
    ],
  },
  {
    id: 'uptodate-index-off-by-one',
    rule: 'election: vote only for a log at least as up to date (§5.4.1)',
    what: 'a candidate one entry short of the voter\'s last entry (same term) still gets the vote',
    patches: [{ file: LOG, find: 'lastIndex >= this.lastIndex())', replace: 'lastIndex >= this.lastIndex() - 1)' }],
  },
  {
    id: 'uptodate-index-only',
    rule: 'election: vote only for a log at least as up to date (§5.4.1)',
    what: 'the up-to-date check compares last indexes only, not last terms',
    patches: [{ file: LOG, find: 'return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());', replace: 'return ourTerm >= 0 && lastIndex >= this.lastIndex();' }],
  },
  {
    id: 'quorum-vote-even',
    rule: 'quorum: a majority is more than half',
    what: 'an election in a config with an even number of voters is won with half of them',
    patches: [{ file: QUORUM, find: 'const q = Math.floor(voters.size / 2) + 1;', replace: 'const q = Math.ceil(voters.size / 2);' }],
  },
  {
    id: 'quorum-commit-even',
    rule: 'quorum: a majority is more than half',
    what: 'in a config with an even number of voters an index acknowledged by half of them commits',
    patches: [{ file: QUORUM, find: 'return m[Math.floor(voters.size / 2)];', replace: 'return m[Math.floor((voters.size - 1) / 2)];' }],
  },
  {
    id: 'prevote-moves-term',
    rule: 'pre-vote: a pre-vote request changes no term',
    what: 'a node answering a pre-vote request moves to the requested term',
    patches: [{ file: RAFT, find: 'if (!pre) this.becomeFollower(m.term, NONE);', replace: 'this.becomeFollower(m.term, NONE);' }],
  },
  {
    id: 'precandidate-moves-term',
    rule: 'pre-vote: a pre-candidate does not increment its term',
    what: 'a pre-candidate increments its term (so a partitioned node inflates it)',
    patches: [{ file: RAFT, find: "this.trk.resetVotes();\n    this.lead = NONE;\n    this.state = Role.PreCandidate;", replace: "this.trk.resetVotes();\n    this.term++;\n    this.lead = NONE;\n    this.state = Role.PreCandidate;" }],
  },
  {
    id: 'lease-ignored',
    rule: 'check-quorum: a follower with a live leader ignores higher-term (pre-)votes',
    what: 'the leader lease is not honoured: a node with a live leader answers (pre-)votes',
    patches: [{ file: RAFT, find: 'if (inLease && !isTransfer(m.context)) {', replace: 'if (inLease && !isTransfer(m.context) && false) {' }],
  },
  {
    id: 'follower-timer-not-reset',
    rule: 'timers: hearing from the leader resets the election timer',
    what: 'a follower does not reset its election timer on MsgApp/heartbeat',
    patches: [
      { file: RAFT, find: 'case MessageType.App:\n        this.electionElapsed = 0;\n        this.lead = m.from;', replace: 'case MessageType.App:\n        this.lead = m.from;' },
      { file: RAFT, find: 'case MessageType.Heartbeat:\n        this.electionElapsed = 0;\n        this.lead = m.from;', replace: 'case MessageType.Heartbeat:\n        this.lead = m.from;' },
    ],
  },
  {
    id: 'stale-term-append',
    rule: 'terms: messages of an older term are refused',
    what: 'a follower accepts MsgApp from a leader of an older term',
    patches: [{ file: RAFT, find: '} else if (m.term < this.term) {\n      if (m.type === MessageType.App', replace: '} else if (m.term < this.term && m.type !== MessageType.App) {\n      if (m.type === MessageType.App' }],
  },
  {
    id: 'stale-leader-unanswered',
    rule: 'terms: a leader of an older term is told the newer term',
    what: 'as etcd, a stale MsgApp/heartbeat is answered only under pre-vote or check-quorum (raft/sim FINDINGS #4b)',
    patches: [{ file: RAFT, find: '      if (m.type === MessageType.App || m.type === MessageType.Heartbeat) {\n        // A leader of an older term', replace: '      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === MessageType.App || m.type === MessageType.Heartbeat)) {\n        // A leader of an older term' }],
  },
  {
    id: 'higher-term-ignored-by-leader',
    rule: 'terms: a higher term in any message makes a leader step down',
    what: 'a leader ignores the higher term carried by answers (AppResp/HeartbeatResp)',
    patches: [{ file: RAFT, find: '} else {\n        this.becomeFollower(m.term, NONE);\n      }', replace: '} else if (!(this.state === Role.Leader && (m.type === MessageType.AppResp || m.type === MessageType.HeartbeatResp))) {\n        this.becomeFollower(m.term, NONE);\n      }' }],
  },

  // ---- durability ---------------------------------------------------------------------------
  {
    id: 'vote-before-persist',
    rule: 'durability: a vote leaves only once it is persisted',
    what: 'vote grants go out with the Ready\'s messages instead of after the fsync',
    patches: [{ file: RAFT, find: 'if (t === MessageType.AppResp || t === MessageType.VoteResp || t === MessageType.PreVoteResp) {', replace: 'if (t === MessageType.AppResp || ((t === MessageType.VoteResp || t === MessageType.PreVoteResp) && m.to === this.id)) {' }],
  },
  {
    id: 'ack-before-persist',
    rule: 'durability: an append ack leaves only once the entries are persisted',
    what: 'append acks go out with the Ready\'s messages instead of after the fsync',
    patches: [{ file: RAFT, find: 'if (t === MessageType.AppResp || t === MessageType.VoteResp || t === MessageType.PreVoteResp) {', replace: 'if ((t === MessageType.AppResp && (m.to === this.id || m.reject)) || t === MessageType.VoteResp || t === MessageType.PreVoteResp) {' }],
  },
  {
    id: 'self-ack-before-persist',
    rule: 'durability: the leader counts its own entries only once they are persisted',
    what: 'the leader counts its own append (and a candidate its own vote) as soon as it is handed out',
    patches: [{ file: RAWNODE, find: 'for (const m of r.msgsAfterAppend) (m.to === r.id ? selfSteps : rd.messagesAfterPersist).push(m);', replace: 'const early: Message[] = [];\n    for (const m of r.msgsAfterAppend) (m.to === r.id ? early : rd.messagesAfterPersist).push(m);\n    r.msgsAfterAppend = [];\n    for (const m of early) r.step(m);' }],
  },
  {
    id: 'candidate-self-vote-early',
    rule: 'durability: a candidate counts its own vote only once it is persisted',
    what: 'a candidate records its own vote at once, before its term and vote are on disk',
    patches: [{ file: RAFT, find: 'this.send({ type: respType, to: id, term });\n        continue;', replace: 'this.trk.recordVote(id, true);\n        continue;' }],
  },
  {
    id: 'mustsync-vote',
    rule: 'durability: a changed vote is fsynced (mustSync)',
    what: 'mustSync ignores a vote change within the same term',
    patches: [{ file: RAWNODE, find: 'rd.mustSync = hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote;', replace: 'rd.mustSync = hs.term !== this.prevHard.term;' }],
  },
  {
    id: 'mustsync-term',
    rule: 'durability: a changed term or vote is fsynced (mustSync)',
    what: 'mustSync is false for every hard-state-only Ready',
    patches: [{ file: RAWNODE, find: 'rd.mustSync = hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote;', replace: 'rd.mustSync = false;' }],
  },
  {
    id: 'stable-to-ignores-term',
    rule: 'durability: advance() marks stable only what the Ready persisted (stableTo)',
    what: 'advance() marks entries stable by index even if they were replaced after the Ready',
    patches: [{ file: LOG, find: 'if (gt === undefined || gt !== t || i < this.offset) return;', replace: 'if (gt === undefined || i < this.offset) return;' }],
  },
  {
    id: 'stale-ack-kept',
    rule: 'durability: no ack for entries the persisted log no longer holds',
    what: 'an unsent ack survives a conflicting append that replaces the entries it acknowledges',
    patches: [{ file: RAFT, find: 'this.raftLog.onTruncate = (i) => this.dropStaleAcks(i);', replace: 'this.raftLog.onTruncate = () => {};' }],
  },

  // ---- the follower's append path -------------------------------------------------------------
  {
    id: 'append-no-prev-check',
    rule: 'append: entries are appended only after a matching (prevIndex, prevTerm)',
    what: 'a follower appends after prevIndex without checking prevTerm',
    patches: [{ file: LOG, find: 'if (!this.matchTerm(index, logTerm)) return undefined;', replace: 'if (index > this.lastIndex()) return undefined;' }],
  },
  {
    id: 'append-keeps-conflicts',
    rule: 'append: a conflicting entry and everything after it are replaced',
    what: 'a follower keeps its own entry where the leader\'s differs (compares indexes, not terms)',
    patches: [{ file: LOG, find: 'for (const e of ents) if (!this.matchTerm(e.index, e.term)) return e.index;', replace: 'for (const e of ents) if (e.index > this.lastIndex()) return e.index;' }],
  },
  {
    id: 'append-truncates-old',
    rule: 'append: an append whose entries are all present changes nothing',
    what: 'a follower truncates its log after every append, even a late one it already holds',
    patches: [{ file: LOG, find: 'const ci = this.findConflict(ents);', replace: 'const ci = ents.length > 0 ? ents[0].index : 0;' }],
  },
  {
    id: 'append-commit-past-sent',
    rule: 'commit: a follower commits at most the last entry of the append it was sent',
    what: 'a follower commits up to the leader\'s commit even beyond the entries of this append (its stale tail)',
    patches: [{ file: LOG, find: 'this.commitTo(Math.min(commit, lastNew));', replace: 'this.commitTo(Math.min(commit, this.lastIndex()));' }],
  },
  {
    id: 'heartbeat-commit-past-match',
    rule: 'commit: a heartbeat carries min(match, commit)',
    what: 'the leader\'s heartbeat carries its commit index even to a follower that may hold a divergent log',
    patches: [{ file: RAFT, find: 'const commit = Math.min(pr.match, this.raftLog.committed);', replace: 'const commit = this.raftLog.committed;' }],
  },

  // ---- the leader's commit rule ---------------------------------------------------------------
  {
    id: 'commit-old-term',
    rule: 'commit: a leader commits only entries of its own term by counting (§5.4.2)',
    what: 'the leader commits an earlier-term entry once a quorum holds it',
    patches: [{ file: LOG, find: 'if (maxIndex > this.committed && this.termOrZero(maxIndex) === term) {', replace: 'if (maxIndex > this.committed && term > 0) {' }],
  },
  {
    id: 'learner-counts-for-commit',
    rule: 'learners: never part of a quorum',
    what: 'learners\' acknowledgements count towards the commit quorum',
    patches: [{ file: TRACKER, find: 'return jointCommitted(this.config, (id) => this.progress.get(id)?.match);', replace: 'return jointCommitted({ incoming: new Set([...this.config.incoming, ...this.config.learners]), outgoing: this.config.outgoing }, (id) => this.progress.get(id)?.match);' }],
  },
  {
    id: 'learner-votes-count',
    rule: 'learners: never part of a quorum',
    what: 'learners are asked for votes and their grants count',
    patches: [
      { file: TRACKER, find: 'return sorted(new Set([...this.config.incoming, ...this.config.outgoing]));', replace: 'return sorted(new Set([...this.config.incoming, ...this.config.outgoing, ...this.config.learners]));' },
      { file: TRACKER, find: 'return { granted, rejected, result: jointVote(this.config, this.votes) };', replace: 'return { granted, rejected, result: jointVote({ incoming: new Set([...this.config.incoming, ...this.config.learners]), outgoing: this.config.outgoing }, this.votes) };' },
    ],
  },
  {
    id: 'joint-commit-incoming-only',
    rule: 'joint consensus: decisions need both majorities',
    what: 'in a joint config, commit needs only the incoming majority',
    patches: [{ file: QUORUM, find: 'return Math.min(majorityCommitted(v.incoming, matchOf), majorityCommitted(v.outgoing, matchOf));', replace: 'return majorityCommitted(v.incoming, matchOf);' }],
  },
  {
    id: 'joint-vote-incoming-only',
    rule: 'joint consensus: decisions need both majorities',
    what: 'in a joint config, an election needs only the incoming majority',
    patches: [{ file: QUORUM, find: 'const b = majorityVote(v.outgoing, votes);', replace: 'const b = a;' }],
  },

  // ---- snapshots ------------------------------------------------------------------------------
  {
    id: 'snapshot-stale-installed',
    rule: 'snapshots: one not newer than the commit index is not installed',
    what: 'a follower installs a snapshot older than its commit index (a late MsgSnap rolls it back)',
    patches: [{ file: RAFT, find: 'if (s.meta.index <= this.raftLog.committed) return false;', replace: 'if (s.meta.index <= this.raftLog.committed && this.raftLog.matchTerm(s.meta.index, s.meta.term)) return false;' }],
  },
  {
    id: 'snapshot-ff-commits-tail',
    rule: 'snapshots: a snapshot the log already holds commits only up to its index',
    what: 'a follower that holds the snapshot\'s entry commits its whole log (a stale tail too)',
    patches: [{ file: RAFT, find: 'this.raftLog.commitTo(s.meta.index);\n      return false;', replace: 'this.raftLog.commitTo(this.raftLog.lastIndex());\n      return false;' }],
  },
  {
    id: 'snapshot-ff-ignores-term',
    rule: 'snapshots: the fast-forward needs the entry at the snapshot index with the snapshot\'s term',
    what: 'a follower with any entry at the snapshot index fast-forwards its commit instead of installing',
    patches: [{ file: RAFT, find: 'if (this.raftLog.matchTerm(s.meta.index, s.meta.term)) {', replace: 'if (s.meta.index <= this.raftLog.lastIndex()) {' }],
  },
  {
    id: 'snapshot-not-deferred',
    rule: 'snapshots: none is installed while handed-out committed entries are being applied',
    what: 'a snapshot is restored between ready() and advance() (raft/sim FINDINGS #2)',
    patches: [{ file: RAFT, find: 'if (this.raftLog.applying > this.raftLog.applied) {', replace: 'if (this.raftLog.applying > this.raftLog.applied && false) {' }],
  },
  {
    id: 'snapshot-acked-not-installed',
    rule: 'snapshots: a snapshot is acknowledged only once installed',
    what: 'a follower acknowledges a snapshot up to its index without installing it',
    patches: [{ file: RAFT, find: "invariant(m.snapshot, `MsgSnap from ${m.from} carries no snapshot`);\n    const s = m.snapshot;", replace: "invariant(m.snapshot, `MsgSnap from ${m.from} carries no snapshot`);\n    const s = m.snapshot;\n    if (s.meta.index > this.raftLog.lastIndex()) { this.send({ type: MessageType.AppResp, to: m.from, index: s.meta.index }); return; }" }],
  },
  {
    id: 'snapshot-conf-ignored',
    rule: 'snapshots: installing one adopts its configuration',
    what: 'a follower installing a snapshot keeps its old configuration',
    patches: [{ file: RAFT, find: '    this.switchToConfig(conf, progress);\n    return true;', replace: '    void conf; void progress;\n    return true;' }],
  },

  // ---- reads ----------------------------------------------------------------------------------
  {
    id: 'read-no-quorum-round',
    rule: 'reads: ReadIndex (safe) confirms leadership with a quorum round',
    what: 'the leader answers a safe ReadIndex from its commit index without the heartbeat round',
    patches: [{ file: RAFT, find: "if (this.cfg.readOnly === 'safe') {\n      if (!this.readOnly.addRequest", replace: "if (this.cfg.readOnly === 'never') {\n      if (!this.readOnly.addRequest" }],
  },
  {
    id: 'read-before-term-commit',
    rule: 'reads: a new leader answers reads only after committing an entry of its term (§6.4)',
    what: 'a new leader answers ReadIndex before an entry of its own term has committed',
    patches: [{ file: RAFT, find: 'if (!this.committedEntryInCurrentTerm()) {\n          this.pendingReadIndex.push(m);', replace: 'if (!this.committedEntryInCurrentTerm() && false) {\n          this.pendingReadIndex.push(m);' }],
  },
  {
    id: 'read-one-ack',
    rule: 'reads: ReadIndex needs acks from a quorum',
    what: 'one heartbeat ack besides the leader\'s own confirms a read',
    patches: [{ file: RAFT, find: "if (this.trk.voteResult(acks) === 'won') {", replace: "if (acks.size >= 2) {" }],
  },
  {
    id: 'lease-read-without-term-commit',
    rule: 'reads: lease reads, too, wait for the leader\'s first commit in its term',
    what: 'in lease mode a new leader answers reads before committing an entry of its term',
    patches: [{ file: RAFT, find: 'if (!this.committedEntryInCurrentTerm()) {\n          this.pendingReadIndex.push(m);', replace: "if (!this.committedEntryInCurrentTerm() && this.cfg.readOnly === 'safe') {\n          this.pendingReadIndex.push(m);" }],
  },

  {
    id: 'forwarded-read-dropped-here',
    rule: 'reads: every read ends in an answer or a drop report at the node that asked it',
    what: 'a node without a leader reports a read forwarded to it to its own host instead of the asker (raft/sim FINDINGS #4b)',
    patches: [{ file: RAFT, find: "this.rejectRead(m, 'no leader is known');", replace: "this.dropRead(m, 'no leader is known');" }],
  },
  {
    id: 'forwarded-read-kept-on-leader-change',
    rule: 'reads: every read ends in an answer or a drop report at the node that asked it',
    what: 'a follower keeps waiting for its forwarded reads when its leader changes (the old leader\'s answer would be ignored)',
    patches: [{ file: RAFT, find: "    this.failForwardedReads('the leader changed before it answered the forwarded read; retry');\n", replace: '' }],
  },

  // ---- check-quorum, transfer -------------------------------------------------------------------
  {
    id: 'checkquorum-never-steps-down',
    rule: 'check-quorum: a leader without an active quorum steps down',
    what: 'the leader never steps down on CheckQuorum',
    patches: [{ file: RAFT, find: 'if (!this.trk.quorumActive(this.id)) {', replace: 'if (!this.trk.quorumActive(this.id) && false) {' }],
  },
  {
    id: 'checkquorum-activity-sticks',
    rule: 'check-quorum: activity counts for one election timeout only',
    what: 'recentActive is never cleared, so a leader once heard from stays "active" for ever',
    patches: [{ file: RAFT, find: 'for (const [id, pr] of this.trk.progress) if (id !== this.id) pr.recentActive = false;', replace: '' }],
  },
  {
    id: 'transfer-never-aborts',
    rule: 'transfer: a transfer aborts after one election timeout',
    what: 'a leadership transfer to an unreachable node never aborts (the leader refuses proposals for ever)',
    patches: [{ file: RAFT, find: 'if (this.state === Role.Leader && this.leadTransferee !== NONE) {', replace: 'if (this.state === Role.Leader && this.leadTransferee !== NONE && false) {' }],
  },
  {
    id: 'transfer-timeoutnow-early',
    rule: 'transfer: MsgTimeoutNow only to a transferee whose log is up to date',
    what: 'the leader sends MsgTimeoutNow at once, before the transferee caught up',
    patches: [{ file: RAFT, find: 'if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(to);\n        else this.sendAppend(to);', replace: 'this.sendTimeoutNow(to);' }],
  },

  // ---- membership -----------------------------------------------------------------------------
  {
    id: 'conf-two-pending',
    rule: 'membership: one conf change at a time',
    what: 'a second conf change is accepted while one is not yet applied',
    patches: [{ file: RAFT, find: 'if (this.pendingConfIndex > this.raftLog.applied) {', replace: 'if (this.pendingConfIndex > this.raftLog.applied && false) {' }],
  },
  {
    id: 'conf-new-leader-unchecked',
    rule: 'membership: a new leader refuses conf changes until its log is applied',
    what: 'a new leader accepts a conf change while an earlier one may be unapplied in its log',
    patches: [{ file: RAFT, find: 'this.pendingConfIndex = this.raftLog.lastIndex();\n    const ok = this.appendEntry(', replace: 'this.pendingConfIndex = 0;\n    const ok = this.appendEntry(' }],
  },
  {
    id: 'autoleave-never',
    rule: 'joint consensus: an auto-leave joint config is left once applied',
    what: 'the leader never proposes leaving an auto-leave joint config',
    patches: [{ file: RAFT, find: 'if (this.state === Role.Leader && this.trk.config.autoLeave && this.raftLog.applied >= this.pendingConfIndex) {', replace: 'if (this.state === Role.Leader && this.trk.config.autoLeave && this.raftLog.applied >= this.pendingConfIndex && false) {' }],
  },
  {
    id: 'removed-id-reused',
    rule: 'membership: removed ids are never reused',
    what: 'a removed id may be added again',
    patches: [{ file: CONFCHANGE, find: 'if (c.removed.has(id)) {\n    throw new ConfChangeError(', replace: 'if (c.removed.has(id) && false) {\n    throw new ConfChangeError(' }],
  },
  {
    id: 'removed-leader-leaves-early',
    rule: 'membership: a removed leader steps down only once its log is committed',
    what: 'a leader removed by a conf change steps down at once (raft/sim FINDINGS #1)',
    patches: [{ file: RAFT, find: 'if (this.raftLog.committed < this.raftLog.lastIndex()) return false;\n    this.cfg.logger.warn(', replace: 'this.cfg.logger.warn(' }],
  },
  {
    id: 'nonvoter-never-campaigns',
    rule: 'membership: a non-voter holding entries the voters need may campaign to unblock them',
    what: 'only voters campaign, even when a removed node holds the only copy of needed entries',
    patches: [{ file: RAFT, find: 'if (this.promotable()) return true;\n    return (', replace: 'if (this.promotable()) return true;\n    return false && (' }],
  },
  {
    id: 'campaign-unapplied-conf',
    rule: 'membership: a node campaigns only once every committed conf change is applied (apply-time configuration)',
    what: 'a node campaigns in its applied configuration while committed conf changes are still unapplied (raft/sim FINDINGS #4)',
    patches: [{ file: RAFT, find: 'if (this.hasUnappliedConfChanges()) {', replace: 'if (this.hasUnappliedConfChanges() && false) {' }],
  },
  {
    id: 'leave-joint-drops-learners-next',
    rule: 'joint consensus: demoted voters become learners when the joint config is left',
    what: 'leaving a joint config forgets the voters that were to become learners',
    patches: [{ file: CONFCHANGE, find: 'for (const id of c.learnersNext) {\n    c.learners.add(id);', replace: 'for (const id of c.learnersNext) {\n    r.progress.delete(id);\n    continue;' }],
  },

  // ---- restart ---------------------------------------------------------------------------------
  {
    id: 'restart-commit-below-snapshot',
    rule: 'restart: the commit index is at least the snapshot\'s (a torn, unsynced write; FINDINGS #3)',
    what: 'a restart takes the stored commit index even when it is below the stored snapshot',
    patches: [{ file: RAFT, find: 'if (hs.commit > this.raftLog.committed) this.raftLog.committed = hs.commit;', replace: 'this.raftLog.committed = hs.commit;' }],
  },
  {
    id: 'restart-term-below-log',
    rule: 'restart: the term is at least the last term in the log (a torn, unsynced write)',
    what: 'a restart keeps a stored term older than the last entry\'s term',
    patches: [{ file: RAFT, find: 'if (lastTerm > this.term) {\n      this.term = lastTerm;', replace: 'if (lastTerm > this.term && false) {\n      this.term = lastTerm;' }],
  },
  {
    id: 'restart-applied-not-committed',
    rule: 'restart: whatever the host applied counts as committed',
    what: 'a restart with config.applied beyond the stored commit index leaves the commit index behind',
    patches: [{ file: RAFT, find: 'if (this.cfg.applied > this.raftLog.committed) this.raftLog.committed = this.cfg.applied;', replace: '' }],
  },

];
