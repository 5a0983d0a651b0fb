// The replicated orchestrator: keeps exactly `replicas` slots of a service occupied. A slot is
// occupied while its latest task is wanted running (running, on its way, or ended and waiting
// for its restart). Tasks on lost or drained nodes are replaced; slots beyond the count are
// let go, the least established first.
import type { NodeObject } from '../control/model.js';
import { isTerminal, type ServiceObject, type TaskObject } from '../services/model.js';
import { restartDue } from './restart.js';
import { groupTasks, latest, newTask, nodeLost, orphan, placedAndLive, shutdown, wakeAt, type Decisions, type View } from './view.js';

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
      orphan(d, last, v.now, node ? `node ${node.status.hostname} is down` : `node ${last.nodeId} was removed`);
      d.creates.push(newTask(v, s, slot, undefined, last.spec.restarts, `replaces ${last.id} (its node was lost)`));
      return;
    }
    if (node!.spec.availability === 'drain') {
      shutdown(d, last, `node ${node!.status.hostname} is drained`);
      d.creates.push(newTask(v, s, slot, undefined, last.spec.restarts, `replaces ${last.id} (its node was drained)`));
      return;
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
  shutdown(d, last, `replaced by a new task in slot ${slot}`);
  const next = newTask(v, s, slot, undefined, r.restarts, `restarts slot ${slot} after ${last.id} ended ${last.status.state}`);
  // A failed start-first replacement's successor still keeps the old task running meanwhile.
  const old = kept ? ts.find((t) => t.id === kept) : undefined;
  if (old && old.spec.desiredState === 'running' && !isTerminal(old.status.state)) (next.spec as TaskObject['spec']).replaces = kept;
  d.creates.push(next);
}

export function reconcileReplicated(v: View, d: Decisions, s: ServiceObject, tasks: TaskObject[], nodes: Map<string, NodeObject>): void {
  if (s.spec.mode.type !== 'replicated') return;
  const want = s.spec.mode.replicas;
  const bySlot = groupTasks(tasks.filter((t) => t.spec.slot > 0), (t) => t.spec.slot);
  const occupied: number[] = [];
  for (const [slot, ts] of bySlot) {
    reconcileSlot(v, d, s, slot as number, ts, nodes, false);
    if (latest(ts)!.spec.desiredState === 'running') occupied.push(slot as number);
  }
  if (occupied.length < want) {
    const used = new Set(occupied);
    let next = 1;
    for (let i = occupied.length; i < want; i++) {
      while (used.has(next)) next++;
      used.add(next);
      d.creates.push(newTask(v, s, next, undefined, [], `slot ${next} of ${want}`));
    }
    d.notes.push(`service ${s.name}: ${want - occupied.length} new task(s) for ${want} replicas`);
  } else if (occupied.length > want) {
    // Let go first of slots not running yet, then of the most crowded nodes, then the highest.
    const perNode = new Map<string, number>();
    for (const slot of occupied) {
      const n = latest(bySlot.get(slot))!.nodeId;
      if (n) perNode.set(n, (perNode.get(n) ?? 0) + 1);
    }
    const rank = (slot: number) => {
      const t = latest(bySlot.get(slot))!;
      return [t.status.state === 'running' ? 1 : 0, -(perNode.get(t.nodeId ?? '') ?? 0), -slot];
    };
    const order = [...occupied].sort((a, b) => {
      const ra = rank(a);
      const rb = rank(b);
      return ra[0]! - rb[0]! || ra[1]! - rb[1]! || ra[2]! - rb[2]!;
    });
    for (const slot of order.slice(0, occupied.length - want)) {
      const t = latest(bySlot.get(slot))!;
      if (t.nodeId) perNode.set(t.nodeId, (perNode.get(t.nodeId) ?? 1) - 1);
      shutdown(d, t, `scaled down to ${want}`);
    }
  }
}
