// The volume controller's decisions (pure): from the volumes, classes, services, tasks and nodes
// of one view, what to do next. The controller (controller.ts) carries them out with CSI calls on
// the leader and records the outcome in the store.
//
// - Claims: each slot of a service with a class mount gets its volume object (`web.1-data`) as
//   soon as a task of that slot exists; a claim left by a removed service of the same name
//   (reclaim retain) is taken over.
// - Provision: a volume not yet created is created (CreateVolume).
// - Attach: a volume a placed task uses is published to the task's node (ControllerPublish);
//   an attachment the node released but a task there needs again is simply used again.
// - Detach: an attachment no task on its node needs, that the node released (or whose node is
//   down or gone: the driver fences it), is unpublished (ControllerUnpublish).
// - Delete: a volume being removed, or a claim whose service is gone and whose class says delete,
//   is deleted (DeleteVolume) once no task holds it and nothing is attached.
import { randomBytes } from 'node:crypto';
import type { NodeObject } from '../control/model.js';
import { csiPlugin } from '../control/plugins.js';
import type { ServiceObject, TaskObject } from '../services/model.js';
import type { ObjectInput } from '../store/types.js';
import { claimName, holdsVolumes, mountsOf, wantsVolumes, readOnlyAccess, singleNode, type Attachment, type Claim, type VolumeClassObject, type VolumeObject, type VolumeStatus } from './model.js';

export interface ControllerView {
  now: number;
  volumes: VolumeObject[];
  classes: VolumeClassObject[];
  services: ServiceObject[];
  tasks: TaskObject[];
  nodes: NodeObject[];
  /** Back-off: the earliest time each action (by key) may be tried again. */
  retryAt?: Map<string, number>;
  /** The latest failure of each action (by key), for the waiting reasons. */
  lastError?: Map<string, string>;
}

export type Action =
  | { type: 'claim'; key: string; object: ObjectInput }
  | { type: 'adopt'; key: string; volume: VolumeObject; claim: Claim }
  | { type: 'provision'; key: string; volume: VolumeObject }
  | { type: 'publish'; key: string; volume: VolumeObject; nodeId: string; csiNodeId: string; readonly: boolean }
  | { type: 'reuse'; key: string; volume: VolumeObject; nodeId: string }
  | { type: 'unpublish'; key: string; volume: VolumeObject; attachment: Attachment; why: string }
  | { type: 'delete'; key: string; volume: VolumeObject; why: string };

export interface ControllerDecisions {
  /** In the order to carry them out per volume: claims and provisions, detaches, attaches, deletes. */
  actions: Action[];
  /**
   * Per volume, the nodes a task waits on it for and why (what status.waiting should say; the
   * controller writes it when it differs), for `volume inspect` and the waiting task.
   */
  waiting: Map<string, { nodeId: string; message: string }[]>;
  /** The next back-off to run a pass for. */
  wakeAt?: number;
}

export function newVolumeId(): string {
  return BigInt('0x' + randomBytes(16).toString('hex')).toString(36).padStart(25, '0');
}

const ORDER: Record<Action['type'], number> = { claim: 0, adopt: 1, provision: 2, unpublish: 3, reuse: 4, publish: 5, delete: 6 };

export function decideVolumes(v: ControllerView, newId: () => string = newVolumeId): ControllerDecisions {
  const out: ControllerDecisions = { actions: [], waiting: new Map() };
  const nodes = new Map(v.nodes.map((n) => [n.id, n]));
  const byName = new Map(v.volumes.map((x) => [x.name, x]));
  const classes = new Map(v.classes.map((c) => [c.name, c]));
  const services = new Map(v.services.map((s) => [s.id, s]));
  const servicesByName = new Map(v.services.map((s) => [s.name, s]));
  const push = (a: Action) => {
    const at = v.retryAt?.get(a.key);
    if (at !== undefined && at > v.now) {
      if (out.wakeAt === undefined || at < out.wakeAt) out.wakeAt = at;
      return;
    }
    out.actions.push(a);
  };

  // Claims: one volume per slot and class mount, from the first task of the slot on.
  const claimed = new Set<string>();
  for (const t of v.tasks) {
    if (t.spec.desiredState !== 'running' || t.spec.slot <= 0 || !t.serviceId) continue;
    const s = services.get(t.serviceId);
    if (!s) continue;
    for (const m of mountsOf(t.spec.template)) {
      if (!m.class) continue;
      const name = claimName(s.name, t.spec.slot, m);
      if (claimed.has(name)) continue;
      claimed.add(name);
      const have = byName.get(name);
      const claim: Claim = { serviceId: s.id, serviceName: s.name, slot: t.spec.slot, mount: m.name! };
      if (have) {
        if (have.spec.claim && have.spec.claim.serviceId !== s.id && !services.has(have.spec.claim.serviceId) && !have.spec.removing) push({ type: 'adopt', key: `adopt:${have.id}`, volume: have, claim });
        continue;
      }
      const c = classes.get(m.class);
      if (!c) continue; // the task waits; the service's validation named the class when it was written
      push({
        type: 'claim',
        key: `claim:${name}`,
        object: {
          kind: 'volume',
          id: newId(),
          name,
          labels: { 'io.shoal.service.name': s.name, 'io.shoal.task.slot': String(t.spec.slot) },
          spec: { driver: c.spec.driver, sizeBytes: m.sizeBytes!, access: c.spec.access, params: { ...c.spec.params }, class: c.name, reclaim: c.spec.reclaim, claim },
          status: { state: 'pending', message: '', createdAt: v.now, attachments: [] } satisfies VolumeStatus,
        },
      });
    }
  }

  // Who needs each volume where: placed tasks that have not ended and are wanted running (they
  // attach it and keep it attached); and who may still hold it (placed, not ended: no delete).
  const needs = new Map<string, Map<string, TaskObject[]>>(); // volume name -> node -> tasks
  const held = new Set<string>(); // volume names
  for (const t of v.tasks) {
    if (!holdsVolumes(t)) continue;
    for (const m of mountsOf(t.spec.template)) {
      const name = m.source ?? claimName(t.spec.serviceName, t.spec.slot, m);
      held.add(name);
      if (!wantsVolumes(t)) continue;
      let byNode = needs.get(name);
      if (!byNode) needs.set(name, (byNode = new Map()));
      const l = byNode.get(t.nodeId!);
      if (l) l.push(t);
      else byNode.set(t.nodeId!, [t]);
    }
  }

  for (const vol of v.volumes) {
    const need = needs.get(vol.name) ?? new Map<string, TaskObject[]>();
    if (vol.status.state === 'pending' && !vol.spec.removing) {
      push({ type: 'provision', key: `provision:${vol.id}`, volume: vol });
      continue;
    }
    if (vol.status.state !== 'created') {
      // failed (or never created): nothing attached; it goes when removed.
      if (vol.spec.removing) push({ type: 'delete', key: `delete:${vol.id}`, volume: vol, why: 'removed' });
      continue;
    }
    const lost = (id: string) => {
      const n = nodes.get(id);
      return !n || n.status.state === 'down';
    };
    // Detach what no task on its node needs and the node let go of (or cannot hold any more).
    for (const a of vol.status.attachments) {
      if (need.has(a.nodeId) && !lost(a.nodeId)) continue;
      // 'published' and wanted by no task: the node never took it (its task stopped first); a
      // stage racing with the detach is refused by the driver (it reads the attachment back).
      if (a.state === 'released' || a.state === 'unpublishing' || a.state === 'published' || lost(a.nodeId)) {
        const why = a.state === 'unpublishing' ? 'finishing a detach' : lost(a.nodeId) ? `node ${nodes.get(a.nodeId)?.status.hostname ?? a.nodeId} is ${nodes.has(a.nodeId) ? 'down' : 'gone'}` : a.state === 'published' ? 'no task wants it there' : 'released by its node';
        push({ type: 'unpublish', key: `unpublish:${vol.id}:${a.nodeId}`, volume: vol, attachment: a, why });
      }
    }
    // Attach where tasks need it.
    const waits: { nodeId: string; message: string }[] = [];
    const note = (nodeId: string, message: string) => waits.push({ nodeId, message });
    if (!vol.spec.removing) {
      for (const [nodeId, ts] of need) {
        if (lost(nodeId)) continue;
        const a = vol.status.attachments.find((x) => x.nodeId === nodeId);
        if (a?.state === 'released') {
          push({ type: 'reuse', key: `reuse:${vol.id}:${nodeId}`, volume: vol, nodeId });
          continue;
        }
        if (a) continue; // attached (or being detached: attached again after)
        if (singleNode(vol.spec.access)) {
          const other = vol.status.attachments.find((x) => x.nodeId !== nodeId && !lost(x.nodeId));
          if (other) {
            note(nodeId, `waiting for node ${nodes.get(other.nodeId)?.status.hostname ?? other.nodeId} to release it (${other.state})`);
            continue;
          }
        }
        const plugin = csiPlugin(nodes.get(nodeId)?.status.description, vol.spec.driver);
        if (!plugin) {
          note(nodeId, `driver ${vol.spec.driver} is not registered on the node`);
          continue;
        }
        void ts;
        const key = `publish:${vol.id}:${nodeId}`;
        const failed = v.lastError?.get(key);
        if (failed) note(nodeId, failed);
        push({ type: 'publish', key, volume: vol, nodeId, csiNodeId: plugin.csi!.nodeId, readonly: readOnlyAccess(vol.spec.access) });
      }
    }
    out.waiting.set(vol.id, waits);
    // Delete: removed, or a claim whose service is gone (and not taken over) with reclaim delete.
    const claim = vol.spec.claim;
    const orphanClaim = !!claim && !services.has(claim.serviceId) && !claimed.has(vol.name);
    const takenBack = orphanClaim && servicesByName.has(claim!.serviceName) && mountsOf(servicesByName.get(claim!.serviceName)!.spec.task).some((m) => m.class && m.name === claim!.mount);
    const reclaim = orphanClaim && !takenBack && (vol.spec.reclaim ?? 'delete') === 'delete';
    if ((vol.spec.removing || reclaim) && !held.has(vol.name) && vol.status.attachments.length === 0) {
      push({ type: 'delete', key: `delete:${vol.id}`, volume: vol, why: vol.spec.removing ? 'removed' : `its service ${claim!.serviceName} was removed (reclaim delete)` });
    }
  }
  out.actions.sort((a, b) => ORDER[a.type] - ORDER[b.type]);
  return out;
}
