// Raft's safety properties (Raft paper, Figure 3, plus durability rules), checked incrementally as
// the simulation runs so that the first step that breaks one is the step that is reported.
//
// Every node's log is mirrored as a "shadow": the entries it has handed out in Readys (durable or
// about to be), each with a hash chain over its prefix. Equal chain at (index, term) means equal
// logs up to there, which turns Log Matching, Leader Completeness and "one committed entry per
// index" into number comparisons.

import { MessageType, type Entry, type HardState, type Message, type NodeId, type Snapshot } from '../types.js';
import { hashBytes, mix } from './hash.js';

export class Violation extends Error {
  constructor(
    readonly invariant: string,
    readonly detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = 'Violation';
  }
}

interface Shadow {
  snapIndex: number;
  snapTerm: number;
  snapChain: number;
  terms: number[]; // terms[i] is the entry at snapIndex + 1 + i
  chains: number[];
  /** The leader term in which this node has already handed out an entry of that term. */
  leaderTermWithEntries: number;
  /** Highest commit index whose entries have been folded into the canonical committed chain. */
  commitRecorded: number;
}

const KEY = 2 ** 20; // (index, term) -> one number; terms stay far below 2^20 in a simulation

function entryChain(prev: number, e: Entry): number {
  return mix(prev, e.index, e.term, e.type, hashBytes(e.data));
}

export class InvariantChecker {
  private shadows = new Map<NodeId, Shadow>();
  /** Election Safety: term -> the one leader of that term. */
  private leaders = new Map<number, NodeId>();
  /** Log Matching: (index, term) -> prefix chain, and who first had it. */
  private chainAt = new Map<number, { chain: number; node: NodeId }>();
  /** Committed entries: index -> prefix chain (one entry per index, ever). */
  private committed = new Map<number, { chain: number; node: NodeId }>();
  /** Highest committed index known per term in which the commit was observed (an upper bound of the term it happened in). */
  private commitByTerm = new Map<number, number>();
  /** State Machine Safety: index -> the state machine's hash after applying it. */
  private appliedAt = new Map<number, { chain: number; node: NodeId }>();
  /** Durable hard states: last persisted per node, and every (node, term) -> vote ever persisted or granted. */
  private durable = new Map<NodeId, HardState>();
  private votes = new Map<string, NodeId>();
  private lastApplied = new Map<NodeId, number>();

  /** How many individual checks ran (reported, and proves the checker is wired in). */
  checks = 0;
  /** The highest index any node has reported committed. */
  maxCommitted = 0;

  constructor(bootstrapped: NodeId[]) {
    for (const id of bootstrapped) this.addNode(id);
  }

  addNode(id: NodeId): void {
    this.shadows.set(id, { snapIndex: 0, snapTerm: 0, snapChain: 0, terms: [], chains: [], leaderTermWithEntries: 0, commitRecorded: 0 });
    this.lastApplied.set(id, 0);
  }

  private shadow(id: NodeId): Shadow {
    const s = this.shadows.get(id);
    if (!s) throw new Error(`invariants: unknown node ${id}`);
    return s;
  }

  private lastIndex(s: Shadow): number {
    return s.snapIndex + s.terms.length;
  }

  private chainOf(s: Shadow, i: number): number | undefined {
    if (i === s.snapIndex) return s.snapChain;
    if (i < s.snapIndex || i > this.lastIndex(s)) return undefined;
    return s.chains[i - s.snapIndex - 1];
  }

  private registerChain(node: NodeId, index: number, term: number, chain: number): void {
    this.checks++;
    const k = index * KEY + term;
    const seen = this.chainAt.get(k);
    if (seen === undefined) this.chainAt.set(k, { chain, node });
    else if (seen.chain !== chain) {
      throw new Violation(
        'log matching',
        `nodes ${seen.node} and ${node} both hold an entry at index ${index} term ${term}, but their logs differ at or before it`,
      );
    }
  }

  /** Election Safety: at most one leader per term, ever. */
  leaderSeen(node: NodeId, term: number, how: string): void {
    this.checks++;
    const l = this.leaders.get(term);
    if (l === undefined) this.leaders.set(term, node);
    else if (l !== node) throw new Violation('election safety', `nodes ${l} and ${node} were both leader in term ${term} (${how})`);
  }

  /**
   * A Ready was taken from `node`; `leaderTerm` is the term it leads in, or 0 if it is not leader.
   * Checks Leader Append-Only and Leader Completeness and extends the shadow log.
   */
  onReady(node: NodeId, leaderTerm: number, rd: { snapshot?: Snapshot; entries: Entry[]; hardState?: HardState }): void {
    const s = this.shadow(node);
    const isLeaderWithEntries = leaderTerm > 0 && s.leaderTermWithEntries === leaderTerm;
    if (rd.snapshot && rd.snapshot.meta.index > 0) {
      if (isLeaderWithEntries) {
        throw new Violation('leader append-only', `node ${node}, leader of term ${leaderTerm}, replaced its log by a snapshot at index ${rd.snapshot.meta.index}`);
      }
      const m = rd.snapshot.meta;
      const known = this.chainAt.get(m.index * KEY + m.term);
      s.snapIndex = m.index;
      s.snapTerm = m.term;
      // A snapshot's last entry was in some node's log (the leader's) before it was compacted.
      s.snapChain = known ? known.chain : mix(0, m.index, m.term, 0x5a);
      s.terms = [];
      s.chains = [];
      s.commitRecorded = Math.max(s.commitRecorded, m.index);
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      const last = this.lastIndex(s);
      if (first <= last && isLeaderWithEntries) {
        throw new Violation(
          'leader append-only',
          `node ${node}, leader of term ${leaderTerm}, overwrote its log from index ${first} (its log ended at ${last})`,
        );
      }
      if (first > last + 1) {
        throw new Violation('log continuity', `node ${node} got entries from index ${first} but its log ends at ${last}`);
      }
      if (first <= s.snapIndex) {
        throw new Violation('log continuity', `node ${node} got entries from index ${first}, inside its snapshot at ${s.snapIndex}`);
      }
      s.terms.length = first - s.snapIndex - 1;
      s.chains.length = first - s.snapIndex - 1;
      let prev = this.chainOf(s, first - 1) as number;
      for (let j = 0; j < rd.entries.length; j++) {
        const e = rd.entries[j];
        if (e.index !== first + j) throw new Violation('log continuity', `node ${node}: Ready entries are not contiguous at ${e.index}`);
        const prevTerm = first + j - 1 === s.snapIndex ? s.snapTerm : s.terms[first + j - 2 - s.snapIndex];
        if (e.term < prevTerm) {
          throw new Violation('log terms monotonic', `node ${node}: entry ${e.index} has term ${e.term} after an entry of term ${prevTerm}`);
        }
        prev = entryChain(prev, e);
        s.terms.push(e.term);
        s.chains.push(prev);
        this.registerChain(node, e.index, e.term, prev);
      }
      if (leaderTerm > 0 && rd.entries.some((e) => e.term === leaderTerm) && s.leaderTermWithEntries !== leaderTerm) {
        s.leaderTermWithEntries = leaderTerm;
        this.leaderCompleteness(node, leaderTerm, s);
      }
    }
    if (rd.hardState) this.onCommit(node, rd.hardState, s);
  }

  /** Leader Completeness: every entry committed in an earlier term is in the new leader's log. */
  private leaderCompleteness(node: NodeId, term: number, s: Shadow): void {
    let k = 0;
    for (const [t, idx] of this.commitByTerm) if (t < term && idx > k) k = idx;
    if (k === 0) return;
    this.checks++;
    const want = this.committed.get(k);
    if (k > this.lastIndex(s)) {
      throw new Violation('leader completeness', `node ${node} became leader of term ${term} with a log ending at ${this.lastIndex(s)}, missing committed entry ${k}`);
    }
    if (k >= s.snapIndex) {
      const have = this.chainOf(s, k);
      if (want && have !== want.chain) {
        throw new Violation('leader completeness', `node ${node} became leader of term ${term} with a log that differs from the committed one at or before index ${k}`);
      }
    } else {
      const atSnap = this.committed.get(s.snapIndex);
      if (atSnap && atSnap.chain !== s.snapChain) {
        throw new Violation('leader completeness', `node ${node} became leader of term ${term} from a snapshot at ${s.snapIndex} that is not the committed prefix`);
      }
    }
  }

  private onCommit(node: NodeId, hs: HardState, s: Shadow): void {
    this.checks++;
    if (hs.commit > this.lastIndex(s)) {
      throw new Violation('commit within log', `node ${node} has commit index ${hs.commit} beyond its last entry ${this.lastIndex(s)}`);
    }
    if (hs.commit <= s.commitRecorded) return;
    for (let i = Math.max(s.commitRecorded + 1, s.snapIndex + 1); i <= hs.commit; i++) {
      const chain = this.chainOf(s, i) as number;
      const c = this.committed.get(i);
      if (c === undefined) this.committed.set(i, { chain, node });
      else if (c.chain !== chain) {
        throw new Violation('one committed entry per index', `nodes ${c.node} and ${node} committed different entries (or prefixes) at index ${i}`);
      }
    }
    s.commitRecorded = hs.commit;
    if (hs.commit > this.maxCommitted) this.maxCommitted = hs.commit;
    if ((this.commitByTerm.get(hs.term) ?? 0) < hs.commit) this.commitByTerm.set(hs.term, hs.commit);
  }

  /** The hard state a node was bootstrapped with (already on its disk). */
  setDurable(node: NodeId, hs: HardState): void {
    this.durable.set(node, { ...hs });
  }

  /** A hard state reached stable storage. */
  onPersist(node: NodeId, hs: HardState): void {
    this.checks++;
    const prev = this.durable.get(node);
    if (prev) {
      if (hs.term < prev.term) throw new Violation('durable term monotonic', `node ${node} persisted term ${hs.term} after term ${prev.term}`);
      if (hs.commit < prev.commit) throw new Violation('durable commit monotonic', `node ${node} persisted commit ${hs.commit} after ${prev.commit}`);
    }
    this.durable.set(node, { ...hs });
    if (hs.vote !== 0) this.recordVote(node, hs.term, hs.vote, 'persisted');
  }

  private recordVote(node: NodeId, term: number, candidate: NodeId, how: string): void {
    const k = `${node}:${term}`;
    const v = this.votes.get(k);
    if (v === undefined) this.votes.set(k, candidate);
    else if (v !== candidate) {
      throw new Violation('one vote per term', `node ${node} voted for ${v} and then for ${candidate} in term ${term} (${how})`);
    }
  }

  /** A message leaves `node` (checked against what its stable storage holds at this moment). */
  onSend(node: NodeId, m: Message): void {
    switch (m.type) {
      case MessageType.App:
      case MessageType.Heartbeat:
      case MessageType.Snap:
        this.leaderSeen(node, m.term, `it sent ${MessageType[m.type]} in that term`);
        break;
      case MessageType.VoteResp: {
        if (m.reject) break;
        this.checks++;
        const hs = this.durable.get(node);
        // Granting is safe only once the vote (or a later term) is on disk.
        if (!hs || hs.term < m.term || (hs.term === m.term && hs.vote !== m.to)) {
          throw new Violation(
            'vote durable before granted',
            `node ${node} granted its term-${m.term} vote to ${m.to} while its stable hard state is ${hs ? `term ${hs.term} vote ${hs.vote}` : 'empty'}`,
          );
        }
        this.recordVote(node, m.term, m.to, 'granted');
        break;
      }
    }
  }

  /**
   * A ReadIndex answer: reading at `index` is linearizable only if it covers every entry that was
   * committed (anywhere) before the read was asked, when the highest committed index was `before`.
   */
  onReadState(node: NodeId, index: number, before: number): void {
    this.checks++;
    if (index < before) {
      throw new Violation('read index covers earlier commits', `node ${node} was told to serve a read at index ${index}, but index ${before} had been committed before the read was asked`);
    }
  }

  /** The state machine of `node` applied `index` and now hashes to `smChain`. */
  onApply(node: NodeId, index: number, smChain: number): void {
    this.checks++;
    const last = this.lastApplied.get(node) ?? 0;
    if (index !== last + 1) throw new Violation('apply in order', `node ${node} applied index ${index} after ${last}`);
    this.lastApplied.set(node, index);
    const s = this.shadow(node);
    const c = this.committed.get(index);
    if (index > s.commitRecorded && !c) {
      throw new Violation('apply only committed', `node ${node} applied index ${index}, which no node has reported committed`);
    }
    const a = this.appliedAt.get(index);
    if (a === undefined) this.appliedAt.set(index, { chain: smChain, node });
    else if (a.chain !== smChain) {
      throw new Violation('state machine safety', `nodes ${a.node} and ${node} applied different entries (or histories) at index ${index}`);
    }
  }

  /** The state machine of `node` was replaced by a snapshot at `index` hashing to `smChain`. */
  onApplySnapshot(node: NodeId, index: number, smChain: number): void {
    this.checks++;
    const last = this.lastApplied.get(node) ?? 0;
    if (index < last) throw new Violation('apply in order', `node ${node} rolled its state machine back from ${last} to a snapshot at ${index}`);
    this.lastApplied.set(node, index);
    const a = this.appliedAt.get(index);
    if (a === undefined) this.appliedAt.set(index, { chain: smChain, node });
    else if (a.chain !== smChain) {
      throw new Violation('state machine safety', `node ${node} installed a snapshot at ${index} that differs from what node ${a.node} applied there`);
    }
  }

  /**
   * The node restarted from stable storage: its shadow log becomes exactly what was persisted
   * (entries after the compaction point `base`) and its state machine restarts from the stored
   * snapshot at `snapIndex`.
   */
  onRestart(node: NodeId, base: { index: number; term: number }, entries: Entry[], snapIndex: number): void {
    const s = this.shadow(node);
    const known = this.chainAt.get(base.index * KEY + base.term);
    s.snapIndex = base.index;
    s.snapTerm = base.term;
    s.snapChain = base.index === 0 ? 0 : known ? known.chain : mix(0, base.index, base.term, 0x5a);
    s.terms = [];
    s.chains = [];
    s.leaderTermWithEntries = 0;
    let prev = s.snapChain;
    for (const e of entries) {
      prev = entryChain(prev, e);
      s.terms.push(e.term);
      s.chains.push(prev);
    }
    this.lastApplied.set(node, snapIndex);
  }
}
