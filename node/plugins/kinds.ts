// What the registry checks per plugin type beyond GetInfo, through the plugin's own service:
// a CSI plugin must answer CSI Identity under the name it registered and tell its node id and
// topology (what the managers need to attach volumes to this node); the others must accept
// connections on their endpoint.
import { connect } from 'node:net';
import { CsiClient } from '../../csi/client.js';
import { PluginType } from '../../proto/pluginregistration/v1/registration.js';
import type { ValidInfo } from './validate.js';

export interface CsiNodeInfo { nodeId: string; topology: Record<string, string>; maxVolumesPerNode: number; vendorVersion: string; stages: boolean }
export type KindDetails = { csi?: CsiNodeInfo };
export type KindCheck = (p: ValidInfo, timeoutMs: number) => Promise<KindDetails>;

/** Resolves when a Unix socket accepts a connection; rejects with why not. */
export function reachable(path: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`${path} did not accept a connection within ${timeoutMs} ms`)); }, timeoutMs);
    s.once('connect', () => { clearTimeout(timer); s.destroy(); resolve(); });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = e.code === 'ECONNREFUSED' ? `nothing listens on ${path} (a stale socket of a plugin that is gone?)`
        : e.code === 'ECONNRESET' ? `${path} closed the connection at once (the plugin's process ending?)`
          : e.code === 'ENOENT' ? `${path} does not exist` : `${path}: ${e.message}`;
      reject(new Error(why));
    });
  });
}

export async function checkCsi(p: ValidInfo, timeoutMs: number): Promise<KindDetails> {
  await reachable(p.endpoint, timeoutMs);
  const c = new CsiClient(p.endpoint, { timeoutMs, retry: false });
  try {
    const info = await c.pluginInfo();
    if (info.name !== p.name) throw new Error(`the CSI driver at ${p.endpoint} calls itself ${JSON.stringify(info.name)}, but registered as ${JSON.stringify(p.name)}`);
    const caps = await c.capabilities();
    const ni = await c.nodeInfo();
    if (!ni.nodeId) throw new Error(`the CSI driver at ${p.endpoint} answered NodeGetInfo without a node_id`);
    return { csi: { nodeId: ni.nodeId, topology: ni.topology, maxVolumesPerNode: ni.maxVolumesPerNode, vendorVersion: info.vendor_version, stages: caps.node.has('STAGE_UNSTAGE_VOLUME') } };
  } catch (e) {
    throw new Error(`CSI check of ${p.endpoint} failed: ${(e as Error).message}`);
  } finally { c.close(); }
}

export const defaultKindChecks: Record<string, KindCheck> = {
  [PluginType.CSI]: checkCsi,
  [PluginType.Network]: async (p, ms) => { await reachable(p.endpoint, ms); return {}; },
  [PluginType.Runtime]: async (p, ms) => { await reachable(p.endpoint, ms); return {}; },
};
