// Autolock across the managers. The cluster object holds the unlock key sealed under the data key
// (as Swarm keeps its unlock key in the raft store, which its data key encrypts); every manager
// that holds the data key follows the cluster object and keeps its own data key file as the
// cluster wants it: sealed under the current unlock key while autolock is on (so a rotation,
// committed through raft, re-seals every running manager's file), in clear when it is off. The
// leader also seals a CA key that a cluster from before kept in clear (ca/ca-key.ts).
import type { Log } from '../../proto/log.js';
import type { Manager } from '../control/manager.js';
import { clusterInput, type ClusterObject } from '../control/model.js';
import { migrateCAKey } from '../ca/ca-key.js';
import { keyPath, readDataKeyFile, saveDataKey, type DataKey } from './datakey.js';
import { UnlockKey } from './unlock-key.js';

export function unlockKeyAad(clusterId: string): string {
  return `shoal unlock key ${clusterId}`;
}

export function sealUnlockKey(dk: DataKey, clusterId: string, uk: UnlockKey): { sealedKey: string; keyId: string } {
  return { sealedKey: dk.seal(uk.key, unlockKeyAad(clusterId)).toString('base64'), keyId: uk.id };
}

/** The cluster's unlock key, or undefined when autolock is off. */
export function clusterUnlockKey(c: ClusterObject, dk: DataKey): UnlockKey | undefined {
  const a = c.spec.autolock;
  if (!a) return undefined;
  return new UnlockKey(dk.open(Buffer.from(a.sealedKey, 'base64'), unlockKeyAad(c.id)));
}

/**
 * Writes this manager's data key file the way the cluster object wants it, if it is not so
 * already. Without the cluster object (a manager that just joined and has not caught up), nothing
 * is written: the key stays in memory, and is fetched again after a crash.
 */
export function syncDataKeyFile(stateDir: string, dk: DataKey, c: ClusterObject | undefined, log: Log): 'sealed' | 'plain' | undefined {
  if (!c) return undefined;
  const uk = clusterUnlockKey(c, dk);
  let f;
  try {
    f = readDataKeyFile(stateDir);
  } catch {
    f = undefined; // damaged or foreign: rewritten below
  }
  if (uk) {
    if (f?.state === 'locked' && f.unlockKeyId === uk.id) return undefined;
    saveDataKey(stateDir, dk, uk);
    log(`autolock: ${keyPath(stateDir)} sealed under unlock key ${uk.id}`);
    return 'sealed';
  }
  if (f?.state === 'plain' && f.key.id === dk.id) return undefined;
  saveDataKey(stateDir, dk);
  log(`autolock: off; ${keyPath(stateDir)} holds the data key unsealed`);
  return 'plain';
}

/**
 * Follows the cluster object on this manager: re-seals the data key file on every change, and on
 * the leader seals a clear CA key. `dataKey` answers undefined until the key is held; `poke()` is
 * called again when it arrives (and every few seconds, for a leadership change).
 */
export class AutolockFollower {
  private watch?: { cancel(): void };
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private migrating = false;

  constructor(private readonly mgr: Manager, private readonly o: { stateDir: string; dataKey(): DataKey | undefined; log: Log; everyMs?: number }) {}

  start(): this {
    const follow = () => {
      this.watch = this.mgr.raft.store.watch({ kinds: ['cluster'] }, () => this.poke(), undefined, () => !this.stopped && follow());
    };
    follow();
    const tick = () => {
      this.timer = setTimeout(() => {
        this.poke();
        if (!this.stopped) tick();
      }, this.o.everyMs ?? 5000);
      this.timer.unref();
    };
    tick();
    this.poke();
    return this;
  }

  poke(): void {
    if (this.stopped) return;
    const dk = this.o.dataKey();
    const c = this.mgr.cluster();
    if (!dk || !c) return;
    try {
      syncDataKeyFile(this.o.stateDir, dk, c, this.o.log);
    } catch (e) {
      this.o.log(`autolock: keeping the data key file as the cluster wants it failed: ${(e as Error).message}`);
    }
    if (c.spec.ca.keyPem && this.mgr.isLeader() && !this.migrating) void this.migrate(c, dk);
  }

  /** A cluster from before sealed CA keys: seal it, at the version it was read (a race retries). */
  private async migrate(c: ClusterObject, dk: DataKey): Promise<void> {
    const spec = migrateCAKey(c, dk);
    if (!spec) return;
    this.migrating = true;
    try {
      await this.mgr.raft.propose([{ op: 'update', object: clusterInput(c, spec), expectVersion: c.version }]);
      this.o.log('autolock: the CA key was in clear in the store (a cluster from an earlier version); it is sealed under the data key now');
    } catch (e) {
      this.o.log(`autolock: sealing the CA key in the store failed (retried): ${(e as Error).message}`);
    } finally {
      this.migrating = false;
    }
  }

  stop(): void {
    this.stopped = true;
    this.watch?.cancel();
    clearTimeout(this.timer);
  }
}
