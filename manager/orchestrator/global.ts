// The global orchestrator: one task of the service on every eligible node (not down, not drained,
// constraints met). A node that joins or becomes eligible gets a task; one that is drained or no
// longer matches has its task stopped. Tasks on a down node are left alone (nowhere else to run
// them) and report again when it returns. Global jobs run once to completion on each node.
import type { NodeObject } from '../control/model.js';
import { isTerminal, type ServiceObject, type TaskObject } from '../services/model.js';
import { restartDue } from './restart.js';
import { byId, groupTasks, latest, newTask, nodeMatches, replace, shutdown, wakeAt, type Decisions, type View } from './view.js';

export function reconcileGlobal(v: View, d: Decisions, s: ServiceObject, tasks: TaskObject[], nodes: Map<string, NodeObject>): void {
  const job = s.spec.mode.type === 'global-job';
  if (s.spec.mode.type !== 'global' && !job) return;
  const byNode = groupTasks(tasks.filter((t) => t.spec.slot === 0 && t.nodeId), (t) => t.nodeId!);
  for (const [nodeId, ts] of byNode) {
    const last = latest(ts)!;
    const kept = last.spec.desiredState === 'running' ? last.spec.replaces : undefined;
    for (const t of ts) if (t !== last && t.id !== kept && t.spec.desiredState === 'running' && !isTerminal(t.status.state)) shutdown(d, t, 'a newer task runs on this node');
    const n = nodes.get(nodeId as string);
    if (!n) {
      for (const t of ts) if (t.spec.desiredState === 'running') shutdown(d, t, `node ${nodeId} was removed`);
      continue;
    }
    if (n.spec.availability === 'drain' || !nodeMatches(s, n)) {
      const why = n.spec.availability === 'drain' ? `node ${n.status.hostname} is drained` : `node ${n.status.hostname} no longer meets the constraints`;
      for (const t of ts) if (t.spec.desiredState === 'running') shutdown(d, t, why);
    }
  }
  for (const n of byId(nodes.values())) {
    if (n.status.state === 'down' || n.spec.availability !== 'active' || !nodeMatches(s, n)) continue;
    const ts = byNode.get(n.id);
    const last = latest(ts);
    if (job && ts?.some((t) => t.status.state === 'complete')) continue; // done here
    if (!last || last.spec.desiredState !== 'running') {
      d.creates.push(newTask(v, s, 0, n.id, [], `for node ${n.status.hostname}`));
      d.notes.push(`service ${s.name}: new task for node ${n.status.hostname}`);
      continue;
    }
    if (!isTerminal(last.status.state)) continue;
    const r = restartDue(last, s.spec.task.restart, v.now, job);
    if (!r.restart) continue;
    if (r.at > v.now) {
      wakeAt(d, r.at);
      continue;
    }
    replace(d, last, newTask(v, s, 0, n.id, r.restarts, `restarts on ${n.status.hostname} after ${last.id} ended ${last.status.state}`), 'replaced by a new task on its node');
  }
}
