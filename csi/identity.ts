// The CSI Identity service.
import { statSync } from 'node:fs';
import { PluginServiceType, VolumeExpansionType } from '../proto/csi/v1/csi.js';
import { DRIVER_VERSION, type Driver } from './driver.js';
import { precondition } from './errors.js';

export function identityHandlers(d: Driver) {
  return {
    async GetPluginInfo() {
      return { name: d.opts.name, vendor_version: DRIVER_VERSION, manifest: { pool: d.pool.id, node: d.opts.nodeId } };
    },
    async GetPluginCapabilities() {
      return {
        capabilities: [
          { service: { type: PluginServiceType.CONTROLLER_SERVICE } },
          { service: { type: PluginServiceType.VOLUME_ACCESSIBILITY_CONSTRAINTS } },
          // ONLINE: ControllerExpandVolume grows a published volume's image; NodeExpandVolume
          // grows its loop device and, where the kernel allows it (CAP_SYS_RESOURCE), its ext4.
          { volume_expansion: { type: VolumeExpansionType.ONLINE } },
        ],
      };
    },
    async Probe() {
      try { statSync(`${d.pool.dir}/pool.json`); } catch (e) {
        throw precondition(`the pool ${d.pool.dir} is not reachable (${(e as NodeJS.ErrnoException).code}); check its mount`);
      }
      return { ready: { value: true } };
    },
  };
}
