// The dispatcher on every manager: agent sessions (registration, heartbeats, a session message
// re-sent when the node or the manager set changes), the assignments stream (the full set of the
// node's tasks, then batched deltas) and task status updates written in batches every 100 ms.
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { MethodSpec } from '../security/authz.js';
import { denied, invalid, notFound } from '../security/errors.js';
import { updateNode, type Manager } from '../control/manager.js';
import { nodeInput, type NodeDescription, type NodeObject } from '../control/model.js';
import type { WireDescription } from '../../proto/dispatcher/wire.js';
import { CHUNK } from '../leader/commit.js';
import { heartbeatsMissed, sources } from '../metrics.js';
import { peerHost } from '../security/peer.js';
import type { LogBroker } from '../services/logs.js';
import type { NodeFiles } from '../secrets/dispatch.js';
import { NetworkViews, serveNetworks } from './network-view.js';
import { StatusQueue, type QueuedStatus } from './status-queue.js';
import { pluginsFromWire } from '../control/plugins.js';
import { volumeDispatchTable } from '../volumes/dispatch.js';
import { TASK_STATE_ORDER, isTaskState, movesForward, type TaskObject, type TaskState } from '../services/model.js';
import type { StoreEvent, StoreObject, TxnOp } from '../store/types.js';
import type { Log } from '../../proto/log.js';

export const HEARTBEAT_MS = 5_000;
const GRACE = 3;
const BATCH_MS = 100;
/** The states an agent may report (the managers alone set new .. assigned and orphaned). */
const AGENT_STATES = new Set<TaskState>(['accepted', 'preparing', 'starting', 'running', 'complete', 'shutdown', 'failed', 'rejected']);

interface Session {
  id: string;
  nodeId: string;
  lastBeat: number;
  end(why: string): void;
  /** Resolves when the session ends (its other streams end with it). */
  ended: Promise<void>;
}

interface WireStatus {
  task_id: string;
  state: string;
  message: string;
  err: string;
  timestamp_ms: number;
  container_id?: string;
  pod_id?: string;
  exit_code?: number | null;
  oom_killed?: boolean;
  health?: string;
  health_message?: string;
  ready?: boolean | null;
}

export class Dispatcher {
  private readonly sessions = new Map<string, Session>();
  /** Ends each open Assignments stream (so stop() releases agents at once, not at the grace timeout). */
  private readonly streamEnders = new Set<() => void>();
  private readonly queued = new StatusQueue();
  /** Open Assignments streams by node, fed by one store watch. */
  private readonly streams = new Map<string, Set<AssignStream>>();
  private taskWatch?: { cancel(): void };
  /** Set by shoald so agents' log streams reach the manager's log broker. */
  logs?: LogBroker;
  /** Set by shoald: tracks the secrets and configs each node's tasks need (manager/secrets). */
  files?: (nodeId: string) => NodeFiles;
  private flushTimer?: NodeJS.Timeout;
  private readonly expiry: NodeJS.Timeout;
  /** What each node's network plugin needs (network-view.ts). */
  private readonly networkViews: NetworkViews;

  constructor(private readonly mgr: Manager, private readonly log: Log, readonly heartbeatMs = HEARTBEAT_MS) {
    sources.dispatcher = () => ({ sessions: this.sessions.size });
    this.networkViews = new NetworkViews(mgr.raft.store);
    this.expiry = setInterval(() => {
      const now = Date.now();
      for (const s of this.sessions.values()) {
        if (now - s.lastBeat <= this.heartbeatMs * GRACE) continue;
        heartbeatsMissed.inc();
        s.end(`no heartbeat for ${now - s.lastBeat} ms`);
      }
    }, 1000);
  }

  stop(): void {
    clearInterval(this.expiry);
    delete sources.dispatcher;
    clearTimeout(this.flushTimer);
    this.networkViews.stop();
    for (const s of this.sessions.values()) s.end('the manager is stopping');
    for (const end of [...this.streamEnders]) end();
    this.taskWatch?.cancel();
    this.taskWatch = undefined;
    this.sessionWatch?.cancel();
    this.sessionWatch = undefined;
  }

  private session(id: string, nodeId: string): Session {
    const s = this.sessions.get(String(id ?? ''));
    if (!s) throw notFound(`session ${id} is unknown to this manager (it restarted, or the session expired): open a new session`);
    if (s.nodeId !== nodeId) throw denied(`session ${id} belongs to another node`);
    return s;
  }

  private managersCache?: { version: number; list: { node_id: string; addr: string; gossip_addr: string }[] };

  /** The managers agents may talk to (cached per store version: every session asks). */
  private managers() {
    const version = this.mgr.raft.store.applied;
    if (this.managersCache?.version !== version) {
      this.managersCache = { version, list: this.mgr.nodes().filter((n) => n.status.raft && n.status.role === 'manager').map((n) => ({ node_id: n.id, addr: n.status.addr, gossip_addr: n.status.gossipAddr })) };
    }
    return this.managersCache.list;
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
        unary: async (req: { session_id: string; updates: WireStatus[] }, ctx) => {
          const nodeId = ctx.identity!.nodeId;
          this.session(req.session_id, nodeId);
          for (const u of req.updates ?? []) {
            if (!isTaskState(u.state) || !AGENT_STATES.has(u.state)) throw invalid(`task state ${JSON.stringify(u.state)} is not one an agent reports (${[...AGENT_STATES].join(', ')})`);
          }
          // Every update is checked before any is queued: a refused batch changes nothing.
          const mine: WireStatus[] = [];
          for (const u of req.updates ?? []) {
            const t = this.mgr.raft.store.get('task', u.task_id);
            if (!t) continue; // deleted meanwhile
            if (t.nodeId !== nodeId) throw denied(`task ${u.task_id} is not assigned to node ${nodeId}`);
            mine.push(u);
          }
          for (const u of mine) this.queue(u.task_id, nodeId, u);
          this.scheduleFlush();
          return {};
        },
      },
      Networks: {
        roles: both,
        stream: (call, ctx) => {
          const nodeId = ctx.identity!.nodeId;
          const s = this.session((call.request as { session_id: string }).session_id, nodeId);
          return serveNetworks(this.networkViews, call, nodeId, s.ended);
        },
      },
      LogSubscriptions: {
        roles: both,
        stream: (call, ctx) => {
          const nodeId = ctx.identity!.nodeId;
          const s = this.session((call.request as { session_id: string }).session_id, nodeId);
          if (!this.logs) {
            call.end();
            return Promise.resolve();
          }
          return this.logs.agentStream(call, nodeId, s.ended);
        },
      },
      PublishLogs: {
        roles: both,
        unary: async (req: { session_id: string; subscription_id: string; entries: unknown[]; done: boolean; err: string }, ctx) => {
          const nodeId = ctx.identity!.nodeId;
          this.session(req.session_id, nodeId);
          return this.logs?.publish(nodeId, req) ?? { cancelled: true };
        },
      },
      // What the node has, again (its plugins changed).
      UpdateDescription: {
        roles: both,
        unary: async (req: { session_id: string; description?: WireDescription | null }, ctx) => {
          const nodeId = ctx.identity!.nodeId;
          this.session(req.session_id, nodeId);
          const d = describe(req.description);
          if (d) await updateNode(this.mgr, nodeId, (n) => (JSON.stringify(d) === JSON.stringify(n.status.description) ? undefined : nodeInput(n, { status: { description: d } })));
          return {};
        },
      },
      ...volumeDispatchTable(this.mgr, (sid, nodeId) => void this.session(sid, nodeId)),
    };
  }

  /** Keeps the latest status per task for the next batch, and every state's timestamp. */
  private queue(taskId: string, nodeId: string, u: WireStatus): void {
    const state = u.state as TaskState;
    const ts = Number(u.timestamp_ms) || Date.now();
    const status: QueuedStatus['status'] = { state, message: u.message ?? '', err: u.err ?? '' };
    if (u.container_id) status.containerId = u.container_id;
    if (u.pod_id) status.podId = u.pod_id;
    if (u.exit_code !== undefined && u.exit_code !== null) status.exitCode = Number(u.exit_code);
    if (u.oom_killed) status.oomKilled = true;
    if (u.health === 'starting' || u.health === 'healthy' || u.health === 'unhealthy') {
      status.health = u.health;
      status.healthMessage = String(u.health_message ?? '').slice(0, 1024);
    }
    if (u.ready !== undefined && u.ready !== null) status.ready = !!u.ready;
    // An older report arriving after a newer one does not win (status-queue.ts).
    this.queued.add(taskId, { nodeId, status, timestamps: { [state]: ts }, at: ts });
  }

  private openSession(call: grpc.ServerWritableStream<any, any>, nodeId: string): Promise<void> {
    return new Promise((resolve) => {
      const n0 = this.mgr.node(nodeId);
      if (!n0) {
        call.emit('error', Object.assign(new Error(`node ${nodeId} is not known to this manager yet`), { code: 14, details: `node ${nodeId} is not known to this manager yet` }));
        resolve();
        return;
      }
      const req = call.request as { hostname: string; addr: string; gossip_addr: string; description?: WireDescription | null };
      // A node's identity comes from its certificate; its addresses must be where it connects
      // from, so a session can never move another node (or this one) somewhere else.
      const bad = addressRefusal(nodeId, call.getPeer(), { addr: req.addr, gossip_addr: req.gossip_addr });
      if (bad) {
        call.emit('error', Object.assign(new Error(bad), { code: 7, details: bad }));
        resolve();
        return;
      }
      let ended = false;
      let signalEnd!: () => void;
      const s: Session = {
        id: randomBytes(12).toString('hex'),
        nodeId,
        lastBeat: Date.now(),
        ended: new Promise<void>((r) => (signalEnd = r)),
        end: (why) => {
          if (ended) return;
          ended = true;
          signalEnd();
          watch.cancel();
          this.sessions.delete(s.id);
          this.log(`dispatcher: session ${s.id} of node ${nodeId} ended: ${why}`, { nodeId, level: why.startsWith('no heartbeat') ? 'warn' : 'info' });
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
      // Changes to this node, to a manager (the manager list) or to the cluster re-send the
      // message; one store watch serves every session (watchSessions).
      const watch = this.followNode(nodeId, { send, end: (why) => s.end(why) });
      call.on('cancelled', () => s.end('the agent closed it'));
      call.on('error', () => s.end('stream error'));
      send();
      // Record where the node is reachable and what it has (one write, only when it changed);
      // retried while the session lasts (an election in flight, a busy leader): the scheduler
      // counts on the node's capacity.
      const description = describe(req.description);
      const record = (attempt: number): void => {
        updateNode(this.mgr, nodeId, (n) => {
          // The hostname is the one the node joined with; renaming is a node update, not a session's.
          const want = { hostname: n.status.hostname || String(req.hostname ?? ''), addr: String(req.addr || n.status.addr), gossipAddr: String(req.gossip_addr || n.status.gossipAddr), description: description ?? n.status.description };
          if (want.hostname === n.status.hostname && want.addr === n.status.addr && want.gossipAddr === n.status.gossipAddr && JSON.stringify(want.description) === JSON.stringify(n.status.description)) return undefined;
          return nodeInput(n, { status: want });
        }).catch((e) => {
          if (ended) return;
          const retry = Math.min(500 * 2 ** attempt, 10_000);
          if (attempt < 3 || attempt % 10 === 0) this.log(`dispatcher: recording node ${nodeId}'s addresses and resources failed: ${(e as Error).message}; retrying in ${retry} ms`, { nodeId, level: 'warn' });
          setTimeout(() => !ended && record(attempt + 1), retry).unref();
        });
      };
      record(0);
    });
  }

  /** Sessions by node, fed by one watch of nodes and the cluster. */
  private readonly sessionSenders = new Map<string, Set<SessionSender>>();
  private sessionWatch?: { cancel(): void };

  private followNode(nodeId: string, sender: SessionSender): { cancel(): void } {
    this.watchSessions();
    let set = this.sessionSenders.get(nodeId);
    if (!set) this.sessionSenders.set(nodeId, (set = new Set()));
    set.add(sender);
    return {
      cancel: () => {
        const cur = this.sessionSenders.get(nodeId);
        cur?.delete(sender);
        if (cur && cur.size === 0) this.sessionSenders.delete(nodeId);
      },
    };
  }

  private watchSessions(): void {
    if (this.sessionWatch) return;
    // A restored snapshot ends the watch: the sessions end too, so agents reconnect and their new
    // sessions are followed again (sending once more would leave sessions that hear nothing).
    this.sessionWatch = this.mgr.raft.store.watch({ kinds: ['node', 'cluster'] }, (evs) => {
      // The cluster or a manager changed: every session's message may change (managers, key).
      if (evs.some((e) => e.object.kind === 'cluster' || !!(e.object as NodeObject).status?.raft)) {
        for (const set of [...this.sessionSenders.values()]) for (const x of [...set]) x.send();
        return;
      }
      for (const e of evs) for (const x of [...(this.sessionSenders.get(e.object.id) ?? [])]) x.send();
    }, undefined, () => {
      this.sessionWatch = undefined;
      for (const set of [...this.sessionSenders.values()]) for (const x of [...set]) x.end('the store was replaced by a snapshot; reconnect');
    });
  }

  /** Routes task changes to the Assignments streams of their nodes (one watch for all). */
  private route(evs: StoreEvent[]): void {
    for (const e of evs) {
      const nodeId = e.object.nodeId;
      if (!nodeId) continue;
      const set = this.streams.get(nodeId);
      if (set) for (const st of set) st.push(e);
    }
  }

  private watchTasks(): void {
    if (this.taskWatch) return;
    // A restored snapshot ends the watch: the streams end too, so agents reconnect and re-list.
    this.taskWatch = this.mgr.raft.store.watch({ kinds: ['task'] }, (evs) => this.route(evs), undefined, () => {
      this.taskWatch = undefined;
      for (const set of this.streams.values()) for (const st of set) st.end();
    });
  }

  private assignments(call: grpc.ServerWritableStream<any, any>, nodeId: string): Promise<void> {
    this.session((call.request as { session_id: string }).session_id, nodeId);
    this.watchTasks();
    return new Promise((resolve) => {
      const store = this.mgr.raft.store;
      let version = store.applied;
      // What the agent was last sent of each task: a change of the observed status alone (the
      // agent's own report coming back) is not sent again, as SwarmKit's dispatcher does; the
      // agent acts on the spec and desired state, and on states up to assigned, set by managers.
      const sent = new Map<string, TaskObject>();
      const full = (store.list('task', { nodeId }) as TaskObject[]).filter(assignedHere);
      // Secrets and configs go in the same message as the tasks that use them, before them.
      const files = this.files?.(nodeId);
      const fileChanges = () => {
        try {
          return files?.changes() ?? [];
        } catch (e) {
          const why = `this manager cannot send the secrets node ${nodeId}'s tasks need: ${(e as Error).message}; reconnect`;
          this.log(`dispatcher: ${why}`);
          endStream(Object.assign(new Error(why), { code: 14, details: why }));
          return undefined;
        }
      };
      // File data beyond one message's budget follows in messages of its own.
      const moreFiles = (): boolean => {
        while (files?.more()) {
          const next = fileChanges();
          if (!next) return false;
          call.write({ type: 'incremental', applies_to: String(version), results_in: String(version), changes: next });
        }
        return true;
      };
      for (const t of full) {
        sent.set(t.id, t);
        files?.task(t.id, t);
      }
      let pending = new Map<string, StoreEvent>();
      let timer: NodeJS.Timeout | undefined;
      // Deltas go out at most once per BATCH_MS: the first change after a quiet spell at once
      // (on the next turn of the event loop, so the changes of one applied raft batch travel
      // together), later ones gathered until BATCH_MS after the last message. A new task reaches
      // its node without waiting out a batch, and a burst still becomes few messages.
      let lastSent = 0;
      const flush = () => {
        timer = undefined;
        lastSent = Date.now();
        if (pending.size === 0) return;
        const changes = [];
        let to = version;
        for (const e of pending.values()) {
          to = Math.max(to, e.version);
          const t = e.object as TaskObject;
          if (e.type !== 'delete' && t.nodeId === nodeId && assignedHere(t)) {
            const was = sent.get(t.id);
            sent.set(t.id, t);
            if (!was || !onlyReported(was, t)) changes.push(change('update', t));
            // The node's files follow every change (a task the agent reports finished lets its
            // secrets go), also one not sent to the agent.
            files?.task(t.id, t);
          } else if (sent.delete(t.id)) {
            changes.push(change('remove', t));
            files?.task(t.id, undefined);
          }
        }
        pending = new Map();
        const fc = fileChanges();
        if (!fc) return;
        if (changes.length + fc.length > 0) call.write({ type: 'incremental', applies_to: String(version), results_in: String(to), changes: [...fc, ...changes] });
        version = to;
        moreFiles();
      };
      const st: AssignStream = {
        push: (e) => {
          pending.set(e.object.id, e);
          if (!timer) timer = setTimeout(flush, Math.max(0, lastSent + BATCH_MS - Date.now()));
        },
        end: () => endStream(),
      };
      let set = this.streams.get(nodeId);
      if (!set) this.streams.set(nodeId, (set = new Set()));
      set.add(st);
      const done = () => {
        this.streamEnders.delete(endStream);
        const s = this.streams.get(nodeId);
        s?.delete(st);
        if (s && s.size === 0) this.streams.delete(nodeId);
        clearTimeout(timer);
        resolve();
      };
      const endStream = (err?: Error) => {
        done();
        if (err) call.emit('error', err);
        else call.end();
      };
      this.streamEnders.add(endStream);
      call.on('cancelled', done);
      call.on('error', done);
      call.on('close', done);
      const first = fileChanges();
      if (first) {
        call.write({ type: 'complete', applies_to: '', results_in: String(version), changes: [...first, ...full.map((t) => change('update', t))] });
        moreFiles();
      }
    });
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => void this.flush(), BATCH_MS);
  }

  private async flush(): Promise<void> {
    this.flushTimer = undefined;
    const batch = this.queued.take();
    // Status patches (store/types.ts StatusPatch), not whole tasks: the store applies each one
    // forward only on the task's current status, so a patch needs no version check and a batch
    // never fails because another write touched one of its tasks meanwhile.
    const ops: TxnOp[] = [];
    for (const [id, u] of batch) {
      const t = this.mgr.raft.store.get('task', id) as TaskObject | undefined;
      if (!t) continue;
      if (!movesForward(t.status.state, u.status.state) && t.status.state !== u.status.state) continue; // states only move forward
      ops.push({ op: 'status', kind: 'task', id, nodeId: u.nodeId, status: { ...u.status, timestamps: u.timestamps } });
    }
    if (ops.length === 0) return;
    // One transaction per chunk; a chunk that fails (raft leadership moving) goes back to the
    // queue and is retried.
    const queuedById = new Map(batch);
    const parts: TxnOp[][] = [];
    for (let i = 0; i < ops.length; i += CHUNK) parts.push(ops.slice(i, i + CHUNK));
    const results = await Promise.allSettled(parts.map((p) => this.mgr.raft.propose(p)));
    let failed = 0;
    let why = '';
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      failed += parts[i]!.length;
      why ||= (r.reason as Error).message;
      // Back in the queue, where a later report of the same task (queued while this write was in
      // flight, or put back by another failed write) stands over it.
      this.queued.putBack(parts[i]!.map((op) => {
        const id = (op as { id: string }).id;
        return [id, queuedById.get(id)!];
      }));
    });
    if (failed > 0) {
      this.log(`dispatcher: writing ${failed} task status update(s) failed: ${why}; retrying`);
      if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), 200);
    }
  }
}

/** Why a session's announced addresses are refused (they are not where it connects from). */
export function addressRefusal(nodeId: string, peer: string, addrs: Record<string, string | undefined>): string | undefined {
  const from = peerHost(peer);
  if (!from || from.startsWith('/') || peer.startsWith('unix:')) return undefined; // a local socket: nothing to compare
  for (const [what, a] of Object.entries(addrs)) {
    if (!a) continue;
    const host = peerHost(a);
    if (host !== from) {
      return `node ${nodeId} announces ${what} ${a} but connects from ${from}: a node's addresses must be its own; start shoald with --advertise (and its raft/gossip ports) on the address it reaches the managers from`;
    }
  }
  return undefined;
}

function describe(d: WireDescription | null | undefined): NodeDescription | undefined {
  if (!d) return undefined;
  const n = (x: unknown) => (Number.isFinite(Number(x)) && Number(x) > 0 ? Math.floor(Number(x)) : 0);
  const str = (x: unknown) => String(x ?? '').slice(0, 128);
  return { cpuMillis: n(d.cpu_millis), memoryBytes: n(d.memory_bytes), runtimeName: str(d.runtime_name), runtimeVersion: str(d.runtime_version), os: str(d.os), arch: str(d.arch), ...(d.locked ? { locked: true } : {}), ...pluginsFromWire(d) };
}

interface SessionSender {
  send(): void;
  end(why: string): void;
}

interface AssignStream {
  push(e: StoreEvent): void;
  end(): void;
}

/** A task the node must know about: placed there by the scheduler (or later), never before. */
function assignedHere(t: TaskObject): boolean {
  return TASK_STATE_ORDER[t.status?.state ?? 'new'] >= TASK_STATE_ORDER.assigned;
}

/**
 * True if `now` differs from `was` only by what the agent reports (its observed status past
 * assigned): the same spec, desired state and node. Store objects are replaced, never changed,
 * and a status write keeps the spec object, so comparing references is exact enough (a spec
 * rewritten unchanged is merely sent again).
 */
function onlyReported(was: TaskObject, now: TaskObject): boolean {
  return was.spec === now.spec && was.nodeId === now.nodeId && TASK_STATE_ORDER[now.status.state] > TASK_STATE_ORDER.assigned;
}

function change(action: 'update' | 'remove', t: StoreObject) {
  return { action, task_id: t.id, task: action === 'update' ? Buffer.from(JSON.stringify(t)) : Buffer.alloc(0) };
}
