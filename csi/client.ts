// CSI client helpers for shoal's manager (controller calls: Provision = CreateVolume, Attach =
// ControllerPublishVolume, and their reverses) and for the node's agent (Stage + Publish, and
// Unpublish + Unstage). Any CSI v1 driver works behind them, the built-in one included.
//
// Every CSI call is idempotent, so a call that failed in a way that may not have reached the
// driver, or may not have finished (DEADLINE_EXCEEDED, UNAVAILABLE), or that the driver turned
// away because another call for the volume was in flight (ABORTED), is retried with exponential
// backoff within the call's overall deadline. Errors that ask the caller to change something
// (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, OUT_OF_RANGE,
// RESOURCE_EXHAUSTED, UNIMPLEMENTED, ...) are returned at once, as CsiCallError with the code.
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import {
  AccessMode, ControllerRpc, enumName, NodeRpc, PluginServiceType, VolumeExpansionType, csiServices,
  type AccessModeName, type CapacityRange, type ControllerRpcName, type NodeRpcName, type Snapshot, type StringMap, type Topology, type Volume, type VolumeCapability, type VolumeUsage, type VolumeCondition,
} from '../proto/csi/v1/csi.js';

/** What swarmkit uses for CSI calls (manager and agent alike). */
export const DEFAULT_TIMEOUT_MS = 15_000;
const RETRIED = new Set([grpc.status.DEADLINE_EXCEEDED, grpc.status.UNAVAILABLE, grpc.status.ABORTED]);

export class CsiCallError extends Error {
  constructor(readonly method: string, readonly code: grpc.status, readonly details: string, readonly attempts: number) {
    super(`${method}: ${grpc.status[code] ?? code}: ${details}${attempts > 1 ? ` (after ${attempts} attempts)` : ''}`);
  }
  get codeName(): string { return grpc.status[this.code] ?? String(this.code); }
}

export interface CallOptions {
  /** Overall deadline for the call including retries (default 15 s). */
  timeoutMs?: number;
  /** Deadline of one attempt (default: the overall one). */
  attemptTimeoutMs?: number;
  /** Retry DEADLINE_EXCEEDED / UNAVAILABLE / ABORTED (default true; every CSI call is idempotent). */
  retry?: boolean;
}

export interface PluginCapabilities {
  controllerService: boolean;
  accessibilityConstraints: boolean;
  expansion: 'ONLINE' | 'OFFLINE' | undefined;
  controller: Set<ControllerRpcName>;
  node: Set<NodeRpcName>;
}

/** The capability a volume is used with: a mounted filesystem in an access mode. */
export function mountCapability(mode: AccessModeName, fsType = '', mountFlags: string[] = []): VolumeCapability {
  return { mount: { fs_type: fsType, mount_flags: mountFlags, volume_mount_group: '' }, access_mode: { mode: AccessMode[mode] } };
}

/** Where the agent stages and publishes a volume under its state directory (one staging path per volume, one target per consumer). */
export function volumePaths(stateDir: string, driver: string, volumeId: string, consumer: string): { staging: string; target: string } {
  const h = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 24);
  const base = join(stateDir, 'csi', driver.replace(/[^A-Za-z0-9._-]/g, '_'));
  return { staging: join(base, 'staging', h(volumeId)), target: join(base, 'publish', h(volumeId), consumer.replace(/[^A-Za-z0-9._-]/g, '_')) };
}

/** Accepts `unix:///path.sock` or `/path.sock` (the plugin registration's form). */
export function grpcAddress(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return endpoint;
  if (endpoint.startsWith('/')) return `unix://${endpoint}`;
  throw new Error(`CSI endpoint ${JSON.stringify(endpoint)} must be a Unix socket: unix:///path.sock or /path.sock`);
}

export class CsiClient {
  private readonly identity: grpc.Client;
  private readonly controller: grpc.Client;
  private readonly node: grpc.Client;
  private caps: PluginCapabilities | undefined;

  constructor(readonly endpoint: string, readonly defaults: CallOptions = {}) {
    const s = csiServices();
    const addr = grpcAddress(endpoint);
    // One channel for the three services (the driver serves them on one socket), with its own
    // connection: grpc-js would otherwise share one with any other client of the same socket,
    // including one still backing off from before the driver was up.
    this.identity = new s.Identity(addr, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    const channelOverride = this.identity.getChannel();
    this.controller = new s.Controller(addr, grpc.credentials.createInsecure(), { channelOverride });
    this.node = new s.Node(addr, grpc.credentials.createInsecure(), { channelOverride });
  }

  close(): void { this.identity.close(); }

  /** One unary call with the retry policy above. */
  async call<T>(svc: 'identity' | 'controller' | 'node', method: string, req: object, o: CallOptions = {}): Promise<T> {
    const opts = { ...this.defaults, ...o };
    const total = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const end = Date.now() + total;
    const client = this[svc] as unknown as Record<string, (r: object, md: grpc.Metadata, co: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: T) => void) => void>;
    const fn = client[method];
    if (typeof fn !== 'function') throw new Error(`csi.v1 has no ${svc} method ${method}`);
    let backoff = 100;
    for (let attempt = 1; ; attempt++) {
      const left = end - Date.now();
      const deadline = new Date(Date.now() + Math.max(1, Math.min(left, opts.attemptTimeoutMs ?? left)));
      try {
        // waitForReady: a driver that is (re)starting is waited for, within the deadline.
        return await new Promise<T>((resolve, reject) => fn.call(client, req, new grpc.Metadata({ waitForReady: true }), { deadline }, (e, r) => (e ? reject(e) : resolve(r))));
      } catch (e) {
        const err = e as grpc.ServiceError;
        const code = typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN;
        const retry = (opts.retry ?? true) && RETRIED.has(code) && Date.now() + backoff < end;
        if (!retry) throw new CsiCallError(method, code, err.details || err.message, attempt);
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  // ---- Identity ----

  async pluginInfo(o?: CallOptions): Promise<{ name: string; vendor_version: string; manifest: StringMap }> { return this.call('identity', 'GetPluginInfo', {}, o); }

  /** Probe: true when ready (an absent `ready` means ready, as the spec says). */
  async probe(o?: CallOptions): Promise<boolean> {
    const r = await this.call<{ ready: { value: boolean } | null }>('identity', 'Probe', {}, o);
    return r.ready ? r.ready.value : true;
  }

  /** Plugin, controller and node capabilities by name (cached; `refresh` re-reads them). */
  async capabilities(refresh = false, o?: CallOptions): Promise<PluginCapabilities> {
    if (this.caps && !refresh) return this.caps;
    type Cap = { service?: { type: number } | null; volume_expansion?: { type: number } | null };
    const p = await this.call<{ capabilities: Cap[] }>('identity', 'GetPluginCapabilities', {}, o);
    const services = new Set(p.capabilities.map((c) => c.service?.type).filter((t) => t !== undefined));
    const exp = p.capabilities.find((c) => c.volume_expansion)?.volume_expansion?.type;
    const controllerService = services.has(PluginServiceType.CONTROLLER_SERVICE);
    const controller = new Set<ControllerRpcName>();
    if (controllerService) {
      const c = await this.call<{ capabilities: { rpc: { type: number } | null }[] }>('controller', 'ControllerGetCapabilities', {}, o);
      for (const x of c.capabilities) if (x.rpc) controller.add(enumName(ControllerRpc, x.rpc.type) as ControllerRpcName);
    }
    const node = new Set<NodeRpcName>();
    try {
      const n = await this.call<{ capabilities: { rpc: { type: number } | null }[] }>('node', 'NodeGetCapabilities', {}, o);
      for (const x of n.capabilities) if (x.rpc) node.add(enumName(NodeRpc, x.rpc.type) as NodeRpcName);
    } catch (e) {
      // A controller-only plugin has no Node service.
      if (!(e instanceof CsiCallError && e.code === grpc.status.UNIMPLEMENTED)) throw e;
    }
    this.caps = {
      controllerService,
      accessibilityConstraints: services.has(PluginServiceType.VOLUME_ACCESSIBILITY_CONSTRAINTS),
      expansion: exp === VolumeExpansionType.ONLINE ? 'ONLINE' : exp === VolumeExpansionType.OFFLINE ? 'OFFLINE' : undefined,
      controller, node,
    };
    return this.caps;
  }

  // ---- Controller (the manager's volume controller, on the leader) ----

  async createVolume(a: { name: string; capacity?: CapacityRange; capabilities: VolumeCapability[]; parameters?: StringMap; secrets?: StringMap; fromSnapshot?: string; requisite?: Topology[]; preferred?: Topology[] }, o?: CallOptions): Promise<Volume> {
    const r = await this.call<{ volume: Volume }>('controller', 'CreateVolume', {
      name: a.name, capacity_range: a.capacity ?? null, volume_capabilities: a.capabilities, parameters: a.parameters ?? {}, secrets: a.secrets ?? {},
      volume_content_source: a.fromSnapshot ? { snapshot: { snapshot_id: a.fromSnapshot } } : null,
      accessibility_requirements: a.requisite || a.preferred ? { requisite: a.requisite ?? [], preferred: a.preferred ?? [] } : null,
    }, o);
    return r.volume;
  }

  async deleteVolume(volumeId: string, secrets: StringMap = {}, o?: CallOptions): Promise<void> { await this.call('controller', 'DeleteVolume', { volume_id: volumeId, secrets }, o); }

  /**
   * Attach: returns the publish_context to hand to the node. Plugins without
   * PUBLISH_UNPUBLISH_VOLUME need no attach: then it returns {} without a call.
   */
  async controllerPublish(a: { volumeId: string; nodeId: string; capability: VolumeCapability; readonly?: boolean; volumeContext?: StringMap; secrets?: StringMap }, o?: CallOptions): Promise<StringMap> {
    if (!(await this.capabilities()).controller.has('PUBLISH_UNPUBLISH_VOLUME')) return {};
    const r = await this.call<{ publish_context: StringMap }>('controller', 'ControllerPublishVolume', {
      volume_id: a.volumeId, node_id: a.nodeId, volume_capability: a.capability, readonly: !!a.readonly, volume_context: a.volumeContext ?? {}, secrets: a.secrets ?? {},
    }, o);
    return r.publish_context;
  }

  /** Detach (from `nodeId`, or from every node when it is empty). */
  async controllerUnpublish(volumeId: string, nodeId: string, secrets: StringMap = {}, o?: CallOptions): Promise<void> {
    if (!(await this.capabilities()).controller.has('PUBLISH_UNPUBLISH_VOLUME')) return;
    await this.call('controller', 'ControllerUnpublishVolume', { volume_id: volumeId, node_id: nodeId, secrets }, o);
  }

  async listVolumes(o?: CallOptions): Promise<{ volume: Volume; publishedNodeIds: string[] }[]> {
    const out: { volume: Volume; publishedNodeIds: string[] }[] = [];
    let token = '';
    do {
      const r = await this.call<{ entries: { volume: Volume; status: { published_node_ids: string[] } | null }[]; next_token: string }>('controller', 'ListVolumes', { max_entries: 0, starting_token: token }, o);
      for (const e of r.entries) out.push({ volume: e.volume, publishedNodeIds: e.status?.published_node_ids ?? [] });
      token = r.next_token;
    } while (token);
    return out;
  }

  async capacity(a: { capabilities?: VolumeCapability[]; parameters?: StringMap; topology?: Topology } = {}, o?: CallOptions): Promise<{ available: number; maximumVolumeSize?: number; minimumVolumeSize?: number }> {
    const r = await this.call<{ available_capacity: number; maximum_volume_size: { value: number } | null; minimum_volume_size: { value: number } | null }>('controller', 'GetCapacity', {
      volume_capabilities: a.capabilities ?? [], parameters: a.parameters ?? {}, accessible_topology: a.topology ?? null,
    }, o);
    return { available: r.available_capacity, maximumVolumeSize: r.maximum_volume_size?.value, minimumVolumeSize: r.minimum_volume_size?.value };
  }

  async createSnapshot(volumeId: string, name: string, o?: CallOptions): Promise<Snapshot> {
    return (await this.call<{ snapshot: Snapshot }>('controller', 'CreateSnapshot', { source_volume_id: volumeId, name, parameters: {}, secrets: {} }, o)).snapshot;
  }

  async deleteSnapshot(snapshotId: string, o?: CallOptions): Promise<void> { await this.call('controller', 'DeleteSnapshot', { snapshot_id: snapshotId, secrets: {} }, o); }

  async listSnapshots(filter: { volumeId?: string; snapshotId?: string } = {}, o?: CallOptions): Promise<Snapshot[]> {
    const out: Snapshot[] = [];
    let token = '';
    do {
      const r = await this.call<{ entries: { snapshot: Snapshot }[]; next_token: string }>('controller', 'ListSnapshots', { max_entries: 0, starting_token: token, source_volume_id: filter.volumeId ?? '', snapshot_id: filter.snapshotId ?? '' }, o);
      out.push(...r.entries.map((e) => e.snapshot));
      token = r.next_token;
    } while (token);
    return out;
  }

  async controllerExpand(volumeId: string, requiredBytes: number, capability?: VolumeCapability, o?: CallOptions): Promise<{ capacityBytes: number; nodeExpansionRequired: boolean }> {
    const r = await this.call<{ capacity_bytes: number; node_expansion_required: boolean }>('controller', 'ControllerExpandVolume', { volume_id: volumeId, capacity_range: { required_bytes: requiredBytes, limit_bytes: 0 }, volume_capability: capability ?? null, secrets: {} }, o);
    return { capacityBytes: r.capacity_bytes, nodeExpansionRequired: r.node_expansion_required };
  }

  // ---- Node (the agent, on the node that runs the task) ----

  async nodeInfo(o?: CallOptions): Promise<{ nodeId: string; maxVolumesPerNode: number; topology: StringMap }> {
    const r = await this.call<{ node_id: string; max_volumes_per_node: number; accessible_topology: Topology | null }>('node', 'NodeGetInfo', {}, o);
    return { nodeId: r.node_id, maxVolumesPerNode: r.max_volumes_per_node, topology: r.accessible_topology?.segments ?? {} };
  }

  /**
   * Stage (when the plugin stages) and publish: afterwards the volume is mounted at `target`.
   * Safe to repeat, e.g. after the agent restarted halfway.
   */
  async mountVolume(a: { volumeId: string; staging: string; target: string; capability: VolumeCapability; readonly?: boolean; publishContext?: StringMap; volumeContext?: StringMap; secrets?: StringMap }, o?: CallOptions): Promise<void> {
    const stages = (await this.capabilities()).node.has('STAGE_UNSTAGE_VOLUME');
    const common = { volume_id: a.volumeId, publish_context: a.publishContext ?? {}, volume_capability: a.capability, volume_context: a.volumeContext ?? {}, secrets: a.secrets ?? {} };
    if (stages) await this.call('node', 'NodeStageVolume', { ...common, staging_target_path: a.staging }, o);
    await this.call('node', 'NodePublishVolume', { ...common, staging_target_path: stages ? a.staging : '', target_path: a.target, readonly: !!a.readonly }, o);
  }

  /** Unpublish, then unstage (when the plugin stages and `unstage` is not false: the last consumer on the node). Safe to repeat. */
  async unmountVolume(a: { volumeId: string; staging: string; target: string; unstage?: boolean }, o?: CallOptions): Promise<void> {
    await this.call('node', 'NodeUnpublishVolume', { volume_id: a.volumeId, target_path: a.target }, o);
    if (a.unstage !== false && (await this.capabilities()).node.has('STAGE_UNSTAGE_VOLUME')) {
      await this.call('node', 'NodeUnstageVolume', { volume_id: a.volumeId, staging_target_path: a.staging }, o);
    }
  }

  async volumeStats(volumeId: string, volumePath: string, staging = '', o?: CallOptions): Promise<{ bytes?: VolumeUsage; inodes?: VolumeUsage; condition?: VolumeCondition }> {
    const r = await this.call<{ usage: VolumeUsage[]; volume_condition: VolumeCondition | null }>('node', 'NodeGetVolumeStats', { volume_id: volumeId, volume_path: volumePath, staging_target_path: staging }, o);
    return { bytes: r.usage.find((u) => u.unit === 1), inodes: r.usage.find((u) => u.unit === 2), condition: r.volume_condition ?? undefined };
  }

  async nodeExpand(volumeId: string, volumePath: string, requiredBytes: number, staging = '', o?: CallOptions): Promise<number> {
    const r = await this.call<{ capacity_bytes: number }>('node', 'NodeExpandVolume', { volume_id: volumeId, volume_path: volumePath, staging_target_path: staging, capacity_range: { required_bytes: requiredBytes, limit_bytes: 0 }, volume_capability: null, secrets: {} }, o);
    return r.capacity_bytes;
  }
}

export { AccessMode, enumName };
