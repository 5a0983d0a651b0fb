// Volumes and volume classes as the replicated store keeps them, and the mounts a service's
// tasks make of them. A volume is provisioned (CSI CreateVolume) and attached to nodes
// (ControllerPublishVolume) by the volume controller on the leader; its attachments say, per node,
// how far the node's agent got (staged and in use, or released). A mount names a volume
// (`source`), or a class: then each slot of the service gets a volume of its own, named after the
// service and the slot (`web.1-data`), kept across reschedulings and updates (a StatefulSet's
// claims, simplified). Plain data, as everything in the store.
import type { AccessModeName } from '../../proto/csi/v1/csi.js';
import type { StoreObject } from '../store/types.js';
import { isTerminal, type TaskObject, type TaskTemplate } from '../services/model.js';

/**
 * How a volume may be used, by the CO's rules:
 * - single-node-writer: one task at a time reads and writes it (Swarm's cluster volumes with
 *   sharing "none"); it follows that task from node to node.
 * - single-node-reader-only: read-only, any number of tasks, all on one node.
 * - multi-node-reader-only: read-only, any number of tasks on any nodes.
 * - multi-node-multi-writer: any number of tasks on any nodes, read-write (a driver that offers
 *   it: a network filesystem; the built-in block driver refuses it).
 */
export const ACCESS_MODES = ['single-node-writer', 'single-node-reader-only', 'multi-node-reader-only', 'multi-node-multi-writer'] as const;
export type AccessName = (typeof ACCESS_MODES)[number];

/** The CSI access mode each of ours asks the driver for. */
export const CSI_ACCESS: Record<AccessName, AccessModeName> = {
  'single-node-writer': 'SINGLE_NODE_WRITER',
  'single-node-reader-only': 'SINGLE_NODE_READER_ONLY',
  'multi-node-reader-only': 'MULTI_NODE_READER_ONLY',
  'multi-node-multi-writer': 'MULTI_NODE_MULTI_WRITER',
};

export const isAccess = (a: unknown): a is AccessName => typeof a === 'string' && (ACCESS_MODES as readonly string[]).includes(a);
/** One task at a time. */
export const exclusive = (a: AccessName) => a === 'single-node-writer';
/** All its tasks on one node. */
export const singleNode = (a: AccessName) => a === 'single-node-writer' || a === 'single-node-reader-only';
export const readOnlyAccess = (a: AccessName) => a === 'single-node-reader-only' || a === 'multi-node-reader-only';

export type Reclaim = 'delete' | 'retain';

/** A volume mount of a task's main container. */
export interface Mount {
  type: 'volume';
  /** Absolute path in the container. */
  target: string;
  readonly: boolean;
  /** A named volume (`shoal volume create`). */
  source?: string;
  /** A class: each slot gets a volume of its own, `<service>.<slot>-<name>`. */
  class?: string;
  /** The claim's size (class mounts). */
  sizeBytes?: number;
  /** The claim's name suffix (class mounts): `source=` given with a class, else the target's last element. */
  name?: string;
}

export interface Claim {
  serviceId: string;
  serviceName: string;
  slot: number;
  /** The mount's claim suffix. */
  mount: string;
}

export interface VolumeSpec {
  /** The CSI driver (its registered name). */
  driver: string;
  /** What the volume was asked to hold; `expand` raises it. */
  sizeBytes: number;
  access: AccessName;
  /** Handed to CreateVolume as the driver's parameters. */
  params: Record<string, string>;
  /** The class it was provisioned from (claims, or `volume create --class`). */
  class?: string;
  /** What `service rm` does to a claim: delete it, or keep it (a service of the same name takes it again). */
  reclaim?: Reclaim;
  claim?: Claim;
  /** A snapshot id to create it from (CreateVolume's content source). */
  fromSnapshot?: string;
  /** `volume rm`: the controller unpublishes and deletes it (once nothing uses it). */
  removing?: boolean;
}

export type AttachmentState =
  /** ControllerPublishVolume done; the node has not said it staged it yet. */
  | 'published'
  /** The node's agent holds it (staging or staged). */
  | 'in-use'
  /** The node's agent unstaged it: it may be detached. */
  | 'released'
  /** The controller is detaching it (ControllerUnpublishVolume): never handed to an agent again. */
  | 'unpublishing';

export interface Attachment {
  nodeId: string;
  /** The node's CSI node id for the driver (NodeGetInfo), what ControllerPublishVolume was given. */
  csiNodeId: string;
  state: AttachmentState;
  /** publish_context from ControllerPublishVolume, for NodeStage/NodePublish. */
  context: Record<string, string>;
  readonly: boolean;
  since: number;
}

export interface SnapshotInfo {
  name: string;
  id: string;
  sizeBytes: number;
  createdAt: number;
  ready: boolean;
}

export type VolumeState =
  /** Not provisioned yet (CreateVolume pending or retrying). */
  | 'pending'
  | 'created'
  /** CreateVolume refused it for good (bad parameters, size out of range): `volume rm` it. */
  | 'failed';

export interface VolumeStatus {
  state: VolumeState;
  /** The latest problem or what it waits for ('' when all is well). */
  message: string;
  createdAt: number;
  csiId?: string;
  capacityBytes?: number;
  /** volume_context from CreateVolume, for the node calls. */
  context?: Record<string, string>;
  /** accessible_topology from CreateVolume: a node must match one of these (all its segments). */
  topology?: Record<string, string>[];
  attachments: Attachment[];
  /** Attachments the driver refused for now (FAILED_PRECONDITION: still held or being fenced), by node. */
  waiting?: { nodeId: string; message: string; since: number }[];
  snapshots?: SnapshotInfo[];
}

export type VolumeObject = StoreObject<VolumeSpec, VolumeStatus>;

export interface VolumeClassSpec {
  driver: string;
  params: Record<string, string>;
  reclaim: Reclaim;
  access: AccessName;
}

export type VolumeClassObject = StoreObject<VolumeClassSpec, { createdAt: number }>;

export const DEFAULT_DRIVER = 'block.csi.shoal.io';
export const DEFAULT_SIZE = 1024 ** 3;

/** The volume a class mount of `serviceName`'s slot uses. */
export function claimName(serviceName: string, slot: number, m: Mount): string {
  return `${serviceName}.${slot}-${m.name}`;
}

/** The volume a task's mount uses: the named one, or its slot's claim. */
export function volumeNameFor(t: Pick<TaskObject, 'spec'>, m: Mount): string {
  return m.source ?? claimName(t.spec.serviceName, t.spec.slot, m);
}

export function mountsOf(tpl: TaskTemplate | undefined): Mount[] {
  return tpl?.mounts ?? [];
}

/**
 * A task that holds (or is about to hold) its volumes on its node: placed, and not ended. Its
 * agent releases them once its containers are stopped, and says so (the attachment's state).
 */
export function holdsVolumes(t: TaskObject): boolean {
  return !!t.nodeId && t.status.state !== 'new' && t.status.state !== 'pending' && !isTerminal(t.status.state);
}

/**
 * A task that holds its volumes and is still wanted running: what keeps a volume attached to a
 * node, or attaches it there. A task being stopped may still hold them, but once its node says it
 * released them they may be detached (the node's word on what it holds is the truth).
 */
export function wantsVolumes(t: TaskObject): boolean {
  return holdsVolumes(t) && t.spec.desiredState === 'running';
}

/** Names of the volumes `t` mounts. */
export function volumeNamesOf(t: TaskObject): string[] {
  return mountsOf(t.spec.template).map((m) => volumeNameFor(t, m));
}
