// Control.UpdateCluster (autolock on/off) and Control.GetUnlockKey (show, --rotate): as
// `docker swarm update --autolock`, `docker swarm unlock-key [--rotate]`. Writes run on the leader,
// which seals the new unlock key under the data key into the cluster object; each manager then
// re-seals its own data key file (autolock.ts). The key is printed by the caller, never logged.
import type { Manager } from '../control/manager.js';
import { readLatest } from '../control/service.js';
import { clusterInput, type ClusterObject } from '../control/model.js';
import type { MethodSpec } from '../security/authz.js';
import { precondition, unavailable } from '../security/errors.js';
import { clusterUnlockKey, sealUnlockKey } from './autolock.js';
import type { DataKeyKeeper } from './keeper.js';
import { UnlockKey } from './unlock-key.js';

export function autolockTable(mgr: Manager, keeper: DataKeyKeeper, log: (m: string) => void): Record<string, MethodSpec> {
  const cluster = async (): Promise<ClusterObject> => {
    await readLatest(mgr);
    const c = mgr.cluster();
    if (!c) throw unavailable('this manager has not loaded the cluster yet; retry');
    return c;
  };
  const write = async (c: ClusterObject, autolock: ClusterObject['spec']['autolock']) => {
    await mgr.raft.propose([{ op: 'update', object: clusterInput(c, { autolock }), expectVersion: c.version }]);
  };
  return {
    UpdateCluster: {
      roles: ['manager'],
      leader: true,
      unary: async (req: { autolock?: boolean | null }) => {
        const c = await cluster();
        const want = req.autolock;
        if (want === undefined || want === null || want === !!c.spec.autolock) return { autolock: !!c.spec.autolock, unlock_key: '', changed: false };
        if (want) {
          const uk = UnlockKey.generate();
          await write(c, sealUnlockKey(keeper.key(), c.id, uk));
          log(`control: autolock turned on (unlock key ${uk.id})`);
          return { autolock: true, unlock_key: uk.toString(), changed: true };
        }
        await write(c, undefined);
        log('control: autolock turned off');
        return { autolock: false, unlock_key: '', changed: true };
      },
    },
    GetUnlockKey: {
      roles: ['manager'],
      leader: true,
      unary: async (req: { rotate?: boolean }) => {
        const c = await cluster();
        if (!c.spec.autolock) throw precondition('autolock is off, so there is no unlock key: turn it on with "shoal cluster update --autolock=true"');
        if (req.rotate) {
          const uk = UnlockKey.generate();
          await write(c, sealUnlockKey(keeper.key(), c.id, uk));
          log(`control: unlock key rotated (now ${uk.id}, was ${c.spec.autolock.keyId})`);
          return { unlock_key: uk.toString(), key_id: uk.id };
        }
        const uk = clusterUnlockKey(c, keeper.key())!;
        return { unlock_key: uk.toString(), key_id: uk.id };
      },
    },
  };
}
