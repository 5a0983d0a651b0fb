// The node side's watcher, one pass every --watch-interval:
//  - heartbeat: nodes/<node>.json says this node's driver is alive (the controller's fence
//    grace counts from it);
//  - fence: a volume staged here whose attachment to this node is gone from publish.json (the
//    controller unpublished it, e.g. because the CO thought this node dead) gets its filesystem
//    shut down at once, so this node can never write to it again, and the node says `fenced`;
//  - freeze: a controller's freeze.json for a volume staged read-write here freezes its
//    filesystem (flushed, writers held) until the request is gone, for a consistent snapshot.
import { writeJsonAtomic, writeJsonDurable, readJson } from './durable.js';
import type { Driver } from './driver.js';
import { freeze, shutdown, thaw } from './ext4.js';
import { loopDevices, mounts } from './kernel.js';
import type { FreezeRequest, NodeRecord, NodeVolumeState } from './pool.js';

/** A freeze request older than this is ignored (and a freeze it caused ended): a controller that died mid-snapshot must not hold writers forever. */
export const MAX_FREEZE_MS = 60_000;

export class NodeWatch {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private readonly started = new Date().toISOString();
  log: (msg: string) => void = (m) => process.stderr.write(`shoal-csi: ${m}\n`);

  constructor(private readonly d: Driver) {}

  start(): void {
    // The first heartbeat is durable: ControllerPublishVolume refuses nodes it has never seen.
    writeJsonDurable(this.d.pool.nodeJson(this.d.opts.nodeId), this.record());
    this.d.kickWatcher = () => { void this.pass(); };
    this.timer = setInterval(() => { void this.pass(); }, this.d.opts.watchIntervalMs);
    void this.pass();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private record(): NodeRecord {
    return { node_id: this.d.opts.nodeId, started: this.started, heartbeatMs: Date.now(), topology: this.d.pool.topology() };
  }

  /** One pass; concurrent kicks coalesce into one more pass after the current one. */
  pass(): Promise<void> {
    if (this.running) { this.again = true; return this.running; }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.once();
        } while (this.again);
      } finally { this.running = undefined; }
    })();
    return this.running;
  }

  private async once(): Promise<void> {
    const { pool, opts } = this.d;
    const me = opts.nodeId;
    try { writeJsonAtomic(pool.nodeJson(me), this.record()); } catch (e) { this.log(`heartbeat to ${pool.dir} failed: ${(e as Error).message}`); }
    const all = mounts();
    for (const loop of loopDevices()) {
      const vid = pool.volumeOfNodeImage(loop.backing, me);
      if (!vid) continue;
      const mp = all.find((m) => m.dev === loop.dev)?.mountPoint;
      if (!mp) continue;
      // Never at the same time as a node call on this volume; skipped now, done next pass.
      if (this.d.locks.busy(`n:${vid}`)) continue;
      await this.d.locks.run(`n:${vid}`, async () => {
        try { await this.check(vid, mp); } catch (e) { this.log(`volume ${vid}: ${(e as Error).message}`); }
      });
    }
  }

  private async check(vid: string, mp: string): Promise<void> {
    const { pool, opts } = this.d;
    const me = opts.nodeId;
    const st = pool.nodeState(vid, me);
    // Mounted here and recorded `staging` or `staged`: the volume is in use on this node.
    if (!st || st.state === 'released' || st.state === 'fenced') return;
    const set = (s: Partial<NodeVolumeState>) => writeJsonDurable(pool.nodeStateJson(vid, me), { ...st, ...s, at: new Date().toISOString() });
    const attached = pool.publish(vid).attachments.some((a) => a.node_id === me && a.generation === st.generation);
    if (!attached) {
      if (st.frozen) await thaw(mp).catch(() => undefined);
      await shutdown(mp);
      set({ state: 'fenced', frozen: undefined });
      this.log(`fenced volume ${vid}: it was unpublished from node ${me} while staged at ${mp}; its filesystem is shut down (no more writes)`);
      return;
    }
    const req = readJson<FreezeRequest>(pool.freezeJson(vid));
    const wanted = !!req && req.node_id === me && req.generation === st.generation && Date.now() - req.atMs < MAX_FREEZE_MS;
    if (wanted && st.frozen !== req!.id) {
      await freeze(mp);
      set({ frozen: req!.id });
    } else if (!wanted && st.frozen) {
      await thaw(mp);
      set({ frozen: undefined });
    }
  }
}
