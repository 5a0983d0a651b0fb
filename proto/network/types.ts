// TypeScript shapes of proto/network/network.proto's messages (as @grpc/proto-loader gives them:
// field names as in the .proto, enums as numbers, defaults filled in), and a promise client.
// Clients (shoal-cni, the agent, tests) import this; the plugin's implementation lives in
// overlay-net/ and is never imported by them.
import * as grpc from '@grpc/grpc-js';
import { loadProto } from '../load.js';

export const EndpointMode = { VIP: 0, DNSRR: 1 } as const;
export const Protocol = { TCP: 0, UDP: 1 } as const;
export const PublishMode = { INGRESS: 0, HOST: 1 } as const;

export interface PodRef {
  container_id: string;
  netns: string;
  ifname: string;
  args: Record<string, string>;
  pod_annotations: Record<string, string>;
  network_name: string;
  cni_version: string;
  config_json: string;
}
export interface Interface { name: string; mac: string; sandbox: string; mtu: number }
export interface IPConfig { address: string; gateway: string; interface: number }
export interface Route { dst: string; gw: string }
export interface DNS { nameservers: string[]; domain: string; search: string[]; options: string[] }
export interface Result { cni_version: string; interfaces: Interface[]; ips: IPConfig[]; routes: Route[]; dns: DNS }
export interface AddResponse { result: Result; task_id: string }
export interface StatusResponse { ready: boolean; message: string; state_version: number; node_id: string; dns_servers: string[] }
export interface ValidAttachment { container_id: string; ifname: string }
export interface GCResponse { removed: ValidAttachment[] }

export interface NodeSubnet { node_id: string; subnet: string }
export interface Network { id: string; name: string; vni: number; subnet: string; internal: boolean; node_subnets: NodeSubnet[] }
export interface Node { id: string; underlay_addr: string }
export interface NetworkAddress { network_id: string; address: string }
export interface PublishedPort { protocol: number; target_port: number; published_port: number; mode: number }
export interface VirtualIP { network_id: string; address: string }
export interface Backend { task_id: string; node_id: string; ready: boolean; addresses: NetworkAddress[]; name: string }
export interface Service {
  id: string;
  name: string;
  endpoint_mode: number;
  vips: VirtualIP[];
  network_ids: string[];
  ports: PublishedPort[];
  backends: Backend[];
}
export interface Attachment { task_id: string; pod_namespace: string; pod_name: string; networks: NetworkAddress[] }
export interface ClusterState {
  node_id: string;
  networks: Network[];
  nodes: Node[];
  services: Service[];
  attachments: Attachment[];
  vip_range: string;
  dns_upstreams: string[];
}
export interface UpdateStateRequest {
  full: boolean;
  version: number;
  base_version: number;
  state: ClusterState;
  removed_networks: string[];
  removed_nodes: string[];
  removed_services: string[];
  removed_attachments: string[];
}

/** Error metadata key carrying the CNI error code (spec "Error codes") a failed call maps to. */
export const CNI_CODE_METADATA = 'shoal-cni-code';

/* eslint-disable @typescript-eslint/no-explicit-any */
export function networkServiceDefinition(): grpc.ServiceDefinition {
  const pkg = loadProto('network/network.proto') as any;
  return pkg.shoal.network.v1.NetworkPlugin.service as grpc.ServiceDefinition;
}

export interface NetworkPluginClient {
  add(req: { pod: Partial<PodRef> }): Promise<AddResponse>;
  del(req: { pod: Partial<PodRef> }): Promise<Record<string, never>>;
  check(req: { pod: Partial<PodRef>; prev_result?: Result }): Promise<Record<string, never>>;
  status(): Promise<StatusResponse>;
  gc(req: { valid_attachments: ValidAttachment[] }): Promise<GCResponse>;
  updateState(req: Omit<Partial<UpdateStateRequest>, 'state'> & { state?: Partial<ClusterState> }): Promise<{ version: number }>;
  close(): void;
}

/** A promise client for the plugin at `socketPath` (a Unix socket). Each call has a deadline. */
export function networkPluginClient(socketPath: string, deadlineMs = 30_000): NetworkPluginClient {
  const pkg = loadProto('network/network.proto') as any;
  const Ctor = pkg.shoal.network.v1.NetworkPlugin;
  const c = new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure());
  const call = (name: string) => (req: any = {}) => new Promise<any>((resolve, reject) => {
    c[name](req, { deadline: Date.now() + deadlineMs }, (err: Error | null, res: any) => (err ? reject(err) : resolve(res)));
  });
  return {
    add: call('Add'), del: call('Del'), check: call('Check'), status: () => call('Status')({}), gc: call('GC'),
    updateState: call('UpdateState'), close: () => c.close(),
  };
}
