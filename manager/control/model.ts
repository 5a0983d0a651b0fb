// The cluster's objects as shoal stores them in the replicated store: one `cluster` object (CA,
// join tokens, gossip key, removed nodes) and one `node` object per node. Helpers here read and
// build them so the CA, the control API, the dispatcher and the authorizer agree on the shape.
import { createHash, randomBytes } from 'node:crypto';
import type { ObjectInput, StoreObject } from '../store/types.js';
import type { Role } from '../ca/pki.js';

export type Availability = 'active' | 'pause' | 'drain';
export const AVAILABILITIES: readonly Availability[] = ['active', 'pause', 'drain'];
export type NodeState = 'ready' | 'down' | 'unknown';

export interface TokenRecord {
  /** sha256 hex of the secret: what the join check compares against. */
  hash: string;
  /** The whole token sealed (AES-256-GCM) under a key derived from the CA key, so managers can show it again. */
  sealed: string;
}

export interface ClusterSpec {
  /** The CA key sealed under the data key (ca/ca-key.ts); `keyPem`: in clear, clusters from before. */
  ca: { certPem: string; keySealed?: string; keyPem?: string };
  /** Autolock on: the unlock key sealed under the data key, so every manager can seal its data key
   * file under it (secrets/autolock.ts); its id says which key that is. */
  autolock?: { sealedKey: string; keyId: string };
  tokens: { worker: TokenRecord; manager: TokenRecord };
  /** base64 AES key handed to nodes for gossip. */
  gossipKey: string;
  certDays: number;
  /** Certificate validity in seconds when set (shoal init --cert-expiry); else certDays. */
  certSeconds?: number;
  /** node id -> time (ms) until which its certificates are refused (their latest expiry). */
  removed: Record<string, number>;
}

export interface RaftInfo {
  id: number;
  addr: string;
}

export interface NodeSpec {
  desiredRole: Role;
  availability: Availability;
}

export interface NodeStatus {
  role: Role;
  state: NodeState;
  message: string;
  hostname: string;
  addr: string;
  gossipAddr: string;
  certSerial: string;
  certNotAfter: number;
  /** PEM of the latest issued certificate (public). */
  certPem: string;
  /** Set for managers that joined raft. */
  raft?: RaftInfo;
  /** What the agent reports of its host (from its session). */
  description?: NodeDescription;
  /** Managers: the raft term this one led, from when (written by the new leader: leader/leadership.ts). */
  leadership?: { term: number; since: number };
}

export interface NodeDescription {
  cpuMillis: number;
  memoryBytes: number;
  runtimeName: string;
  runtimeVersion: string;
  os: string;
  arch: string;
  /** A manager restarted under autolock and waiting for `shoal unlock`. */
  locked?: boolean;
  /** Plugins registered through the node's plugins_registry/ (kubelet-style registration). */
  plugins?: NodePlugin[];
  /** Sockets the node refused to register, and why. */
  pluginRefusals?: { socket: string; reason: string; at: string }[];
}

export interface NodePlugin {
  kind: string;
  name: string;
  endpoint: string;
  versions: string[];
  version: string;
  registeredAt: string;
  /** CSI plugins: the node id and topology NodeGetInfo gave (what ControllerPublishVolume and placement need). */
  csi?: { nodeId: string; topology: Record<string, string>; maxVolumes: number; vendorVersion: string };
}

export type NodeObject = StoreObject<NodeSpec, NodeStatus>;
export type ClusterObject = StoreObject<ClusterSpec, null>;

export function nodeInput(o: NodeObject, patch: { spec?: Partial<NodeSpec>; status?: Partial<NodeStatus>; labels?: Record<string, string> }): ObjectInput {
  return {
    kind: 'node',
    id: o.id,
    name: o.name,
    labels: patch.labels ?? o.labels,
    spec: { ...o.spec, ...(patch.spec ?? {}) },
    status: { ...o.status, ...(patch.status ?? {}) },
  };
}

export function clusterInput(o: ClusterObject, spec: Partial<ClusterSpec>): ObjectInput {
  return { kind: 'cluster', id: o.id, name: o.name, labels: o.labels, spec: { ...o.spec, ...spec }, status: null };
}

/** A fresh raft id for one membership: raft never re-admits a removed id, so a node promoted
 * again after a demotion needs a new one (48 random bits: safe as a JS number). */
export function newRaftId(): number {
  const n = randomBytes(6).readUIntBE(0, 6);
  return n === 0 ? 1 : n;
}

/** The raft id of a manager from before ids were chosen per membership: derived from its node id. */
export function raftIdOf(nodeId: string): number {
  // 48 bits of the id's SHA-256: safe as a JS number, collisions negligible for manager counts.
  const n = createHash('sha256').update(nodeId).digest().readUIntBE(0, 6);
  return n === 0 ? 1 : n;
}
