// The CSI v1 contract for TypeScript: the three services loaded from csi.proto, the spec's enum
// numbers by name, and the shapes of the messages as grpc-js hands them over (field names as in
// the .proto; 64-bit integers as numbers, see proto/load.ts). Drivers and clients import these,
// never each other.
import type * as grpc from '@grpc/grpc-js';
import { loadProto } from '../../load.js';

export interface CsiServices {
  Identity: grpc.ServiceClientConstructor;
  Controller: grpc.ServiceClientConstructor;
  Node: grpc.ServiceClientConstructor;
}

let services: CsiServices | undefined;

/** The csi.v1 Identity, Controller and Node service definitions (loaded once). */
export function csiServices(): CsiServices {
  if (!services) {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const v1 = (loadProto('csi/v1/csi.proto') as any).csi.v1;
    services = { Identity: v1.Identity, Controller: v1.Controller, Node: v1.Node };
  }
  return services;
}

/** VolumeCapability.AccessMode.Mode */
export const AccessMode = {
  UNKNOWN: 0,
  SINGLE_NODE_WRITER: 1,
  SINGLE_NODE_READER_ONLY: 2,
  MULTI_NODE_READER_ONLY: 3,
  MULTI_NODE_SINGLE_WRITER: 4,
  MULTI_NODE_MULTI_WRITER: 5,
  SINGLE_NODE_SINGLE_WRITER: 6,
  SINGLE_NODE_MULTI_WRITER: 7,
} as const;
export type AccessModeName = keyof typeof AccessMode;

/** PluginCapability.Service.Type */
export const PluginServiceType = { UNKNOWN: 0, CONTROLLER_SERVICE: 1, VOLUME_ACCESSIBILITY_CONSTRAINTS: 2, GROUP_CONTROLLER_SERVICE: 3, SNAPSHOT_METADATA_SERVICE: 4 } as const;
/** PluginCapability.VolumeExpansion.Type */
export const VolumeExpansionType = { UNKNOWN: 0, ONLINE: 1, OFFLINE: 2 } as const;

/** ControllerServiceCapability.RPC.Type */
export const ControllerRpc = {
  UNKNOWN: 0,
  CREATE_DELETE_VOLUME: 1,
  PUBLISH_UNPUBLISH_VOLUME: 2,
  LIST_VOLUMES: 3,
  GET_CAPACITY: 4,
  CREATE_DELETE_SNAPSHOT: 5,
  LIST_SNAPSHOTS: 6,
  CLONE_VOLUME: 7,
  PUBLISH_READONLY: 8,
  EXPAND_VOLUME: 9,
  LIST_VOLUMES_PUBLISHED_NODES: 10,
  VOLUME_CONDITION: 11,
  GET_VOLUME: 12,
  SINGLE_NODE_MULTI_WRITER: 13,
} as const;
export type ControllerRpcName = keyof typeof ControllerRpc;

/** NodeServiceCapability.RPC.Type */
export const NodeRpc = {
  UNKNOWN: 0,
  STAGE_UNSTAGE_VOLUME: 1,
  GET_VOLUME_STATS: 2,
  EXPAND_VOLUME: 3,
  VOLUME_CONDITION: 4,
  SINGLE_NODE_MULTI_WRITER: 5,
  VOLUME_MOUNT_GROUP: 6,
} as const;
export type NodeRpcName = keyof typeof NodeRpc;

/** VolumeUsage.Unit */
export const UsageUnit = { UNKNOWN: 0, BYTES: 1, INODES: 2 } as const;

/** Returns the name of enum value `n` in one of the tables above, or `UNKNOWN(n)`. */
export function enumName(table: Record<string, number>, n: number): string {
  for (const [k, v] of Object.entries(table)) if (v === n) return k;
  return `UNKNOWN(${n})`;
}

export type StringMap = Record<string, string>;

export interface Topology { segments: StringMap }
export interface CapacityRange { required_bytes?: number; limit_bytes?: number }

export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: { fs_type?: string; mount_flags?: string[]; volume_mount_group?: string } | null;
  access_mode?: { mode: number } | null;
  access_type?: 'block' | 'mount';
}

export interface VolumeContentSource {
  snapshot?: { snapshot_id: string } | null;
  volume?: { volume_id: string } | null;
  type?: 'snapshot' | 'volume';
}

export interface Volume {
  capacity_bytes: number;
  volume_id: string;
  volume_context: StringMap;
  content_source: VolumeContentSource | null;
  accessible_topology: Topology[];
}

export interface Snapshot {
  size_bytes: number;
  snapshot_id: string;
  source_volume_id: string;
  creation_time: { seconds: number; nanos: number } | null;
  ready_to_use: boolean;
  group_snapshot_id?: string;
}

export interface VolumeCondition { abnormal: boolean; message: string }
export interface VolumeUsage { available: number; total: number; used: number; unit: number }
