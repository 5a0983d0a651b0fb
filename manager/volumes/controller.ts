// The volume controller: a reconcile loop on the leader that carries out decideVolumes' actions
// with CSI controller calls (CreateVolume, ControllerPublishVolume, ControllerUnpublishVolume,
// DeleteVolume) on the drivers registered on the leader's node, and records each outcome in the
// store. Every CSI call is idempotent, so a pass cut short (a crash, a lost leadership) is simply
// decided again by the next leader: an attach whose record was lost is published again (the
// driver answers with the same context), a detach is marked `unpublishing` before the call and
// finished by whoever comes next. FAILED_PRECONDITION from ControllerPublishVolume means the
// volume is still held elsewhere or its old node is being fenced: tried again with back-off, the
// reason shown on the volume and to the waiting task.
import * as grpc from '@grpc/grpc-js';
import { CsiCallError, CsiClient, mountCapability } from '../../csi/client.js';
import { ReconcileLoop } from '../leader/loop.js';
import type { NodeObject } from '../control/model.js';
import type { ReplicatedNode } from '../raftnode/node.js';
import type { ServiceObject, TaskObject } from '../services/model.js';
import { decideVolumes, type Action } from './decide.js';
import { CSI_ACCESS, volumeNamesOf, wantsVolumes, type VolumeClassObject, type VolumeObject } from './model.js';
import { updateVolume, volumeInput } from './store.js';

export interface VolumeControllerOptions {
  raft: ReplicatedNode;
  /** The endpoint of a CSI driver registered on this (the leader's) node, by driver name. */
  csi(driver: string): string | undefined;
  /** This node's hostname, for messages. */
  hostname: string;
  log(m: string): void;
  /** How long a CSI call may take (default the client's 15 s). */
  timeoutMs?: number;
}

/** CreateVolume refusals that no retry will change: the volume is marked failed. */
const PERMANENT = new Set([grpc.status.INVALID_ARGUMENT, grpc.status.ALREADY_EXISTS, grpc.status.OUT_OF_RANGE, grpc.status.NOT_FOUND, grpc.status.UNIMPLEMENTED]);
const MIN_BACKOFF = 500;
const MAX_BACKOFF = 5000;
const PARALLEL = 8;

export class VolumeController {
  private readonly loop: ReconcileLoop;
  private readonly clients = new Map<string, CsiClient>();
  private readonly retryAt = new Map<string, number>();
  private readonly lastError = new Map<string, string>();
  private readonly failures = new Map<string, number>();
  private epoch = 0;

  constructor(private readonly o: VolumeControllerOptions) {
    const store = o.raft.store;
    this.loop = new ReconcileLoop({
      name: 'volume controller',
      store,
      kinds: ['volume', 'volume-class', 'task', 'node', 'service'],
      // Task progress changes nothing here; placements, endings and removals do.
      relevant: (e) => e.object.kind !== 'task' || volumeNamesOf(e.object as TaskObject).length > 0,
      log: o.log,
      debounceMs: 20,
      pass: () => this.pass(),
    });
  }

  leadershipChanged(isLeader: boolean): void {
    const epoch = ++this.epoch;
    if (!isLeader) {
      this.loop.stop();
      return;
    }
    // Decide on everything committed before this term (as the other leader loops do).
    const catchUp = (attempt: number): void => {
      this.o.raft.linearizableRead().then(
        () => {
          if (epoch === this.epoch && this.o.raft.isLeader()) this.loop.start();
        },
        () => {
          if (epoch !== this.epoch || !this.o.raft.isLeader()) return;
          if (attempt < 50) setTimeout(() => catchUp(attempt + 1), 100);
        },
      );
    };
    catchUp(0);
  }

  stop(): void {
    this.epoch++;
    this.loop.stop();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private client(driver: string): CsiClient {
    const ep = this.o.csi(driver);
    if (!ep) throw new Error(`CSI driver ${driver} is not registered on the leader's node (${this.o.hostname}), where controller calls run: start it there, or check "shoal node inspect ${this.o.hostname}"`);
    let c = this.clients.get(ep);
    if (!c) this.clients.set(ep, (c = new CsiClient(ep, { timeoutMs: this.o.timeoutMs })));
    return c;
  }

  private async pass(): Promise<{ wakeAt?: number }> {
    const store = this.o.raft.store;
    const now = Date.now();
    const d = decideVolumes({
      now,
      volumes: store.list('volume') as VolumeObject[],
      classes: store.list('volume-class') as VolumeClassObject[],
      services: store.list('service') as ServiceObject[],
      tasks: store.list('task') as TaskObject[],
      nodes: store.list('node') as NodeObject[],
      retryAt: this.retryAt,
      lastError: this.lastError,
    });
    // Per volume in order; volumes side by side (a few at a time).
    const byVolume = new Map<string, Action[]>();
    for (const a of d.actions) {
      const id = a.type === 'claim' ? `claim:${a.object.name}` : a.volume.id;
      const l = byVolume.get(id);
      if (l) l.push(a);
      else byVolume.set(id, [a]);
    }
    const queue = [...byVolume.values()];
    await Promise.all(Array.from({ length: Math.min(PARALLEL, queue.length) }, async () => {
      for (let l = queue.shift(); l; l = queue.shift()) {
        for (const a of l) {
          if (!this.o.raft.isLeader()) return;
          await this.run(a);
        }
      }
    }));
    await this.writeWaiting(d.waiting);
    let wakeAt = d.wakeAt;
    for (const at of this.retryAt.values()) if (at > Date.now() && (wakeAt === undefined || at < wakeAt)) wakeAt = at;
    return { wakeAt };
  }

  private ok(key: string): void {
    this.retryAt.delete(key);
    this.lastError.delete(key);
    this.failures.delete(key);
  }

  private failed(key: string, message: string, minMs = MIN_BACKOFF): void {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    this.retryAt.set(key, Date.now() + Math.min(Math.max(minMs, MIN_BACKOFF * 2 ** (n - 1)), MAX_BACKOFF));
    if (this.lastError.get(key) !== message && (n <= 3 || n % 20 === 0)) this.o.log(`volume controller: ${key.split(':')[0]} ${message}; retrying`);
    this.lastError.set(key, message);
  }

  private async run(a: Action): Promise<void> {
    try {
      switch (a.type) {
        case 'claim': {
          await this.o.raft.propose([{ op: 'create', object: a.object }]).catch((e) => {
            if ((e as { conflict?: { code?: string } }).conflict?.code !== 'name-taken') throw e;
          });
          this.o.log(`volume controller: volume ${a.object.name} claimed for its slot`);
          break;
        }
        case 'adopt':
          await updateVolume(this.o.raft, a.volume.id, (v) => (v.spec.claim?.serviceId === a.claim.serviceId ? undefined : volumeInput(v, { spec: { claim: a.claim } })));
          this.o.log(`volume controller: volume ${a.volume.name} taken over by service ${a.claim.serviceName}`);
          break;
        case 'provision':
          await this.provision(a.volume, a.key);
          return;
        case 'reuse':
          await updateVolume(this.o.raft, a.volume.id, (v) => {
            const at = v.status.attachments.find((x) => x.nodeId === a.nodeId);
            if (at?.state !== 'released') return undefined;
            return volumeInput(v, { status: { attachments: v.status.attachments.map((x) => (x === at ? { ...x, state: 'published', since: Date.now() } : x)) } });
          });
          break;
        case 'publish':
          await this.publish(a);
          return;
        case 'unpublish':
          await this.unpublish(a);
          return;
        case 'delete':
          await this.delete(a.volume, a.key, a.why);
          return;
      }
      this.ok(a.key);
    } catch (e) {
      this.failed(a.key, `volume ${a.type === 'claim' ? a.object.name : a.volume.name}: ${(e as Error).message}`);
    }
  }

  private async provision(vol: VolumeObject, key: string): Promise<void> {
    let created;
    try {
      const c = this.client(vol.spec.driver);
      created = await c.createVolume({
        name: vol.name,
        capacity: { required_bytes: vol.spec.sizeBytes, limit_bytes: 0 },
        capabilities: [mountCapability(CSI_ACCESS[vol.spec.access])],
        parameters: vol.spec.params,
        fromSnapshot: vol.spec.fromSnapshot,
      });
    } catch (e) {
      const permanent = e instanceof CsiCallError && PERMANENT.has(e.code);
      const message = e instanceof CsiCallError ? `CreateVolume: ${e.codeName}: ${e.details}` : (e as Error).message;
      await updateVolume(this.o.raft, vol.id, (v) => (v.status.state !== 'pending' || (v.status.message === message && !permanent) ? undefined : volumeInput(v, { status: { state: permanent ? 'failed' : 'pending', message } })));
      if (permanent) {
        this.ok(key);
        this.o.log(`volume controller: volume ${vol.name} could not be created: ${message}`);
      } else this.failed(key, `volume ${vol.name}: ${message}`);
      return;
    }
    const kept = await updateVolume(this.o.raft, vol.id, (v) => volumeInput(v, {
      status: {
        state: 'created',
        message: '',
        csiId: created.volume_id,
        capacityBytes: Number(created.capacity_bytes),
        context: created.volume_context ?? {},
        topology: (created.accessible_topology ?? []).map((t) => ({ ...t.segments })),
      },
    }));
    if (!kept) {
      // Removed while it was being created: the driver's volume must not outlive it.
      await this.client(vol.spec.driver).deleteVolume(created.volume_id).catch(() => undefined);
      return;
    }
    this.ok(key);
    this.o.log(`volume controller: volume ${vol.name} created (${created.volume_id}, ${Number(created.capacity_bytes)} bytes)`);
  }

  private async publish(a: Extract<Action, { type: 'publish' }>): Promise<void> {
    const vol = a.volume;
    let context;
    try {
      context = await this.client(vol.spec.driver).controllerPublish({ volumeId: vol.status.csiId!, nodeId: a.csiNodeId, capability: mountCapability(CSI_ACCESS[vol.spec.access]), readonly: a.readonly, volumeContext: vol.status.context });
    } catch (e) {
      const pre = e instanceof CsiCallError && e.code === grpc.status.FAILED_PRECONDITION;
      const message = e instanceof CsiCallError ? `${pre ? 'the driver waits' : `ControllerPublishVolume: ${e.codeName}`}: ${e.details}` : (e as Error).message;
      this.failed(a.key, message, pre ? MIN_BACKOFF : 2000);
      return;
    }
    await updateVolume(this.o.raft, vol.id, (v) => {
      const rest = v.status.attachments.filter((x) => x.nodeId !== a.nodeId);
      return volumeInput(v, {
        status: {
          attachments: [...rest, { nodeId: a.nodeId, csiNodeId: a.csiNodeId, state: 'published', context, readonly: a.readonly, since: Date.now() }],
          waiting: (v.status.waiting ?? []).filter((w) => w.nodeId !== a.nodeId),
        },
      });
    });
    this.ok(a.key);
    const n = this.o.raft.store.get('node', a.nodeId) as NodeObject | undefined;
    this.o.log(`volume controller: volume ${vol.name} attached to node ${n?.status.hostname ?? a.nodeId}`);
  }

  private async unpublish(a: Extract<Action, { type: 'unpublish' }>): Promise<void> {
    const vol = a.volume;
    const store = this.o.raft.store;
    // Marked first (never handed to an agent again), and only while still nothing on the node
    // needs it: a task placed there since the decision keeps it.
    const stillFree = (v: VolumeObject) => {
      const n = store.get('node', a.attachment.nodeId) as NodeObject | undefined;
      if (n && n.status.state !== 'down' && (store.list('task', { nodeId: a.attachment.nodeId }) as TaskObject[]).some((t) => wantsVolumes(t) && volumeNamesOf(t).includes(v.name))) return false;
      const at = v.status.attachments.find((x) => x.nodeId === a.attachment.nodeId);
      return !!at && (at.state === 'released' || at.state === 'unpublishing' || at.state === 'published' || !n || n.status.state === 'down');
    };
    const marked = await updateVolume(this.o.raft, vol.id, (v) => {
      if (!stillFree(v)) return undefined;
      const at = v.status.attachments.find((x) => x.nodeId === a.attachment.nodeId)!;
      if (at.state === 'unpublishing') return undefined;
      return volumeInput(v, { status: { attachments: v.status.attachments.map((x) => (x === at ? { ...x, state: 'unpublishing', since: Date.now() } : x)) } });
    });
    const at = marked?.status.attachments.find((x) => x.nodeId === a.attachment.nodeId);
    if (!marked || at?.state !== 'unpublishing') {
      this.ok(a.key);
      return;
    }
    try {
      await this.client(vol.spec.driver).controllerUnpublish(vol.status.csiId!, at.csiNodeId);
    } catch (e) {
      this.failed(a.key, e instanceof CsiCallError ? `ControllerUnpublishVolume: ${e.codeName}: ${e.details}` : (e as Error).message);
      return;
    }
    await updateVolume(this.o.raft, vol.id, (v) => {
      const cur = v.status.attachments.find((x) => x.nodeId === a.attachment.nodeId);
      if (cur?.state !== 'unpublishing') return undefined;
      return volumeInput(v, { status: { attachments: v.status.attachments.filter((x) => x !== cur) } });
    });
    this.ok(a.key);
    const n = store.get('node', a.attachment.nodeId) as NodeObject | undefined;
    this.o.log(`volume controller: volume ${vol.name} detached from node ${n?.status.hostname ?? a.attachment.nodeId} (${a.why})`);
  }

  private async delete(vol: VolumeObject, key: string, why: string): Promise<void> {
    if (vol.status.csiId) {
      const c = this.client(vol.spec.driver);
      try {
        // An attach the store never recorded (a leader that died between the call and the
        // write) would make DeleteVolume refuse: detach from every node first.
        await c.controllerUnpublish(vol.status.csiId, '');
        await c.deleteVolume(vol.status.csiId);
      } catch (e) {
        const message = e instanceof CsiCallError ? `DeleteVolume: ${e.codeName}: ${e.details}` : (e as Error).message;
        await updateVolume(this.o.raft, vol.id, (v) => (v.status.message === message ? undefined : volumeInput(v, { status: { message } })));
        this.failed(key, `volume ${vol.name}: ${message}`);
        return;
      }
    }
    await updateVolume(this.o.raft, vol.id, (v) => (v.status.attachments.length === 0 ? 'delete' : undefined));
    this.ok(key);
    this.o.log(`volume controller: volume ${vol.name} deleted (${why})`);
  }

  /** status.waiting as decided (written only when it says something else). */
  private async writeWaiting(waiting: Map<string, { nodeId: string; message: string }[]>): Promise<void> {
    const store = this.o.raft.store;
    for (const [id, want] of waiting) {
      const v = store.get('volume', id) as VolumeObject | undefined;
      if (!v) continue;
      const have = v.status.waiting ?? [];
      const same = have.length === want.length && want.every((w) => have.some((h) => h.nodeId === w.nodeId && h.message === w.message));
      if (same) continue;
      await updateVolume(this.o.raft, id, (cur) => volumeInput(cur, {
        status: { waiting: want.map((w) => ({ ...w, since: (cur.status.waiting ?? []).find((h) => h.nodeId === w.nodeId && h.message === w.message)?.since ?? Date.now() })) },
      })).catch((e) => this.o.log(`volume controller: recording why volume ${v.name} waits failed: ${(e as Error).message}`));
    }
  }
}
