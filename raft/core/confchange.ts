// Applying membership changes to a tracker config (etcd's confchange.Changer, our own code).
//  - simple:     at most one voter added/removed/demoted; never from a joint config.
//  - enterJoint: incoming := changes(old), outgoing := old; decisions need both majorities.
//  - leaveJoint: outgoing dropped, learnersNext become learners.
// Every function works on copies and throws ConfChangeError without touching its input.
import { ConfChangeTransition, ConfChangeType, type ConfChange, type ConfChangeSingle, type NodeId } from '../types.js';
import { ConfChangeError } from './errors.js';
import { Progress } from './progress.js';
import { cloneConfig, isJoint, type TrackerConfig } from './tracker.js';

export interface ChangeResult {
  config: TrackerConfig;
  progress: Map<NodeId, Progress>;
}

interface Ctx {
  lastIndex: number;
  maxInflight: number;
}

/** Whether cc enters a joint config, and if so whether it leaves it automatically. */
export function entersJoint(cc: ConfChange): { joint: boolean; autoLeave: boolean } {
  if (cc.changes.length === 0) return { joint: false, autoLeave: false };
  if (cc.transition !== ConfChangeTransition.Auto || cc.changes.length > 1) {
    return { joint: true, autoLeave: cc.transition !== ConfChangeTransition.JointExplicit };
  }
  return { joint: false, autoLeave: false };
}

export function leavesJoint(cc: ConfChange): boolean {
  return cc.changes.length === 0;
}

/** Applies cc the way a committed ConfChange entry is applied. */
export function applyChange(config: TrackerConfig, progress: Map<NodeId, Progress>, cc: ConfChange, ctx: Ctx): ChangeResult {
  if (leavesJoint(cc)) return leaveJoint(config, progress);
  const j = entersJoint(cc);
  if (j.joint) return enterJoint(config, progress, j.autoLeave, cc.changes, ctx);
  return simple(config, progress, cc.changes, ctx);
}

function copy(config: TrackerConfig, progress: Map<NodeId, Progress>): ChangeResult {
  const p = new Map<NodeId, Progress>();
  for (const [id, pr] of progress) p.set(id, pr.clone());
  return { config: cloneConfig(config), progress: p };
}

function members(c: TrackerConfig): Set<NodeId> {
  return new Set([...c.incoming, ...c.outgoing, ...c.learners, ...c.learnersNext]);
}

/** Whatever was a member before and is none now is removed forever. */
function recordRemoved(before: TrackerConfig, after: TrackerConfig): void {
  const now = members(after);
  for (const id of members(before)) if (!now.has(id)) after.removed.add(id);
}

export function enterJoint(config: TrackerConfig, progress: Map<NodeId, Progress>, autoLeave: boolean, ccs: ConfChangeSingle[], ctx: Ctx): ChangeResult {
  if (isJoint(config)) throw new ConfChangeError('cannot enter a joint config: the config is already joint; leave it first (propose a ConfChange with no changes)');
  if (config.incoming.size === 0) throw new ConfChangeError('cannot make a zero-voter config joint');
  const r = copy(config, progress);
  r.config.outgoing = new Set(r.config.incoming);
  applySingles(r, ccs, ctx);
  r.config.autoLeave = autoLeave;
  check(r);
  recordRemoved(config, r.config);
  return r;
}

export function leaveJoint(config: TrackerConfig, progress: Map<NodeId, Progress>): ChangeResult {
  if (!isJoint(config)) throw new ConfChangeError('cannot leave a joint config: the config is not joint');
  const r = copy(config, progress);
  const c = r.config;
  for (const id of c.learnersNext) {
    c.learners.add(id);
    const pr = r.progress.get(id);
    if (pr) pr.isLearner = true;
  }
  c.learnersNext.clear();
  for (const id of c.outgoing) {
    if (!c.incoming.has(id) && !c.learners.has(id)) r.progress.delete(id);
  }
  c.outgoing.clear();
  c.autoLeave = false;
  check(r);
  recordRemoved(config, c);
  return r;
}

export function simple(config: TrackerConfig, progress: Map<NodeId, Progress>, ccs: ConfChangeSingle[], ctx: Ctx): ChangeResult {
  if (isJoint(config)) throw new ConfChangeError('cannot apply a simple config change in a joint config; leave it first');
  const r = copy(config, progress);
  applySingles(r, ccs, ctx);
  let changed = 0;
  for (const id of config.incoming) if (!r.config.incoming.has(id)) changed++;
  for (const id of r.config.incoming) if (!config.incoming.has(id)) changed++;
  if (changed > 1) throw new ConfChangeError('more than one voter changed without entering a joint config (use a joint transition)');
  check(r);
  recordRemoved(config, r.config);
  return r;
}

function applySingles(r: ChangeResult, ccs: ConfChangeSingle[], ctx: Ctx): void {
  for (const cc of ccs) {
    if (!Number.isSafeInteger(cc.nodeId) || cc.nodeId < 0) throw new ConfChangeError(`conf change names node id ${cc.nodeId}; ids are positive integers`);
    if (cc.nodeId === 0) continue; // etcd ignores changes for node 0
    switch (cc.type) {
      case ConfChangeType.AddVoter:
        refuseRemoved(r.config, cc.nodeId);
        makeVoter(r, cc.nodeId, ctx);
        break;
      case ConfChangeType.AddLearner:
        refuseRemoved(r.config, cc.nodeId);
        makeLearner(r, cc.nodeId, ctx);
        break;
      case ConfChangeType.RemoveNode:
        remove(r, cc.nodeId);
        break;
      default:
        throw new ConfChangeError(`unknown conf change type ${String(cc.type)}`);
    }
  }
  if (r.config.incoming.size === 0) throw new ConfChangeError('the change removes all voters');
}

function refuseRemoved(c: TrackerConfig, id: NodeId): void {
  if (c.removed.has(id)) {
    throw new ConfChangeError(`node id ${id} was removed from the cluster and can never be re-added; give the new member a fresh id`);
  }
}

function initProgress(r: ChangeResult, id: NodeId, isLearner: boolean, ctx: Ctx): void {
  // next = lastIndex: the first probe carries the last entry, the follower's hint does the rest.
  r.progress.set(id, new Progress(0, Math.max(ctx.lastIndex, 1), ctx.maxInflight, isLearner));
}

function makeVoter(r: ChangeResult, id: NodeId, ctx: Ctx): void {
  const pr = r.progress.get(id);
  if (!pr) initProgress(r, id, false, ctx);
  else pr.isLearner = false;
  r.config.learners.delete(id);
  r.config.learnersNext.delete(id);
  r.config.incoming.add(id);
}

function makeLearner(r: ChangeResult, id: NodeId, ctx: Ctx): void {
  const pr = r.progress.get(id);
  if (!pr) {
    initProgress(r, id, true, ctx);
  } else if (pr.isLearner) {
    return;
  }
  // Drop any voter role, keeping the Progress.
  r.config.incoming.delete(id);
  r.config.learners.delete(id);
  r.config.learnersNext.delete(id);
  if (r.config.outgoing.has(id)) {
    // Still a voter of the outgoing half: becomes a learner when the joint config is left.
    r.config.learnersNext.add(id);
  } else {
    r.progress.get(id)!.isLearner = true;
    r.config.learners.add(id);
  }
}

function remove(r: ChangeResult, id: NodeId): void {
  if (!r.progress.has(id)) return;
  r.config.incoming.delete(id);
  r.config.learners.delete(id);
  r.config.learnersNext.delete(id);
  if (!r.config.outgoing.has(id)) r.progress.delete(id);
}

function check(r: ChangeResult): void {
  const c = r.config;
  for (const id of [...c.incoming, ...c.outgoing, ...c.learners, ...c.learnersNext]) {
    if (!r.progress.has(id)) throw new ConfChangeError(`internal: no progress for member ${id}`);
  }
  for (const id of c.learnersNext) {
    if (!c.outgoing.has(id)) throw new ConfChangeError(`internal: learnersNext ${id} not in outgoing`);
    if (r.progress.get(id)!.isLearner) throw new ConfChangeError(`internal: learnersNext ${id} already marked learner`);
  }
  for (const id of c.learners) {
    if (c.incoming.has(id) || c.outgoing.has(id)) throw new ConfChangeError(`internal: learner ${id} is also a voter`);
    if (!r.progress.get(id)!.isLearner) throw new ConfChangeError(`internal: learner ${id} not marked learner`);
  }
  if (!isJoint(c) && (c.learnersNext.size > 0 || c.autoLeave)) throw new ConfChangeError('internal: learnersNext/autoLeave outside a joint config');
}
