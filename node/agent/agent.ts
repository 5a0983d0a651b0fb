// The agent: keeps one session with a manager (heartbeats at the period the manager asks for),
// follows its assignments (a full set, then deltas) and reports task status in batches every
// 100 ms. When the manager goes away it moves to the next known manager; the assignments it holds
// stay until the new session's full set replaces them, and every status is re-sent there.
import * as grpc from '@grpc/grpc-js';
import { dispatcherDef } from '../../proto/services.js';
import { CHANNEL_OPTIONS, clientCredentials, type TlsIdentity } from '../../manager/security/credentials.js';
import type { WireDescription } from '../../proto/dispatcher/wire.js';
import type { TaskReport } from './executor.js';
import type { LogPublisher, Subscription } from './logs.js';
import type { TaskFiles, WireFileData } from './secrets.js';
import type { Log } from '../../proto/log.js';
import type { NetworksMessage } from '../../manager/dispatcher/network-view.js';

export interface ManagerRef {
  node_id: string;
  addr: string;
  gossip_addr: string;
}

export interface SessionInfo {
  sessionId: string;
  nodeId: string;
  role: string;
  availability: string;
  managers: ManagerRef[];
  gossipKey: Buffer;
  heartbeatMs: number;
}

export interface AgentOptions {
  tls(): TlsIdentity;
  hostname: string;
  addr: string;
  gossipAddr(): string;
  /** Managers to try, in order (persisted list plus the join address). */
  managers(): string[];
  onSession(s: SessionInfo, manager: string): void;
  onAssignments?(tasks: Map<string, unknown>): void;
  /** Where assignments are kept across restarts (the state dir); loaded at construction. */
  store?: { load(): [string, unknown][]; save(tasks: [string, unknown][]): void };
  /** What the node has (CPU, memory, runtime), sent with each session. */
  description?(): Promise<WireDescription | undefined>;
  /** Serves the managers' log subscriptions for this node's tasks. */
  logs?: LogPublisher;
  /** Holds the secrets and configs sent with the assignments (in memory only, never saved). */
  files?: Pick<TaskFiles, 'reset' | 'apply'>;
  /** Gets the Networks stream: what this node's network plugin must know (network.ts). */
  onNetworks?(m: NetworksMessage): void;
  log: Log;
}

export type { WireDescription };
/** What the executor reports of a task (the agent batches and sends it). */
export type TaskStatusReport = TaskReport;

type Client = grpc.Client & Record<string, any>;

export class Agent {
  readonly tasks = new Map<string, unknown>();
  private readonly statuses = new Map<string, TaskStatusReport & { ts: number }>();
  private readonly unsent = new Set<string>();
  private stopped = false;
  private client?: Client;
  private current?: string;
  private sessionId = '';
  private idx = 0;
  private cleanup: (() => void)[] = [];
  private flushTimer?: NodeJS.Timeout;
  connected = false;

  constructor(private readonly o: AgentOptions) {
    for (const [id, task] of o.store?.load() ?? []) this.tasks.set(id, task);
  }

  get manager(): string | undefined {
    return this.connected ? this.current : undefined;
  }

  start(): void {
    void this.loop();
  }

  /** Records a task's latest status; it is sent in the next batch (and again on a new session). */
  report(taskId: string, s: TaskStatusReport): void {
    this.statuses.set(taskId, { ...s, ts: Date.now() });
    this.unsent.add(taskId);
    if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), 100);
  }

  /** A unary Dispatcher call on the current session (volumes); refused while there is none. */
  call<T>(method: string, req: object, timeoutMs: number): Promise<T> {
    const c = this.client;
    if (!c || !this.sessionId || !this.connected) return Promise.reject(new Error('no session with a manager yet'));
    return new Promise<T>((res, rej) => c[method]!({ session_id: this.sessionId, ...req }, { deadline: Date.now() + timeoutMs }, (e: grpc.ServiceError | null, r: T) => (e ? rej(new Error(e.details || e.message)) : res(r))));
  }

  /** The node's description changed (a plugin registered or left): tell the managers. */
  async describeAgain(): Promise<void> {
    if (!this.connected) return; // the next session sends it
    const description = await this.o.description?.();
    if (!description) return;
    await this.call('UpdateDescription', { description }, 10_000);
  }

  /** The task left this node: its status is no longer sent. */
  forget(taskId: string): void {
    this.statuses.delete(taskId);
    this.unsent.delete(taskId);
  }

  private async flush(): Promise<void> {
    this.flushTimer = undefined;
    if (!this.client || !this.sessionId || this.unsent.size === 0) return;
    const ids = [...this.unsent];
    this.unsent.clear();
    const updates = ids.filter((id) => this.statuses.has(id)).map((id) => {
      const s = this.statuses.get(id)!;
      return { task_id: id, state: s.state, message: s.message ?? '', err: s.err ?? '', timestamp_ms: s.ts, container_id: s.containerId ?? '', pod_id: s.podId ?? '', exit_code: s.exitCode ?? null, oom_killed: !!s.oomKilled, health: s.health ?? '', health_message: s.healthMessage ?? '', ready: s.ready ?? null };
    });
    if (updates.length === 0) return;
    try {
      await new Promise<void>((res, rej) => this.client!.UpdateTaskStatus({ session_id: this.sessionId, updates }, { deadline: Date.now() + 5000 }, (e: Error | null) => (e ? rej(e) : res())));
    } catch (e) {
      for (const id of ids) this.unsent.add(id);
      this.o.log(`agent: sending ${ids.length} task status update(s) failed: ${(e as Error).message}; retrying`);
      if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), 1000);
    }
  }

  private pick(): string | undefined {
    const list = this.o.managers();
    if (list.length === 0) return undefined;
    const a = list[this.idx % list.length]!;
    this.idx++;
    return a;
  }

  private async loop(): Promise<void> {
    let backoff = 100;
    while (!this.stopped) {
      const addr = this.pick();
      if (!addr) {
        await sleep(1000);
        continue;
      }
      const started = Date.now();
      try {
        await this.runSession(addr);
      } catch (e) {
        if (!this.stopped) this.o.log(`agent: session with ${addr} ended: ${(e as Error).message}`);
      }
      this.teardown();
      if (this.stopped) return;
      backoff = Date.now() - started > 10_000 ? 100 : Math.min(backoff * 2, 4_000);
      await sleep(backoff / 2 + Math.random() * backoff / 2);
    }
  }

  private teardown(): void {
    this.connected = false;
    for (const f of this.cleanup.splice(0)) f();
    this.client?.close();
    this.client = undefined;
    this.sessionId = '';
  }

  private async runSession(addr: string): Promise<void> {
    let description: WireDescription | undefined;
    try {
      description = await this.o.description?.();
    } catch (e) {
      this.o.log(`agent: describing the node failed: ${(e as Error).message}`);
    }
    if (this.stopped) return;
    return this.openSessionWith(addr, description);
  }

  private openSessionWith(addr: string, description: WireDescription | undefined): Promise<void> {
    const Ctor = grpc.makeGenericClientConstructor(dispatcherDef(), 'Dispatcher');
    const c = new Ctor(addr, clientCredentials(this.o.tls()), CHANNEL_OPTIONS) as Client;
    this.client = c;
    this.current = addr;
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (e?: Error) => {
        if (done) return;
        done = true;
        if (e) reject(e);
        else resolve();
      };
      this.cleanup.push(() => finish());
      const stream = c.Session({ hostname: this.o.hostname, addr: this.o.addr, gossip_addr: this.o.gossipAddr(), description: description ?? null });
      this.cleanup.push(() => stream.cancel());
      let hb: NodeJS.Timeout | undefined;
      this.cleanup.push(() => clearTimeout(hb));
      // A heartbeat that times out is tried again while the manager still holds the session (it
      // ends one after 3 periods without a heartbeat): on a busy machine one slow answer would
      // otherwise end the session, and a new one re-sends every status and assignment.
      let lastBeat = Date.now();
      const beat = (period: number, delay = period) => {
        hb = setTimeout(() => {
          // The session may have ended (and its channel closed) while this timer or the call
          // before it was pending: a call on a closed channel throws.
          if (done) return;
          c.Heartbeat({ session_id: this.sessionId }, { deadline: Date.now() + Math.min(5000, period) }, (e: grpc.ServiceError | null, r: { period_ms: number }) => {
            if (done) return;
            if (e) {
              if (e.code === grpc.status.DEADLINE_EXCEEDED && Date.now() - lastBeat < 3 * period) return beat(period, 0);
              return finish(new Error(`heartbeat failed: ${e.details ?? e.message}`));
            }
            lastBeat = Date.now();
            beat(Number(r.period_ms) || period);
          });
        }, delay);
      };
      stream.on('data', (m: any) => {
        const first = !this.sessionId;
        this.sessionId = m.session_id;
        const info: SessionInfo = { sessionId: m.session_id, nodeId: m.node_id, role: m.role, availability: m.availability, managers: m.managers ?? [], gossipKey: m.gossip_key, heartbeatMs: Number(m.heartbeat_period_ms) || 5000 };
        if (first) {
          this.connected = true;
          this.o.log(`agent: session ${m.session_id} with manager ${addr}`);
          beat(info.heartbeatMs);
          this.openAssignments(c, finish);
          if (this.o.onNetworks) this.openNetworks(c, this.o.onNetworks);
          if (this.o.logs) this.openLogSubscriptions(c, this.o.logs);
          for (const id of this.statuses.keys()) this.unsent.add(id);
          if (this.unsent.size > 0 && !this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), 100);
        }
        this.o.onSession(info, addr);
      });
      stream.on('error', (e: grpc.ServiceError) => finish(new Error(e.details ?? e.message)));
      stream.on('end', () => finish(new Error('the manager closed the session')));
    });
  }

  private openAssignments(c: Client, finish: (e?: Error) => void): void {
    const s = c.Assignments({ session_id: this.sessionId });
    this.cleanup.push(() => s.cancel());
    s.on('data', (m: { type: string; changes: { action: string; task_id: string; task: Buffer; secret?: WireFileData | null; config?: WireFileData | null }[] }) => {
      if (m.type === 'complete') {
        this.tasks.clear();
        this.o.files?.reset();
      }
      for (const ch of m.changes ?? []) {
        if (ch.secret || ch.config) {
          this.o.files?.apply(ch);
          continue;
        }
        if (ch.action === 'remove') this.tasks.delete(ch.task_id);
        else this.tasks.set(ch.task_id, JSON.parse(ch.task.toString('utf8')));
      }
      try {
        this.o.store?.save([...this.tasks.entries()]);
      } catch (e) {
        this.o.log(`agent: saving assignments failed: ${(e as Error).message}`);
      }
      this.o.onAssignments?.(this.tasks);
    });
    s.on('error', (e: grpc.ServiceError) => finish(new Error(`assignments: ${e.details ?? e.message}`)));
    // The manager ends the stream when its store is replaced by a snapshot: start a new session.
    s.on('end', () => finish(new Error('assignments: the manager ended the stream')));
  }

  /** The view of the cluster this node's network plugin needs: full, then changes. */
  private openNetworks(c: Client, onView: (m: NetworksMessage) => void): void {
    const s = c.Networks({ session_id: this.sessionId });
    this.cleanup.push(() => s.cancel());
    s.on('data', (m: NetworksMessage) => onView(m));
    // The session goes on without it (a manager of an older version); the next session asks again.
    s.on('error', (e: grpc.ServiceError) => {
      if (e.code !== grpc.status.CANCELLED) this.o.log(`agent: the managers' network view: ${e.details ?? e.message}`);
    });
  }

  /** The manager's log subscriptions for this node's tasks; lines go back with PublishLogs. */
  private openLogSubscriptions(c: Client, logs: LogPublisher): void {
    const sid = this.sessionId;
    const s = c.LogSubscriptions({ session_id: sid });
    this.cleanup.push(() => s.cancel());
    s.on('data', (sub: Subscription) => {
      logs.handle(sub, (batch) => new Promise((res, rej) => c.PublishLogs({ session_id: sid, subscription_id: sub.id, ...batch }, { deadline: Date.now() + 30_000 }, (e: grpc.ServiceError | null, r: { cancelled: boolean }) => (e ? rej(e) : res(r)))));
    });
    // A manager without a log broker ends the stream at once; the session goes on without logs.
    s.on('error', () => {});
  }

  stop(): void {
    this.stopped = true;
    this.o.logs?.stopAll();
    clearTimeout(this.flushTimer);
    this.teardown();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
