// The simulated operator's membership decisions: given the leader's applied configuration and
// which learners have caught up, pick the next change (or none). Pure: all randomness comes
// from the PRNG handed in, in a fixed order.

import { ConfChangeTransition, ConfChangeType, type ConfChange, type ConfState, type NodeId } from '../types.js';
import type { Prng } from './prng.js';

export interface OperatorView {
  leader: NodeId;
  /** The leader's applied (hence committed) configuration; never joint here. */
  conf: ConfState;
  /** Learners whose replication is (nearly) at the leader's commit index and that are up. */
  caughtUp: NodeId[];
  /** Members of any kind in `conf`. */
  members: number;
  maxMembers: number;
  /** The id a new node would get (ids are never reused). */
  nextId: NodeId;
}

export interface MembershipPlan {
  cc: ConfChange;
  what: string;
  /** Set when the plan adds a brand-new node with this id (the caller starts it). */
  newNode?: NodeId;
}

const EMPTY = new Uint8Array(0);

export function planMembershipChange(r: Prng, v: OperatorView): MembershipPlan | null {
  const { conf, caughtUp } = v;
  const choice = r.float();
  if (caughtUp.length >= 2 && conf.voters.length >= 3 && choice < 0.7) {
    // Replace two voters (possibly the leader) by two caught-up learners through a joint config.
    const out = r.shuffle(conf.voters.slice()).slice(0, 2);
    const [a, b] = caughtUp;
    return {
      cc: {
        transition: ConfChangeTransition.JointImplicit,
        changes: [
          { type: ConfChangeType.AddVoter, nodeId: a },
          { type: ConfChangeType.AddVoter, nodeId: b },
          { type: ConfChangeType.RemoveNode, nodeId: out[0] },
          { type: ConfChangeType.RemoveNode, nodeId: out[1] },
        ],
        context: EMPTY,
      },
      what: `joint replace voters ${out.join(',')} by ${a},${b}`,
    };
  }
  if (caughtUp.length >= 1 && (choice < 0.45 || v.members >= v.maxMembers)) {
    return {
      cc: { transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.AddVoter, nodeId: caughtUp[0] }], context: EMPTY },
      what: `promote learner ${caughtUp[0]}`,
    };
  }
  if (conf.voters.length > 3 && choice < 0.8) {
    const victim = r.pick(conf.voters);
    return {
      cc: { transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.RemoveNode, nodeId: victim }], context: EMPTY },
      what: `remove voter ${victim}${victim === v.leader ? ' (the leader)' : ''}`,
    };
  }
  // A learner that is not (yet) caught up is removed now and then, and always when the cluster is
  // full: learners come and go under the same faults as voters.
  const stale = conf.learners.filter((id) => !caughtUp.includes(id));
  if (stale.length > 0 && (choice >= 0.9 || v.members >= v.maxMembers)) {
    const victim = r.pick(stale);
    return {
      cc: { transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.RemoveNode, nodeId: victim }], context: EMPTY },
      what: `remove learner ${victim}`,
    };
  }
  if (v.members < v.maxMembers && conf.learners.length < 2) {
    return {
      cc: { transition: ConfChangeTransition.Auto, changes: [{ type: ConfChangeType.AddLearner, nodeId: v.nextId }], context: EMPTY },
      what: `add learner ${v.nextId} (new node)`,
      newNode: v.nextId,
    };
  }
  return null;
}
