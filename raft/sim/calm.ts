// Liveness after the faults, not only safety. Once the network is repaired, every crashed node
// restarted and the probe write committed, the cluster is healthy, and a healthy Raft must:
//  - settle: one leader, known by every member in its term, the joint config (if any) left;
//  - answer a linearizable read at every member;
//  - keep its term and leader while nothing is wrong (no elections in a healthy cluster);
//  - finish a leadership transfer to a voter (after catching it up) within a few timeouts;
//  - under pre-vote, let a follower cut off for several election timeouts rejoin without an
//    election (with check-quorum even when its log is as long as everyone's);
//  - under check-quorum, keep a leader that still has its quorum, and depose one that lost it
//    within two election timeouts.
// Each stage has a bound in election timeouts; missing it is a 'liveness' violation. A run does a
// random selection of the optional stages (drawn from the seed), so the CI sweep covers all.
import { Role, type ConfState, type NodeId } from '../types.js';
import { Violation } from './invariants.js';
import type { Prng } from './prng.js';

export interface CalmNode {
  id: NodeId;
  up: boolean;
  role: Role;
  term: number;
  lead: NodeId;
  conf: ConfState;
  tickMs: number;
  /**
   * Leader only: its configuration can no longer change (an entry of its term is committed and
   * every committed conf change applied). Until then a committed entry may still remove a member.
   */
  confFinal: boolean;
}

/** What the calm phase needs from the simulator. */
export interface CalmHost {
  now(): number;
  /** An election timeout (electionTick ticks) in virtual ms. */
  readonly electionMs: number;
  readonly electionTick: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Nodes not shut down for good. */
  nodes(): CalmNode[];
  /** When the last message sent during the faults (some are held for election timeouts) is delivered. */
  quietAt(): number;
  isolate(id: NodeId, why: string): void;
  reconnect(id: NodeId): void;
  /** Splits the nodes into two sides that cannot talk; heal() undoes it. */
  split(a: NodeId[], b: NodeId[]): void;
  heal(): void;
  /** The highest index committed anywhere so far. */
  maxCommitted(): number;
  /** A fresh write proposed at node `id` (its outcome does not matter here). */
  propose(id: NodeId): void;
  /** A ReadIndex read at node `id`; `done(ok)` once served (ok) or dropped (not ok). */
  read(id: NodeId, done: (ok: boolean) => void): void;
  transfer(from: NodeId, to: NodeId): void;
  /** Shuts down running nodes that are not members of this configuration. */
  retireNonMembers(conf: ConfState): void;
  log(line: string): void;
}

interface Stage {
  name: string;
  /** Bound in election timeouts. */
  bound: number;
  start(): void;
  /** true when done; throws a Violation when broken. */
  poll(): boolean;
}

const members = (c: ConfState): NodeId[] => [...new Set([...c.voters, ...c.votersOutgoing, ...c.learners, ...c.learnersNext])];

export class CalmPhase {
  private stages: Stage[] = [];
  private current: Stage | null = null;
  private deadline = 0;
  readonly done: string[] = [];

  constructor(
    private readonly h: CalmHost,
    private readonly rng: Prng,
  ) {
    this.stages.push(this.drained(), this.stable(), this.reads(), this.calm(3));
    // The optional stages: a transfer, a follower rejoining (pre-vote), a minority and then the
    // leader cut off (check-quorum). Each is drawn independently.
    if (rng.chance(0.5)) this.stages.push(this.transfer(), this.stable());
    if (h.preVote && rng.chance(0.6)) this.stages.push(this.rejoin(h.checkQuorum && rng.chance(0.6)), this.stable());
    if (h.checkQuorum && rng.chance(0.5)) this.stages.push(this.keepsQuorum(), this.stable(), this.losesQuorum(), this.stable());
    // Without check-quorum a leader cut off with a minority stays leader: it must not answer reads.
    if (!h.checkQuorum && rng.chance(0.7)) this.stages.push(this.minorityRead(), this.stable());
  }

  get finished(): boolean {
    return this.current === null && this.stages.length === 0;
  }

  /** Called every few virtual ms. */
  poll(): void {
    for (;;) {
      if (!this.current) {
        const s = this.stages.shift();
        if (!s) return;
        this.current = s;
        this.deadline = this.h.now() + s.bound * this.h.electionMs;
        s.start();
      }
      if (!this.current.poll()) {
        if (this.h.now() > this.deadline) {
          throw new Violation('liveness', `${this.current.name}: not done within ${this.current.bound} election timeouts of a healthy cluster; nodes (id:term:lead:role): ${this.describe()}`);
        }
        return;
      }
      this.done.push(this.current.name);
      this.h.log(`calm: ${this.current.name}: done`);
      this.current = null;
    }
  }

  private describe(): string {
    return this.h
      .nodes()
      .map((n) => (n.up ? `${n.id}:${n.term}:${n.lead}:${n.role}${n.role === Role.Leader ? ` [${members(n.conf).join(',')}${n.conf.votersOutgoing.length ? ' joint' : ''}]` : ''}` : `${n.id}:down`))
      .join(' ');
  }

  private up(): CalmNode[] {
    return this.h.nodes().filter((n) => n.up);
  }

  /** The leader of the highest term (a stale one may linger, e.g. removed and without check-quorum). */
  private newestLeader(): CalmNode | null {
    let l: CalmNode | null = null;
    for (const n of this.up()) if (n.role === Role.Leader && (!l || n.term > l.term)) l = n;
    return l;
  }

  /** The one leader every member follows in its term, or null. */
  private settledLeader(): CalmNode | null {
    const up = this.up();
    const leaders = up.filter((n) => n.role === Role.Leader);
    if (leaders.length !== 1) return null;
    const l = leaders[0];
    if (l.conf.votersOutgoing.length > 0) return null; // the joint config must be left
    const ms = new Set(members(l.conf));
    for (const n of up) if (ms.has(n.id) && (n.lead !== l.id || n.term !== l.term)) return null;
    return l;
  }

  /** Messages sent during the faults may still arrive (held for election timeouts): wait them out. */
  private drained(): Stage {
    return {
      name: 'the messages of the fault phase delivered',
      // Held for up to 6 election timeouts, and a late duplicate up to 6 more after that.
      bound: 15,
      start: () => {},
      poll: () => this.h.now() > this.h.quietAt(),
    };
  }

  private stable(): Stage {
    let retiredFor = '';
    return {
      name: 'one leader, known by every member, joint config left',
      bound: 60,
      start: () => {},
      poll: () => {
        // The host shuts down nodes the newest leader's configuration no longer has (a removed
        // node that never learned of its removal would otherwise linger or keep campaigning).
        const newest = this.newestLeader();
        const key = newest ? `${newest.id}:${newest.term}:${members(newest.conf).join(',')}` : '';
        if (newest && key !== retiredFor && newest.conf.votersOutgoing.length === 0) {
          this.h.retireNonMembers(newest.conf);
          retiredFor = key;
        }
        // Settled only in the leader's final configuration: a new leader that has not yet
        // applied a committed removal still lists the removed node, which the next stages
        // would then ask for a read it can never serve (the leader stops replicating to it).
        return this.settledLeader()?.confFinal === true;
      },
    };
  }

  private leaderNow(): CalmNode {
    const l = this.settledLeader();
    if (!l) throw new Violation('liveness', 'the cluster lost its settled leader while healthy');
    return l;
  }

  private reads(): Stage {
    // Per member: 'asking' while a read is out, 'again' after it was dropped, deleted once served.
    const waiting = new Map<NodeId, 'asking' | 'again'>();
    const ask = (id: NodeId): void => {
      waiting.set(id, 'asking');
      this.h.read(id, (ok) => {
        if (ok) waiting.delete(id);
        else waiting.set(id, 'again'); // dropped (e.g. raced a leader change): asked again at the next poll
      });
    };
    return {
      name: 'a linearizable read answered at every member',
      bound: 20,
      start: () => {
        const l = this.leaderNow();
        const up = new Set(this.up().map((n) => n.id));
        for (const id of members(l.conf)) if (up.has(id)) ask(id);
      },
      poll: () => {
        for (const [id, st] of waiting) if (st === 'again') ask(id);
        return waiting.size === 0;
      },
    };
  }

  /** No term or leader change anywhere for `ets` election timeouts. */
  private calm(ets: number): Stage {
    let until = 0;
    let snap = '';
    const state = () => this.up().map((n) => `${n.id}:${n.term}:${n.lead}:${n.role}`).join(' ');
    return {
      name: `no election for ${ets} election timeouts while healthy`,
      bound: ets + 1,
      start: () => {
        this.leaderNow();
        until = this.h.now() + ets * this.h.electionMs;
        snap = state();
      },
      poll: () => {
        const now = state();
        if (now !== snap) throw new Violation('liveness', `a term or leader changed in a healthy cluster: [${snap}] became [${now}]`);
        return this.h.now() >= until;
      },
    };
  }

  private transfer(): Stage {
    let target: NodeId = 0;
    return {
      name: 'a leadership transfer to a voter completes',
      bound: 10,
      start: () => {
        const l = this.leaderNow();
        const voters = this.upVoters(l);
        if (voters.length === 0) return;
        target = voters[this.pick(voters.length)];
        // A write just before the transfer: the target must be caught up before MsgTimeoutNow.
        this.h.propose(l.id);
        this.h.transfer(l.id, target);
        this.h.log(`calm: transfer ${l.id} -> ${target}`);
      },
      poll: () => target === 0 || this.up().some((n) => n.id === target && n.role === Role.Leader),
    };
  }

  /** The leader's fellow voters that are running. */
  private upVoters(l: CalmNode): NodeId[] {
    const up = new Set(this.up().map((n) => n.id));
    return l.conf.voters.filter((v) => v !== l.id && up.has(v));
  }

  private pick(n: number): number {
    return this.rng.int(0, n - 1);
  }

  /** Under pre-vote: a follower cut off for several timeouts rejoins without an election. */
  private rejoin(sameLog: boolean): Stage {
    let f: NodeId = 0;
    let l: CalmNode | null = null;
    let phase: 'cut' | 'back' = 'cut';
    let at = 0;
    return {
      name: `a follower cut off for 4 election timeouts rejoins without an election (pre-vote${sameLog ? ', check-quorum, equal logs' : ', shorter log'})`,
      bound: 12,
      start: () => {
        l = this.leaderNow();
        const voters = this.upVoters(l);
        // The rest must keep a quorum (every voter is up here, or the stage is skipped).
        if (l.conf.voters.length < 3 || voters.length !== l.conf.voters.length - 1) return;
        f = voters[this.pick(voters.length)];
        this.h.isolate(f, 'calm: rejoin test');
        if (!sameLog) this.h.propose(l.id);
        at = this.h.now() + 4 * this.h.electionMs;
      },
      poll: () => {
        if (f === 0 || !l) return true;
        const leader = this.up().find((n) => n.id === l!.id);
        if (!leader || leader.role !== Role.Leader || leader.term !== l.term) {
          throw new Violation('liveness', `under pre-vote, follower ${f} ${phase === 'cut' ? 'cut off' : 'rejoining'} disrupted leader ${l.id} of term ${l.term} (now ${leader ? `${leader.role} at term ${leader.term}` : 'down'})`);
        }
        if (phase === 'cut') {
          if (this.h.now() < at) return false;
          this.h.reconnect(f);
          phase = 'back';
          at = this.h.now() + 4 * this.h.electionMs;
          return false;
        }
        const fn = this.up().find((n) => n.id === f);
        return this.h.now() >= at && !!fn && fn.lead === l.id && fn.term === l.term;
      },
    };
  }

  /** Under check-quorum: a leader that keeps a quorum keeps leading while a minority is cut off. */
  private keepsQuorum(): Stage {
    let f: NodeId = 0;
    let l: CalmNode | null = null;
    let until = 0;
    return {
      name: 'a leader keeps leading while a minority is cut off (check-quorum)',
      bound: 5,
      start: () => {
        l = this.leaderNow();
        const voters = this.upVoters(l);
        if (l.conf.voters.length < 3 || voters.length !== l.conf.voters.length - 1) return;
        f = voters[this.pick(voters.length)];
        this.h.isolate(f, 'calm: minority cut off');
        until = this.h.now() + 3 * this.h.electionMs;
      },
      poll: () => {
        if (f === 0 || !l) return true;
        const leader = this.up().find((n) => n.id === l!.id);
        if (!leader || leader.role !== Role.Leader || leader.term !== l.term) {
          throw new Violation('liveness', `leader ${l.id} of term ${l.term} stepped down while it still had a quorum (node ${f} alone was cut off)`);
        }
        if (this.h.now() < until) return false;
        this.h.reconnect(f);
        return true;
      },
    };
  }

  /**
   * A leader cut off with a minority (no check-quorum, so it stays leader) while the majority
   * elects another leader and commits a write: a read asked at the old leader must not be
   * answered (the simulator's read check fails any answer below the new commit index).
   */
  private minorityRead(): Stage {
    let l: CalmNode | null = null;
    let phase: 'wait-new-leader' | 'wait-commit' | 'read' = 'wait-new-leader';
    let rest: NodeId[] = [];
    let target = 0;
    let until = 0;
    return {
      name: 'a leader cut off with a minority answers no reads (ReadIndex needs a quorum)',
      bound: 40,
      start: () => {
        l = this.leaderNow();
        const voters = this.upVoters(l);
        const n = l.conf.voters.length;
        // The side without the leader and its buddy must be a majority (5 voters or more).
        if (n - 2 < Math.floor(n / 2) + 1 || voters.length !== n - 1) {
          l = null;
          return;
        }
        const buddy = voters[this.pick(voters.length)];
        rest = this.up().map((n) => n.id).filter((id) => id !== l!.id && id !== buddy);
        this.h.split([l.id, buddy], rest);
      },
      poll: () => {
        if (!l) return true;
        if (phase === 'wait-new-leader') {
          const nl = this.up().find((n) => rest.includes(n.id) && n.role === Role.Leader && n.term > l!.term);
          if (!nl) return false;
          this.h.propose(nl.id);
          target = this.h.maxCommitted() + 1;
          phase = 'wait-commit';
          return false;
        }
        if (phase === 'wait-commit') {
          if (this.h.maxCommitted() < target) return false;
          this.h.read(l.id, () => {});
          until = this.h.now() + 2 * this.h.electionMs;
          phase = 'read';
          return false;
        }
        if (this.h.now() < until) return false;
        this.h.heal();
        return true;
      },
    };
  }

  /** Under check-quorum: a leader cut off from everyone steps down within two election timeouts. */
  private losesQuorum(): Stage {
    let l: CalmNode | null = null;
    return {
      name: 'a leader cut off from its quorum steps down within two election timeouts (check-quorum)',
      // CheckQuorum runs every election timeout of the leader's clock and looks back one timeout.
      bound: 2.4,
      start: () => {
        l = this.leaderNow();
        if (l.conf.voters.length < 2) {
          l = null;
          return;
        }
        this.h.isolate(l.id, 'calm: leader cut off');
      },
      poll: () => {
        if (!l) return true;
        const n = this.up().find((x) => x.id === l!.id);
        if (n && n.role === Role.Leader) return false;
        this.h.reconnect(l.id);
        return true;
      },
    };
  }
}
