// The scheduler's decision: a node for each pending task. Filters first (node ready, availability
// active, enough unreserved CPU and memory, constraints), then spread: within each level of the
// service's spread preferences the label value with the fewest of its tasks, then the node with
// the fewest tasks of the service, then the fewest tasks overall. A task that fits nowhere stays
// pending with a reason an operator can act on. Pure: the leader's loop commits the result.
import type { NodeObject } from '../control/model.js';
import { isTerminal, type TaskObject, type TaskTemplate } from '../services/model.js';
import { constraintHolds, constraintText, parseConstraint, type Constraint } from './constraints.js';

export interface ScheduleView {
  nodes: NodeObject[];
  /** Every task (placed ones count against their node's resources and spread). */
  tasks: TaskObject[];
}

export interface Schedule {
  assign: { task: TaskObject; nodeId: string }[];
  /** Tasks that fit nowhere now, with why (written to the task's status message). */
  unplaceable: { task: TaskObject; reason: string }[];
}

/** True for a task the scheduler must place: pending and still wanted. */
export function needsPlacement(t: TaskObject): boolean {
  return t.status.state === 'pending' && t.spec.desiredState === 'running';
}

/** A task that holds its node's resources: placed and not ended. */
function holdsNode(t: TaskObject): boolean {
  return !!t.nodeId && t.status.state !== 'new' && t.status.state !== 'pending' && !isTerminal(t.status.state);
}

interface NodeSlot {
  n: NodeObject;
  freeCpu: number;
  freeMem: number;
  total: number;
}

export type Refusal = 'down' | 'unknown' | 'drained' | 'paused' | 'cpu' | 'memory' | string;

const REFUSAL_ORDER: Refusal[] = ['down', 'unknown', 'drained', 'paused', 'cpu', 'memory'];

/**
 * Why a task fits nowhere, most common reason first (ties in a fixed order), e.g.
 * `no suitable node (insufficient memory on 2 nodes; 1 node drained)`.
 */
export function describe(counts: Map<Refusal, number>): string {
  const plural = (n: number) => `${n} node${n === 1 ? '' : 's'}`;
  const order = (why: Refusal) => {
    const i = REFUSAL_ORDER.indexOf(why);
    return i < 0 ? REFUSAL_ORDER.length : i;
  };
  const entries = [...counts].sort((a, b) => b[1] - a[1] || order(a[0]) - order(b[0]) || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const parts = entries.map(([why, n]) => {
    switch (why) {
      case 'down': return `${plural(n)} down`;
      case 'unknown': return `${plural(n)} not ready`;
      case 'drained': return `${plural(n)} drained`;
      case 'paused': return `${plural(n)} paused`;
      case 'cpu': return `insufficient CPU on ${plural(n)}`;
      case 'memory': return `insufficient memory on ${plural(n)}`;
      default: return `constraint ${why} not met on ${plural(n)}`;
    }
  });
  return parts.length === 0 ? 'no suitable node (the cluster has no nodes)' : `no suitable node (${parts.join('; ')})`;
}

interface Group {
  template: TaskTemplate;
  constraints: Constraint[];
  tasks: TaskObject[];
}

export function schedule(v: ScheduleView): Schedule {
  const out: Schedule = { assign: [], unplaceable: [] };
  const slots = new Map<string, NodeSlot>();
  for (const n of v.nodes) {
    const d = n.status.description;
    slots.set(n.id, { n, freeCpu: d?.cpuMillis || Infinity, freeMem: d?.memoryBytes || Infinity, total: 0 });
  }
  // Per service: how many of its tasks each node holds (spread), and the pending ones.
  const perService = new Map<string, Map<string, number>>();
  const groups = new Map<string, Group>();
  for (const t of v.tasks) {
    const sid = t.serviceId ?? '';
    if (holdsNode(t)) {
      const s = slots.get(t.nodeId!);
      if (s) {
        s.total++;
        s.freeCpu -= t.spec.template.resources.reservations.cpuMillis ?? 0;
        s.freeMem -= t.spec.template.resources.reservations.memoryBytes ?? 0;
        let m = perService.get(sid);
        if (!m) perService.set(sid, (m = new Map()));
        m.set(t.nodeId!, (m.get(t.nodeId!) ?? 0) + 1);
      }
    } else if (needsPlacement(t)) {
      // Tasks of one service and version share a template: filter nodes once per group.
      const key = `${sid}@${t.spec.serviceVersion}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { template: t.spec.template, constraints: t.spec.template.placement.constraints.map(parseConstraint), tasks: [] }));
      g.tasks.push(t);
    }
  }

  for (const g of groups.values()) {
    const sid = g.tasks[0]!.serviceId ?? '';
    let counts = perService.get(sid);
    if (!counts) perService.set(sid, (counts = new Map()));
    const cpu = g.template.resources.reservations.cpuMillis ?? 0;
    const mem = g.template.resources.reservations.memoryBytes ?? 0;
    // Static filters, once per group; the resource filter is checked per placement.
    const refused = new Map<Refusal, number>();
    const refuse = (why: Refusal) => refused.set(why, (refused.get(why) ?? 0) + 1);
    const eligible: NodeSlot[] = [];
    const staticWhy = new Map<string, Refusal>();
    for (const s of slots.values()) {
      const why = staticRefusal(s.n, g.constraints);
      if (why) staticWhy.set(s.n.id, why);
      else eligible.push(s);
    }
    const prefs = g.template.placement.preferences.map((p) => p.spread);
    g.tasks.sort((a, b) => a.spec.slot - b.spec.slot || a.createdVersion - b.createdVersion);
    for (const t of g.tasks) {
      if (t.nodeId) {
        // Placed by its orchestrator (global): only that node is checked.
        const s = slots.get(t.nodeId);
        if (!s) {
          out.unplaceable.push({ task: t, reason: `its node ${t.nodeId} is no longer in the cluster` });
          continue;
        }
        const why = staticWhy.get(t.nodeId) ?? (s.freeCpu < cpu ? 'cpu' : s.freeMem < mem ? 'memory' : undefined);
        if (why === undefined) {
          take(s, t);
          continue;
        }
        out.unplaceable.push({ task: t, reason: `node ${s.n.status.hostname} cannot run it (${nodeReason(why)})` });
        continue;
      }
      const fit = eligible.filter((s) => s.freeCpu >= cpu && s.freeMem >= mem);
      if (fit.length === 0) {
        refused.clear();
        for (const why of staticWhy.values()) refuse(why);
        for (const s of eligible) refuse(s.freeCpu < cpu ? 'cpu' : 'memory');
        out.unplaceable.push({ task: t, reason: describe(refused) });
        continue;
      }
      take(pick(fit, prefs, counts, 0), t);
    }
    function take(s: NodeSlot, t: TaskObject): void {
      s.freeCpu -= cpu;
      s.freeMem -= mem;
      s.total++;
      counts!.set(s.n.id, (counts!.get(s.n.id) ?? 0) + 1);
      out.assign.push({ task: t, nodeId: s.n.id });
    }
  }
  return out;
}

function nodeReason(why: Refusal): string {
  switch (why) {
    case 'down': return 'it is down';
    case 'unknown': return 'it is not ready';
    case 'drained': return 'it is drained';
    case 'paused': return 'it is paused';
    case 'cpu': return 'insufficient CPU';
    case 'memory': return 'insufficient memory';
    default: return `constraint ${why} not met`;
  }
}

function staticRefusal(n: NodeObject, constraints: Constraint[]): Refusal | undefined {
  if (n.status.state === 'down') return 'down';
  if (n.status.state !== 'ready') return 'unknown';
  if (n.spec.availability === 'drain') return 'drained';
  if (n.spec.availability === 'pause') return 'paused';
  const cn = { id: n.id, hostname: n.status.hostname, role: n.spec.desiredRole, labels: n.labels };
  for (const c of constraints) if (!constraintHolds(c, cn)) return constraintText(c);
  return undefined;
}

/** The spread decision over nodes that fit: label groups level by level, then the least loaded node. */
function pick(fit: NodeSlot[], prefs: string[], counts: Map<string, number>, depth: number): NodeSlot {
  if (depth < prefs.length) {
    const label = prefs[depth]!;
    const byValue = new Map<string, NodeSlot[]>();
    for (const s of fit) {
      const v = s.n.labels[label] ?? '';
      let l = byValue.get(v);
      if (!l) byValue.set(v, (l = []));
      l.push(s);
    }
    let best: NodeSlot[] | undefined;
    let bestLoad = Infinity;
    let bestKey = '';
    for (const [v, l] of byValue) {
      let load = 0;
      for (const s of l) load += counts.get(s.n.id) ?? 0;
      if (load < bestLoad || (load === bestLoad && v < bestKey)) {
        best = l;
        bestLoad = load;
        bestKey = v;
      }
    }
    return pick(best!, prefs, counts, depth + 1);
  }
  let best = fit[0]!;
  let bc = counts.get(best.n.id) ?? 0;
  for (let i = 1; i < fit.length; i++) {
    const s = fit[i]!;
    const c = counts.get(s.n.id) ?? 0;
    if (c < bc || (c === bc && (s.total < best.total || (s.total === best.total && s.n.id < best.n.id)))) {
      best = s;
      bc = c;
    }
  }
  return best;
}
