// The dispatcher on every manager: agent sessions (registration, heartbeats, a session message
// re-sent when the node or the manager set changes), the assignments stream (the full set of the
// node's tasks, then batched deltas) and task status updates written in batches every 100 ms.
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { MethodSpec } from '../security/authz.js';
import { denied, notFound } from '../security/errors.js';
import { updateNode, type Manager } from '../control/manager.js';
import { nodeInput, type NodeObject } from '../control/model.js';
import type { StoreEvent, StoreObject, TxnOp } from '../store/types.js';

export const HEARTBEAT_MS = 5_000;
const GRACE = 3;
const BATCH_MS = 100;
const TASK_STATES = ['new', 'pending', 'assigned', 'accepted', 'preparing', 'starting', 'running', 'complete', 'failed', 'shutdown', 'rejected'];

interface Session {
  id: string;
  nodeId: string;
  lastBeat: number;
  end(why: string): void;
}

export class Dispatcher {
  private readonly sessions = new Map<string, Session>();
  /** Ends each open Assignments stream (so stop() releases agents at once, not at the grace timeout). */
  private readonly streamEnders = new Set<() => void>();
  private readonly queued = new Map<string, { nodeId: string; status: Record<string, unknown> }>();
  private flushTimer?: NodeJS.Timeout;
  private readonly expiry: NodeJS.Timeout;

  constructor(private readonly mgr: Manager, private readonly log: (m: string) => void, readonly heartbeatMs = HEARTBEAT_MS) {
    this.expiry = setInterval(() => {
      const now = Date.now();
      for (const s of this.sessions.values()) if (now - s.lastBeat > this.heartbeatMs * GRACE) s.end(`no heartbeat for ${now - s.lastBeat} ms`);
    }, 1000);
  }

  stop(): void {
    clearInterval(this.expiry);
    clearTimeout(this.flushTimer);
    for (const s of this.sessions.values()) s.end('the manager is stopping');
    for (const end of [...this.streamEnders]) end();
  }

  private session(id: string, nodeId: string): Session {
    const s = this.sessions.get(String(id ?? ''));
    if (!s) throw notFound(`session ${id} is unknown to this manager (it restarted, or the session expired): open a new session`);
    if (s.nodeId !== nodeId) throw denied(`session ${id} belongs to another node`);
    return s;
  }

  private managers() {
    return this.mgr.nodes().filter((n) => n.status.raft && n.status.role === 'manager').map((n) => ({ node_id: n.id, addr: n.status.addr, gossip_addr: n.status.gossipAddr }));
  }

  private sessionMessage(s: Session, n: NodeObject) {
    return {
      session_id: s.id,
      node_id: n.id,
      role: n.spec.desiredRole,
      availability: n.spec.availability,
      managers: this.managers(),
      gossip_key: Buffer.from(this.mgr.cluster()?.spec.gossipKey ?? '', 'base64'),
      heartbeat_period_ms: this.heartbeatMs,
    };
  }

  table(): Record<string, MethodSpec> {
    const both: ('manager' | 'worker')[] = ['manager', 'worker'];
    return {
      Session: { roles: both, stream: (call, ctx) => this.openSession(call, ctx.identity!.nodeId) },
      Heartbeat: {
        roles: both,
        unary: async (req: { session_id: string }, ctx) => {
          this.session(req.session_id, ctx.identity!.nodeId).lastBeat = Date.now();
          return { period_ms: this.heartbeatMs };
        },
      },
      Assignments: { roles: both, stream: (call, ctx) => this.assignments(call, ctx.identity!.nodeId) },
      UpdateTaskStatus: {
        roles: both,
        unary: async (req: { session_id: string; updates: { task_id: string; state: string; message: string; err: string; timestamp_ms: number }[] }, ctx) => {
          const nodeId = ctx.identity!.nodeId;
          this.session(req.session_id, nodeId);
          for (const u of req.updates ?? []) {
            const t = this.mgr.raft.store.get('task', u.task_id);
            if (!t) continue; // deleted meanwhile
            if (t.nodeId !== nodeId) throw denied(`task ${u.task_id} is not assigned to node ${nodeId}`);
            if (!TASK_STATES.includes(u.state)) throw denied(`task state ${JSON.stringify(u.state)} is not a task state`);
            this.queued.set(u.task_id, { nodeId, status: { state: u.state, message: u.message, err: u.err, timestamp: u.timestamp_ms } });
          }
          this.scheduleFlush();
          return {};
        },
      },
    };
  }

  private openSession(call: grpc.ServerWritableStream<any, any>, nodeId: string): Promise<void> {
    return new Promise((resolve) => {
      const n0 = this.mgr.node(nodeId);
      if (!n0) {
        call.emit('error', Object.assign(new Error(`node ${nodeId} is not known to this manager yet`), { code: 14, details: `node ${nodeId} is not known to this manager yet` }));
        resolve();
        return;
      }
      const req = call.request as { hostname: string; addr: string; gossip_addr: string };
      let ended = false;
      const s: Session = {
        id: randomBytes(12).toString('hex'),
        nodeId,
        lastBeat: Date.now(),
        end: (why) => {
          if (ended) return;
          ended = true;
          watch.cancel();
          this.sessions.delete(s.id);
          this.log(`dispatcher: session ${s.id} of node ${nodeId} ended: ${why}`);
          call.end();
          resolve();
        },
      };
      this.sessions.set(s.id, s);
      let last = '';
      const send = () => {
        const n = this.mgr.node(nodeId);
        if (!n) return s.end('the node was removed');
        const msg = this.sessionMessage(s, n);
        const key = JSON.stringify({ ...msg, gossip_key: undefined });
        if (key === last) return;
        last = key;
        call.write(msg);
      };
      // A restored snapshot ends every watch: end the session too, so the agent reconnects and
      // its new session watches again (sending once more would leave a session that hears nothing).
      const watch = this.mgr.raft.store.watch({ kinds: ['node', 'cluster'] }, () => send(), undefined, () => s.end('the store was replaced by a snapshot; reconnect'));
      call.on('cancelled', () => s.end('the agent closed it'));
      call.on('error', () => s.end('stream error'));
      send();
      // Record where the node is reachable (one write, only when it changed).
      updateNode(this.mgr, nodeId, (n) => {
        const want = { hostname: String(req.hostname || n.status.hostname), addr: String(req.addr || n.status.addr), gossipAddr: String(req.gossip_addr || n.status.gossipAddr) };
        if (want.hostname === n.status.hostname && want.addr === n.status.addr && want.gossipAddr === n.status.gossipAddr) return undefined;
        return nodeInput(n, { status: want });
      }).catch((e) => this.log(`dispatcher: recording node ${nodeId}'s addresses failed: ${(e as Error).message}`));
    });
  }

  private assignments(call: grpc.ServerWritableStream<any, any>, nodeId: string): Promise<void> {
    this.session((call.request as { session_id: string }).session_id, nodeId);
    return new Promise((resolve) => {
      const store = this.mgr.raft.store;
      let version = store.applied;
      const full = store.list('task', { nodeId });
      call.write({ type: 'complete', applies_to: '', results_in: String(version), changes: full.map((t) => change('update', t)) });
      let pending: StoreEvent[] = [];
      let timer: NodeJS.Timeout | undefined;
      const flush = () => {
        timer = undefined;
        if (pending.length === 0) return;
        const latest = new Map<string, StoreEvent>();
        for (const e of pending) latest.set(e.object.id, e);
        const to = pending[pending.length - 1]!.version;
        pending = [];
        call.write({ type: 'incremental', applies_to: String(version), results_in: String(to), changes: [...latest.values()].map((e) => change(e.type === 'delete' || e.object.nodeId !== nodeId ? 'remove' : 'update', e.object)) });
        version = to;
      };
      const watch = store.watch({ kinds: ['task'] }, (evs) => {
        for (const e of evs) if (e.object.nodeId === nodeId || pending.some((p) => p.object.id === e.object.id) || full.some((t) => t.id === e.object.id)) pending.push(e);
        if (pending.length > 0 && !timer) timer = setTimeout(flush, BATCH_MS);
      }, undefined, () => call.end());
      const done = () => {
        this.streamEnders.delete(endStream);
        watch.cancel();
        clearTimeout(timer);
        resolve();
      };
      const endStream = () => {
        done();
        call.end();
      };
      this.streamEnders.add(endStream);
      call.on('cancelled', done);
      call.on('error', done);
      call.on('close', done);
    });
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => void this.flush(), BATCH_MS);
  }

  private async flush(): Promise<void> {
    this.flushTimer = undefined;
    const batch = [...this.queued.entries()];
    this.queued.clear();
    const ops: TxnOp[] = [];
    for (const [id, u] of batch) {
      const t = this.mgr.raft.store.get('task', id) as StoreObject<unknown, { state?: string } | null> | undefined;
      if (!t) continue;
      const cur = TASK_STATES.indexOf(t.status?.state ?? 'new');
      if (TASK_STATES.indexOf(String(u.status.state)) < cur) continue; // states only move forward
      ops.push({ op: 'update', object: { kind: 'task', id: t.id, name: t.name, labels: t.labels, serviceId: t.serviceId, nodeId: t.nodeId, spec: t.spec, status: { ...(t.status ?? {}), ...u.status } }, expectVersion: t.version });
    }
    if (ops.length === 0) return;
    try {
      await this.mgr.raft.propose(ops);
    } catch (e) {
      // Put them back unless a newer update for the task arrived meanwhile; retried next round.
      for (const [id, u] of batch) if (!this.queued.has(id)) this.queued.set(id, u);
      this.log(`dispatcher: writing ${ops.length} task status update(s) failed: ${(e as Error).message}; retrying`);
      if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), 500);
    }
  }
}

function change(action: 'update' | 'remove', t: StoreObject) {
  return { action, task_id: t.id, task: action === 'update' ? Buffer.from(JSON.stringify(t)) : Buffer.alloc(0) };
}
