// The replicated orchestrator: keeps exactly `replicas` slots of a service occupied. A slot is
// occupied while its latest task is wanted running (running, on its way, or ended and waiting
// for its restart). Tasks on lost or drained nodes are replaced; slots beyond the count are
// let go, the least established first, then from the nodes holding the most of them.
import type { NodeObject } from '../control/model.js';
import { TASK_STATE_ORDER, isTerminal, type ServiceObject, type TaskObject } from '../services/model.js';
import { restartDue } from './restart.js';
import { groupTasks, latest, newTask, nodeLost, orphan, placedAndLive, replace, shutdown, wakeAt, type Decisions, type View } from './view.js';

/**
 * Reconciles one slot's tasks: duplicates stopped, a task on a lost or drained node replaced, an
 * ended task restarted per policy. `job`: a completed task ends the slot instead.
 */
export function reconcileSlot(v: View, d: Decisions, s: ServiceObject, slot: number, ts: TaskObject[], nodes: Map<string, NodeObject>, job: boolean): void {
  const last = latest(ts)!;
  // Only the latest task of a slot may run; older ones still wanted (a crash between writes) stop,
  // except the one a start-first update replaces: it runs until its successor does (updater.ts).
  const kept = last.spec.desiredState === 'running' ? last.spec.replaces : undefined;
  for (const t of ts) if (t !== last && t.id !== kept && t.spec.desiredState === 'running' && !isTerminal(t.status.state)) shutdown(d, t, `a newer task holds slot ${slot}`);
  if (last.spec.desiredState !== 'running') return;
  const node = last.nodeId ? nodes.get(last.nodeId) : undefined;
  if (placedAndLive(last)) {
    if (nodeLost(node)) {
      // Not the task's failure: its successor keeps the slot's restart history as it was.
      orphan(d, last, v.now, node ? `node ${node.status.hostname} is down` : `node ${last.nodeId} was removed`, newTask(v, s, slot, undefined, last.spec.restarts, `replaces ${last.id} (its node was lost)`));
      return;
    }
    if (node!.spec.availability === 'drain') {
      replace(d, last, newTask(v, s, slot, undefined, last.spec.restarts, `replaces ${last.id} (its node was drained)`), `node ${node!.status.hostname} is drained`);
    }
    return;
  }
  if (!isTerminal(last.status.state)) return; // new, pending or assigned without a live node: the scheduler's
  const r = restartDue(last, s.spec.task.restart, v.now, job);
  if (!r.restart) return;
  if (r.at > v.now) {
    wakeAt(d, r.at);
    return;
  }
  const next = newTask(v, s, slot, undefined, r.restarts, `restarts slot ${slot} after ${last.id} ended ${last.status.state}`);
  // A failed start-first replacement's successor still keeps the old task running meanwhile.
  const old = kept ? ts.find((t) => t.id === kept) : undefined;
  if (old && old.spec.desiredState === 'running' && !isTerminal(old.status.state)) (next.spec as TaskObject['spec']).replaces = kept;
  replace(d, last, next, `replaced by a new task in slot ${slot}`);
}

export function reconcileReplicated(v: View, d: Decisions, s: ServiceObject, tasks: TaskObject[], nodes: Map<string, NodeObject>): void {
  if (s.spec.mode.type !== 'replicated') return;
  const want = s.spec.mode.replicas;
  const bySlot = groupTasks(tasks.filter((t) => t.spec.slot > 0), (t) => t.spec.slot);
  const occupied: TaskObject[] = [];
  for (const ts of bySlot.values()) if (latest(ts)!.spec.desiredState === 'running') occupied.push(latest(ts)!);
  // The slots a scale-down lets go are chosen first, so none of them is restarted or replaced.
  const letGo = new Set<TaskObject>();
  if (occupied.length > want) {
    const doomed = (t: TaskObject) => placedAndLive(t) && (nodeLost(nodes.get(t.nodeId!)) || nodes.get(t.nodeId!)!.spec.availability === 'drain');
    for (const t of scaleDownOrder(occupied, doomed).slice(0, occupied.length - want)) letGo.add(t);
  }
  for (const [slot, ts] of bySlot) {
    const last = latest(ts)!;
    if (!letGo.has(last)) {
      reconcileSlot(v, d, s, slot as number, ts, nodes, false);
      continue;
    }
    // Letting the slot go stops a start-first update's old task with it.
    for (const t of ts) if (t !== last && t.spec.desiredState === 'running' && !isTerminal(t.status.state)) shutdown(d, t, `a newer task holds slot ${slot}`);
    const n = last.nodeId ? nodes.get(last.nodeId) : undefined;
    if (placedAndLive(last) && nodeLost(n)) orphan(d, last, v.now, `scaled down to ${want}; ${n ? `node ${n.status.hostname} is down` : `node ${last.nodeId} was removed`}`);
    else shutdown(d, last, `scaled down to ${want}`);
  }
  if (occupied.length < want) {
    const used = new Set(occupied.map((t) => t.spec.slot));
    let next = 1;
    for (let i = occupied.length; i < want; i++) {
      while (used.has(next)) next++;
      used.add(next);
      d.creates.push(newTask(v, s, next, undefined, [], `slot ${next} of ${want}`));
    }
    d.notes.push(`service ${s.name}: ${want - occupied.length} new task(s) for ${want} replicas`);
  }
}

/**
 * The order in which a scale-down lets slots go: first the ones not running (ended ones waiting
 * for a restart, and ones on a lost or drained node, which would need replacing; then the least
 * far along: not yet placed before starting), then running ones from the nodes holding the most
 * of them, one at a time. Giving each running task its rank on its node (1st, 2nd, ... copy, by
 * slot) and taking the highest ranks first is that greedy order: it always takes from a node
 * with the most left. Ties go to the highest slot.
 */
export function scaleDownOrder(latestOfSlots: TaskObject[], doomed: (t: TaskObject) => boolean = () => false): TaskObject[] {
  const progress = (t: TaskObject) => (isTerminal(t.status.state) || doomed(t) ? -1 : TASK_STATE_ORDER[t.status.state]);
  const settled = (t: TaskObject) => t.status.state === 'running' && !doomed(t);
  const notRunning = latestOfSlots.filter((t) => !settled(t));
  notRunning.sort((a, b) => progress(a) - progress(b) || b.spec.slot - a.spec.slot);
  const byNode = groupTasks(latestOfSlots.filter(settled), (t) => t.nodeId ?? '');
  const ranked: { t: TaskObject; rank: number }[] = [];
  for (const ts of byNode.values()) {
    ts.sort((a, b) => a.spec.slot - b.spec.slot);
    ts.forEach((t, i) => ranked.push({ t, rank: i + 1 }));
  }
  ranked.sort((a, b) => b.rank - a.rank || b.t.spec.slot - a.t.spec.slot);
  return [...notRunning, ...ranked.map((r) => r.t)];
}
