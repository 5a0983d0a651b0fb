// The scheduler's decision: a node for each pending task. Filters first (node ready, availability
// active, enough unreserved CPU and memory, constraints), then spread: within each level of the
// service's spread preferences the label value with the fewest of its tasks, then the node with
// the fewest tasks of the service, then the fewest tasks overall. A task that fits nowhere stays
// pending with a reason an operator can act on. Pure: the leader's loop commits the result.
import type { NodeObject } from '../control/model.js';
import type { NetworkAddress } from '../networks/model.js';
import { isTerminal, type TaskObject, type TaskTemplate } from '../services/model.js';
import { constraintHolds, constraintText, parseConstraint, type Constraint } from './constraints.js';
import { mountsOf, type VolumeObject } from '../volumes/model.js';
import { describeVolumeRefusals, noteAssigned, volumePlacementView, volumeRefusal, volumeWait } from '../volumes/placement.js';

export interface ScheduleView {
  nodes: NodeObject[];
  /** Every task (placed ones count against their node's resources and spread). */
  tasks: TaskObject[];
  /** The volumes: tasks with mounts go only where their volumes can be attached (volumes/placement.ts). */
  volumes?: VolumeObject[];
}

export interface Schedule {
  /** `networks`: the task's addresses, set by the allocator (allocator/placement.ts) before the commit. */
  assign: { task: TaskObject; nodeId: string; networks?: NetworkAddress[] }[];
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
  const vv = v.volumes ? volumePlacementView(v.volumes, v.nodes, v.tasks) : undefined;
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
    // Tasks placed by their orchestrator (global, slot 0) first, then by slot.
    g.tasks.sort((a, b) => a.spec.slot - b.spec.slot || a.createdVersion - b.createdVersion);
    let tree: SpreadTree | undefined;
    const withVolumes = !!vv && mountsOf(g.template).length > 0;
    for (const t of g.tasks) {
      if (withVolumes) {
        // Volumes narrow the nodes per task (each slot may have its own volume): filtered and
        // spread per task over the nodes that fit.
        const wait = volumeWait(t, vv!);
        const fit: NodeSlot[] = [];
        const why = new Map<string, number>();
        const count = (w: string) => why.set(w, (why.get(w) ?? 0) + 1);
        for (const s of slots.values()) {
          if (t.nodeId && s.n.id !== t.nodeId) continue;
          const r = staticWhy.get(s.n.id) ?? (s.freeCpu < cpu ? 'cpu' : s.freeMem < mem ? 'memory' : undefined);
          const vr = r === undefined ? volumeRefusal(t, s.n, vv!) : undefined;
          if (r !== undefined) count(nodeReason(r).replace(/^it is /, ''));
          else if (vr) count(vr);
          else fit.push(s);
        }
        if (wait || fit.length === 0) {
          out.unplaceable.push({ task: t, reason: wait ?? describeVolumeRefusals(why) });
          continue;
        }
        placeOne(buildTree(fit, prefs, counts), counts, () => true, (x) => take(x, t));
        noteAssigned(vv!, t, out.assign[out.assign.length - 1]!.nodeId);
        continue;
      }
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
      // Built once per group, from the nodes that fit now; a node leaves it when it no longer
      // fits (room only shrinks during a pass), so each placement costs O(log nodes).
      tree ??= buildTree(eligible.filter((s) => s.freeCpu >= cpu && s.freeMem >= mem), prefs, counts);
      if (tree.size === 0 || !placeOne(tree, counts, (x) => x.freeCpu >= cpu && x.freeMem >= mem, (x) => take(x, t))) {
        refused.clear();
        for (const why of staticWhy.values()) refuse(why);
        for (const e of eligible) refuse(e.freeCpu < cpu ? 'cpu' : 'memory');
        out.unplaceable.push({ task: t, reason: describe(refused) });
        continue;
      }
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

/**
 * The spread decision over the nodes that fit, as a tree: one level per spread preference (the
 * nodes grouped by that label's value; a node without the label goes with the others lacking
 * it), each group knowing the tasks of the service its nodes hold (its load); the leaves are
 * heaps of nodes ordered by tasks of the service, then tasks overall, then node id. A placement
 * goes down the tree by the least loaded value (ties: the smaller value), level by level, and
 * takes the leaf's best node.
 */
interface SpreadTree {
  value: string;
  load: number;
  size: number;
  children?: Map<string, SpreadTree>;
  heap?: NodeHeap;
}

function buildTree(fit: NodeSlot[], prefs: string[], counts: Map<string, number>, depth = 0, value = ''): SpreadTree {
  let load = 0;
  for (const s of fit) load += counts.get(s.n.id) ?? 0;
  const t: SpreadTree = { value, load, size: fit.length };
  if (depth === prefs.length) {
    t.heap = new NodeHeap(counts);
    for (const s of fit) t.heap.push(s);
    return t;
  }
  const byValue = new Map<string, NodeSlot[]>();
  for (const s of fit) {
    const v = s.n.labels[prefs[depth]!] ?? '';
    const l = byValue.get(v);
    if (l) l.push(s);
    else byValue.set(v, [s]);
  }
  t.children = new Map();
  for (const [v, l] of byValue) t.children.set(v, buildTree(l, prefs, counts, depth + 1, v));
  return t;
}

/**
 * Places one task on the best node: `place` counts it there; the node goes back into its heap if
 * it still has room for another (`fits`), else it leaves the tree. False if no node is left.
 */
function placeOne(root: SpreadTree, counts: Map<string, number>, fits: (s: NodeSlot) => boolean, place: (s: NodeSlot) => void): boolean {
  const path: SpreadTree[] = [];
  let t = root;
  for (;;) {
    path.push(t);
    if (t.heap) break;
    let best: SpreadTree | undefined;
    for (const c of t.children!.values()) if (!best || c.load < best.load || (c.load === best.load && c.value < best.value)) best = c;
    if (!best) return false;
    t = best;
  }
  const s = t.heap!.pop();
  if (!s) return false;
  place(s);
  if (fits(s)) {
    for (const p of path) p.load += 1;
    t.heap!.push(s);
    return true;
  }
  const held = counts.get(s.n.id) ?? 0;
  for (const p of path) {
    p.load -= held - 1;
    p.size -= 1;
  }
  for (let i = path.length - 1; i > 0; i--) if (path[i]!.size === 0) path[i - 1]!.children!.delete(path[i]!.value);
  return true;
}

/** A binary min-heap of nodes: fewest tasks of the service, then fewest overall, then id. */
class NodeHeap {
  private readonly a: NodeSlot[] = [];
  constructor(private readonly counts: Map<string, number>) {}

  private less(x: NodeSlot, y: NodeSlot): boolean {
    const cx = this.counts.get(x.n.id) ?? 0;
    const cy = this.counts.get(y.n.id) ?? 0;
    if (cx !== cy) return cx < cy;
    if (x.total !== y.total) return x.total < y.total;
    return x.n.id < y.n.id;
  }

  push(s: NodeSlot): void {
    const a = this.a;
    a.push(s);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  pop(): NodeSlot | undefined {
    const a = this.a;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}
