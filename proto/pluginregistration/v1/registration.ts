// The plugin registration contract for TypeScript: the Registration service loaded from
// api.proto, the plugin types shoal knows, and the message shapes. Plugins (csi/registration.ts)
// and the node's registry (node/plugins/) both import this.
import type * as grpc from '@grpc/grpc-js';
import { loadProto } from '../../load.js';

let service: grpc.ServiceClientConstructor | undefined;

/** pluginregistration.Registration (the kubelet's package name, wire-compatible). */
export function registrationService(): grpc.ServiceClientConstructor {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  service ??= (loadProto('pluginregistration/v1/api.proto') as any).pluginregistration.Registration;
  return service!;
}

/**
 * Plugin types. `CSIPlugin` is the kubelet's own name, so CSI's node-driver-registrar works as
 * it does on Kubernetes. The other two are shoal's: its network plugin (the CNI-verb gRPC
 * service of DESIGN.md §4) and a CRI runtime announcing itself instead of `--cri-endpoint`.
 */
export const PluginType = {
  CSI: 'CSIPlugin',
  Network: 'ShoalNetworkPlugin',
  Runtime: 'ShoalRuntimePlugin',
} as const;
export type PluginTypeName = (typeof PluginType)[keyof typeof PluginType];

/** Types other systems use that shoal recognises but does not take (named in the refusal). */
export const ForeignPluginTypes = ['DevicePlugin', 'DRAPlugin'] as const;

export interface PluginInfo { type: string; name: string; endpoint: string; supported_versions: string[] }
export interface RegistrationStatus { plugin_registered: boolean; error: string }
