// TypeScript shapes of dispatcher.proto messages that both sides build or read by hand (field
// names as proto-loader gives them, snake_case), so the agent and the dispatcher share one.

/** NodeDescription: what an agent reports of its host and its runtime with each session. */
export interface WireDescription {
  cpu_millis: number;
  memory_bytes: number;
  runtime_name: string;
  runtime_version: string;
  os: string;
  arch: string;
  locked?: boolean;
  plugins?: WirePlugin[];
  plugin_refusals?: { socket: string; reason: string; at: string }[];
}

/** Plugin: a plugin registered on the node. */
export interface WirePlugin {
  kind: string;
  name: string;
  endpoint: string;
  versions: string[];
  version: string;
  registered_at: string;
  csi_node_id: string;
  csi_topology: Record<string, string>;
  csi_max_volumes: number;
  vendor_version: string;
}
