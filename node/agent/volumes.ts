// A task's volumes on the node. Before the main container is created the agent asks the managers
// for the task's volumes (Dispatcher.TaskVolumes: it waits until each is attached to this node),
// stages and publishes each through the node's registered CSI driver (csi/client.ts), and hands
// the published paths to the CRI as bind mounts. After the task's containers stop it unpublishes
// them, and unstages a volume once no other task of the node uses it. What the node holds is
// written (fsynced) to DIR/volumes.json before each stage and after each unstage, so an agent that
// restarts in the middle finishes (its task starts again: every CSI call is idempotent) or undoes
// (the task is no longer assigned: released) each step; it is reported to the managers
// (UpdateVolumeStatus), which detach what the node no longer holds and no task there needs.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CsiClient, mountCapability, volumePaths } from '../../csi/client.js';
import type { TaskVolumesAnswer } from '../../manager/volumes/dispatch.js';
import { CSI_ACCESS, isAccess, mountsOf } from '../../manager/volumes/model.js';
import type { TaskObject } from '../../manager/services/model.js';
import type { CriMount } from './secrets.js';

/** One volume published for one task. */
export interface HeldVolume {
  taskId: string;
  /** The volume object's id in the store (what UpdateVolumeStatus reports). */
  volumeId: string;
  name: string;
  driver: string;
  csiId: string;
  staging: string;
  target: string;
}

export interface VolumeDispatcher {
  taskVolumes(taskId: string, waitMs: number): Promise<TaskVolumesAnswer>;
  volumeStatus(held: string[]): Promise<void>;
}

export interface NodeVolumesOptions {
  stateDir: string;
  /** The endpoint of a CSI driver registered on this node (plugins_registry), by name. */
  csi(driver: string): string | undefined;
  dispatcher: VolumeDispatcher;
  log(m: string): void;
}

/** The task can never get its volumes (removed, failed to provision): it is rejected. */
export class VolumeRefused extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class NodeVolumes {
  private held: HeldVolume[];
  private readonly file: string;
  private readonly clients = new Map<string, CsiClient>();
  /** One volume's node calls at a time (stage of one task, unstage of another). */
  private readonly locks = new Map<string, Promise<void>>();
  private retryTimer?: NodeJS.Timeout;
  /** Tasks whose release failed: tried again. */
  private readonly unreleased = new Set<string>();
  private stopped = false;

  constructor(private readonly o: NodeVolumesOptions) {
    this.file = join(resolve(o.stateDir), 'volumes.json');
    try {
      this.held = JSON.parse(readFileSync(this.file, 'utf8')) as HeldVolume[];
    } catch {
      this.held = [];
    }
  }

  /** Volume object ids the node holds (staging or staged). */
  holding(): string[] {
    return [...new Set(this.held.map((h) => h.volumeId))];
  }

  /** The tasks the record names (for the executor's sweep). */
  tasks(): string[] {
    return [...new Set(this.held.map((h) => h.taskId))];
  }

  private save(): void {
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(this.held));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    const d = openSync(dirname(this.file), 'r');
    try {
      fsyncSync(d);
    } finally {
      closeSync(d);
    }
  }

  private client(driver: string): CsiClient | undefined {
    const ep = this.o.csi(driver);
    if (!ep) return undefined;
    let c = this.clients.get(ep);
    if (!c) this.clients.set(ep, (c = new CsiClient(ep, { timeoutMs: 120_000 })));
    return c;
  }

  private async locked<T>(csiId: string, f: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(csiId) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((r) => (done = r));
    const chain = prev.then(() => mine);
    this.locks.set(csiId, chain);
    await prev;
    try {
      return await f();
    } finally {
      done();
      if (this.locks.get(csiId) === chain) this.locks.delete(csiId);
    }
  }

  /** Tells the managers what the node holds now (retried on the next change if it fails). */
  async report(): Promise<void> {
    try {
      await this.o.dispatcher.volumeStatus(this.holding());
    } catch (e) {
      this.o.log(`agent: reporting the node's volumes failed: ${(e as Error).message}; retrying`);
      this.scheduleRetry();
    }
  }

  /**
   * Stages and publishes the task's volumes; resolves to the CRI mounts of the main container.
   * Waits (saying why through `say`) while a volume is provisioned, attached here or its driver
   * is not registered; `check` throws when the task is no longer wanted.
   */
  async prepare(t: TaskObject, check: () => void, say: (m: string) => void): Promise<CriMount[]> {
    if (mountsOf(t.spec.template).length === 0) return [];
    let a: TaskVolumesAnswer | undefined;
    let last = '';
    const wait = (m: string) => {
      if (m !== last) say(m);
      last = m;
    };
    for (;;) {
      check();
      try {
        a = await this.o.dispatcher.taskVolumes(t.id, 10_000);
      } catch (e) {
        wait(`waiting for the managers to hand out its volumes (${(e as Error).message})`);
        await sleep(1000);
        continue;
      }
      if (a.refused) throw new VolumeRefused(a.waiting);
      if (a.ready) break;
      wait(a.waiting);
    }
    const mounts: CriMount[] = [];
    for (const v of a.volumes) {
      let c = this.client(v.driver);
      while (!c) {
        check();
        wait(`waiting for CSI driver ${v.driver} to register on this node`);
        await sleep(1000);
        c = this.client(v.driver);
      }
      check();
      const p = volumePaths(this.o.stateDir, v.driver, v.csi_id, t.id);
      const access = isAccess(v.access) ? v.access : 'single-node-writer';
      await this.locked(v.csi_id, async () => {
        if (!this.held.some((h) => h.taskId === t.id && h.csiId === v.csi_id)) {
          this.held.push({ taskId: t.id, volumeId: v.volume_id, name: v.name, driver: v.driver, csiId: v.csi_id, staging: p.staging, target: p.target });
          this.save();
        }
        // Held before it is staged: the managers never detach it under the stage.
        await this.report();
        say(`mounting volume ${v.name}`);
        await c!.mountVolume({ volumeId: v.csi_id, staging: p.staging, target: p.target, capability: mountCapability(CSI_ACCESS[access]), readonly: v.readonly, publishContext: v.publish_context, volumeContext: v.volume_context });
      });
      mounts.push({ container_path: v.target, host_path: p.target, readonly: v.readonly });
    }
    return mounts;
  }

  /** The task's containers are stopped: unpublish its volumes (unstage the ones no other task here uses). */
  async release(taskId: string): Promise<void> {
    const mine = this.held.filter((h) => h.taskId === taskId);
    if (mine.length === 0) return;
    let failed = false;
    for (const h of mine) {
      const c = this.client(h.driver);
      if (!c) {
        this.o.log(`agent: volume ${h.name} of task ${taskId}: driver ${h.driver} is not registered; it is released when the driver is back`);
        failed = true;
        continue;
      }
      try {
        await this.locked(h.csiId, async () => {
          const others = this.held.some((x) => x !== h && x.csiId === h.csiId);
          await c.unmountVolume({ volumeId: h.csiId, staging: h.staging, target: h.target, unstage: !others });
          this.held = this.held.filter((x) => x !== h);
          this.save();
        });
        this.o.log(`agent: volume ${h.name} released by task ${taskId}`);
      } catch (e) {
        this.o.log(`agent: releasing volume ${h.name} of task ${taskId} failed: ${(e as Error).message}; retrying`);
        failed = true;
      }
    }
    await this.report();
    if (failed) {
      this.unreleased.add(taskId);
      this.scheduleRetry();
    } else this.unreleased.delete(taskId);
  }

  /** The node leaves the cluster: every volume it holds is let go (its pods are gone already). */
  async releaseAll(): Promise<void> {
    for (const id of this.tasks()) await this.release(id);
  }

  /** Releases what tasks no longer on the node hold (an agent that stopped before it could). */
  sweep(active: Set<string>): void {
    for (const id of this.tasks()) if (!active.has(id)) void this.release(id);
  }

  private active?: () => Set<string>;
  /** What the retries sweep against (the executor's runners). */
  setActive(f: () => Set<string>): void {
    this.active = f;
  }

  private scheduleRetry(): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      for (const id of this.unreleased) void this.release(id);
      if (this.active) this.sweep(this.active());
      void this.report();
    }, 2000);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
