// Where a task with volumes may run (the scheduler's volume filter). Pure: from the volumes, the
// nodes and the tasks that hold volumes, for one pass; assignments made during the pass are noted
// so two tasks placed in one pass cannot both take a volume only one may use.
//
// A node can take a task when, for each of its volumes: the volume is provisioned; the node's
// agent registered the volume's CSI driver; the node's driver topology matches one of the
// volume's accessible topologies (all of its segments); and the access mode allows it:
// single-node-writer volumes serve one task at a time, and single-node ones go where they are
// attached (to a live node) until they are detached there. Attachments to nodes that are down or
// gone do not count: the volume controller detaches them (the driver fences the old node).
import type { NodeObject } from '../control/model.js';
import { csiPlugin } from '../control/plugins.js';
import type { TaskObject } from '../services/model.js';
import { exclusive, holdsVolumes, mountsOf, singleNode, volumeNameFor, volumeNamesOf, type VolumeObject } from './model.js';

export interface VolumePlacementView {
  volumes: Map<string, VolumeObject>;
  nodes: Map<string, NodeObject>;
  /** Tasks (placed and not ended) using each volume, by volume name. */
  holders: Map<string, { taskId: string; name: string; nodeId: string }[]>;
}

export function volumePlacementView(volumes: VolumeObject[], nodes: NodeObject[], tasks: TaskObject[]): VolumePlacementView {
  const v: VolumePlacementView = { volumes: new Map(volumes.map((x) => [x.name, x])), nodes: new Map(nodes.map((n) => [n.id, n])), holders: new Map() };
  for (const t of tasks) if (holdsVolumes(t) && mountsOf(t.spec.template).length > 0) noteAssigned(v, t, t.nodeId!);
  return v;
}

/** A task placed during the pass now holds its volumes there. */
export function noteAssigned(v: VolumePlacementView, t: TaskObject, nodeId: string): void {
  const name = t.spec.slot > 0 ? `${t.spec.serviceName}.${t.spec.slot}` : t.name;
  for (const vn of volumeNamesOf(t)) {
    let l = v.holders.get(vn);
    if (!l) v.holders.set(vn, (l = []));
    if (!l.some((h) => h.taskId === t.id)) l.push({ taskId: t.id, name, nodeId });
  }
}

const live = (n: NodeObject | undefined) => !!n && n.status.state !== 'down';

/**
 * Why the task cannot be placed anywhere now (a volume not provisioned, removed, or taken by
 * another task), or undefined.
 */
export function volumeWait(t: TaskObject, v: VolumePlacementView): string | undefined {
  for (const m of mountsOf(t.spec.template)) {
    const name = volumeNameFor(t, m);
    const vol = v.volumes.get(name);
    if (!vol) return m.class ? `waiting for volume ${name} to be provisioned` : `volume ${name} does not exist ("shoal volume create ${name}")`;
    if (vol.spec.removing) return `volume ${name} is being removed`;
    if (vol.status.state === 'failed') return `volume ${name} could not be provisioned: ${vol.status.message}`;
    if (vol.status.state !== 'created') return `waiting for volume ${name} to be provisioned${vol.status.message ? ` (${vol.status.message})` : ''}`;
    if (exclusive(vol.spec.access)) {
      const other = (v.holders.get(name) ?? []).find((h) => h.taskId !== t.id);
      if (other) return `volume ${name} is in use by task ${other.name} (${vol.spec.access}: one task at a time)`;
    }
  }
  return undefined;
}

/** Why `node` cannot take the task because of its volumes (one line, to be counted per node), or undefined. */
export function volumeRefusal(t: TaskObject, node: NodeObject, v: VolumePlacementView): string | undefined {
  for (const m of mountsOf(t.spec.template)) {
    const name = volumeNameFor(t, m);
    const vol = v.volumes.get(name);
    if (!vol) return `volume ${name} missing`;
    const plugin = csiPlugin(node.status.description, vol.spec.driver);
    if (!plugin) return `volume ${name}: driver ${vol.spec.driver} not registered`;
    const topo = vol.status.topology ?? [];
    if (topo.length > 0 && !topo.some((seg) => Object.entries(seg).every(([k, val]) => plugin.csi!.topology[k] === val))) return `volume ${name} not accessible (topology)`;
    if (singleNode(vol.spec.access)) {
      const at = vol.status.attachments.find((a) => a.nodeId !== node.id && live(v.nodes.get(a.nodeId)));
      if (at) return `volume ${name} attached to node ${v.nodes.get(at.nodeId)?.status.hostname || at.nodeId}`;
      const h = (v.holders.get(name) ?? []).find((x) => x.taskId !== t.id && x.nodeId !== node.id && live(v.nodes.get(x.nodeId)));
      if (h) return `volume ${name} used by task ${h.name} on another node`;
    }
  }
  return undefined;
}

/** "no suitable node (volume web.1-data attached to node worker-1 on 1 node; 1 node drained)". */
export function describeVolumeRefusals(counts: Map<string, number>): string {
  const parts = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([why, n]) => `${why} on ${n} node${n === 1 ? '' : 's'}`);
  return parts.length === 0 ? 'no suitable node (the cluster has no nodes)' : `no suitable node (${parts.join('; ')})`;
}
