// A node's registered plugins as its agent reports them (dispatcher wire shapes) and as the
// control API shows them (node inspect). Bounded and sanitised: it is what an agent says.
import type { WireDescription, WirePlugin } from '../../proto/dispatcher/wire.js';
import type { NodeDescription, NodePlugin } from './model.js';

const MAX_PLUGINS = 64;
const str = (x: unknown, n = 256) => String(x ?? '').slice(0, n);

function strMap(m: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!m || typeof m !== 'object') return out;
  for (const [k, v] of Object.entries(m as Record<string, unknown>).slice(0, 32)) out[str(k, 128)] = str(v, 256);
  return out;
}

/** The plugin fields of a NodeDescription as the agent sent them. */
export function pluginsFromWire(d: WireDescription): Pick<NodeDescription, 'plugins' | 'pluginRefusals'> {
  const plugins: NodePlugin[] = (d.plugins ?? []).slice(0, MAX_PLUGINS).map((p) => {
    const out: NodePlugin = { kind: str(p.kind, 64), name: str(p.name, 64), endpoint: str(p.endpoint, 512), versions: (p.versions ?? []).slice(0, 16).map((v) => str(v, 32)), version: str(p.version, 32), registeredAt: str(p.registered_at, 64) };
    if (p.csi_node_id) out.csi = { nodeId: str(p.csi_node_id, 128), topology: strMap(p.csi_topology), maxVolumes: Math.max(0, Math.floor(Number(p.csi_max_volumes) || 0)), vendorVersion: str(p.vendor_version, 64) };
    return out;
  });
  const pluginRefusals = (d.plugin_refusals ?? []).slice(0, MAX_PLUGINS).map((r) => ({ socket: str(r.socket, 512), reason: str(r.reason, 1024), at: str(r.at, 64) }));
  return { plugins, pluginRefusals };
}

/** What an agent sends: its registry's plugins. */
export function pluginToWire(p: NodePlugin): WirePlugin {
  return { kind: p.kind, name: p.name, endpoint: p.endpoint, versions: p.versions, version: p.version, registered_at: p.registeredAt, csi_node_id: p.csi?.nodeId ?? '', csi_topology: p.csi?.topology ?? {}, csi_max_volumes: p.csi?.maxVolumes ?? 0, vendor_version: p.csi?.vendorVersion ?? '' };
}

/** The control API's Node.plugins / plugin_refusals. */
export function nodePluginsToWire(d: NodeDescription | undefined) {
  return {
    plugins: (d?.plugins ?? []).map(pluginToWire),
    plugin_refusals: d?.pluginRefusals ?? [],
  };
}

/** The node's CSI plugin of that driver, if registered there. */
export function csiPlugin(d: NodeDescription | undefined, driver: string): NodePlugin | undefined {
  return d?.plugins?.find((p) => p.kind === 'CSIPlugin' && p.name === driver && !!p.csi);
}
