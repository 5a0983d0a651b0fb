// `shoal events`: what happened in the cluster, told from the store's own change events (the
// replicated store's watch, replayed from its bounded event log). A store event becomes zero or
// more cluster events (a service updated or rolled back, a task's state, a node down, a leader
// elected, a scheduled run started), numbered by (store version, position within the version):
// every manager applies the same entries in the same order, so it derives the same events with the
// same numbers, and a client that loses its manager resumes on another from the last one it saw.
import type * as grpc from '@grpc/grpc-js';
import type { Manager } from '../control/manager.js';
import type { NodeObject } from '../control/model.js';
import { readLatest } from '../control/service.js';
import type { MethodSpec } from '../security/authz.js';
import { invalid, unavailable } from '../security/errors.js';
import type { ObjectStore } from '../store/store.js';
import type { StoreEvent, StoreObject } from '../store/types.js';
import { TASK_STATE_ORDER, type ServiceObject, type TaskObject } from './model.js';

export const EVENT_TYPES = ['service', 'task', 'node', 'cluster', 'secret', 'config', 'network', 'volume'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface ClusterEvent {
  version: number;
  /** Position among the events derived from one store version. */
  seq: number;
  /** When it happened: the time the object records (a task's state, a service's change), else when a manager applied it; 0 if unknown. */
  timeMs: number;
  type: EventType;
  action: string;
  id: string;
  name: string;
  attributes: Record<string, string>;
  message: string;
}

type Draft = Omit<ClusterEvent, 'version' | 'seq' | 'timeMs'> & { timeMs?: number };

function taskLabel(t: TaskObject): string {
  return t.spec.slot > 0 ? `${t.spec.serviceName}.${t.spec.slot}` : `${t.spec.serviceName}.${(t.nodeId ?? '').slice(0, 12)}`;
}

function modeText(s: ServiceObject): string {
  const m = s.spec.mode;
  if (m.type === 'replicated') return `replicated, ${m.replicas} replica(s)`;
  if (m.type === 'replicated-job') return `replicated-job, ${m.completions} completion(s)`;
  return m.type;
}

function serviceEvents(e: StoreEvent): Draft[] {
  const s = e.object as ServiceObject;
  const base = { type: 'service' as const, id: s.id, name: s.name };
  const attrs = (x: Record<string, string | number | undefined>) => Object.fromEntries(Object.entries(x).filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => [k, String(v)]));
  if (e.type === 'create') {
    return [{ ...base, action: 'create', timeMs: s.status?.createdAt, attributes: attrs({ mode: s.spec.mode.type, image: s.spec.task.main.image, stack: s.labels['io.shoal.stack'], schedule: s.spec.schedule?.cron }), message: `service ${s.name} created (${modeText(s)}, image ${s.spec.task.main.image}${s.spec.schedule ? `, schedule "${s.spec.schedule.cron}"` : ''})` }];
  }
  if (e.type === 'delete') return [{ ...base, action: 'remove', attributes: {}, message: `service ${s.name} removed` }];
  const p = e.prev as ServiceObject | undefined;
  if (!p) return [];
  const out: Draft[] = [];
  const rev = s.status?.revision ?? 1;
  const u = s.status?.update;
  const pu = p.status?.update;
  const revisionChanged = rev !== (p.status?.revision ?? 1);
  if (revisionChanged) {
    const r = s.status?.revisions?.at(-1);
    const rollback = !!u && u.state === 'rollback_started' && u.startedAt !== pu?.startedAt;
    out.push({ ...base, action: rollback ? 'rollback' : 'update', timeMs: r?.at ?? s.status?.updatedAt, attributes: attrs({ revision: rev }), message: `service ${s.name} ${rollback ? 'rolled back' : 'updated'} to revision ${rev}: ${r?.change ?? 'spec changed'}` });
  } else if (s.spec.mode.type === 'replicated' && p.spec.mode.type === 'replicated' && s.spec.mode.replicas !== p.spec.mode.replicas) {
    out.push({ ...base, action: 'scale', timeMs: s.status?.updatedAt, attributes: attrs({ replicas: s.spec.mode.replicas, from: p.spec.mode.replicas }), message: `service ${s.name} scaled from ${p.spec.mode.replicas} to ${s.spec.mode.replicas}` });
  }
  if (u && (u.state !== pu?.state || u.startedAt !== pu?.startedAt) && !(revisionChanged && (u.state === 'updating' || u.state === 'rollback_started'))) {
    out.push({ ...base, action: `update-${u.state.replace(/_/g, '-')}`, timeMs: u.completedAt ?? u.startedAt, attributes: attrs({ state: u.state }), message: `service ${s.name}: ${u.message || u.state}` });
  }
  if (JSON.stringify(s.labels) !== JSON.stringify(p.labels) && !revisionChanged) out.push({ ...base, action: 'update', attributes: {}, message: `service ${s.name}: labels changed` });
  // Scheduled runs: started, finished, skipped, waiting.
  const st = s.status?.schedule;
  const pst = p.status?.schedule;
  if (st) {
    const before = new Map((pst?.runs ?? []).map((r) => [r.iteration, r]));
    for (const r of st.runs) {
      const was = before.get(r.iteration);
      if (!was && r.iteration > (pst?.iteration ?? 0)) out.push({ ...base, action: 'run-start', timeMs: r.startedAt, attributes: attrs({ run: r.iteration, scheduled: new Date(r.scheduledAt).toISOString() }), message: `service ${s.name}: run ${r.iteration} started for the tick of ${new Date(r.scheduledAt).toISOString()}` });
      if (r.result && !was?.result) out.push({ ...base, action: `run-${r.result}`, timeMs: r.finishedAt, attributes: attrs({ run: r.iteration }), message: `service ${s.name}: run ${r.iteration} ${r.result}${r.message ? ` (${r.message})` : ''}` });
    }
    if (st.waiting && st.waiting.scheduledAt !== pst?.waiting?.scheduledAt) out.push({ ...base, action: 'run-wait', attributes: attrs({ scheduled: new Date(st.waiting.scheduledAt).toISOString() }), message: `service ${s.name}: the tick of ${new Date(st.waiting.scheduledAt).toISOString()} waits: ${st.waiting.reason}` });
    if (st.skipped > (pst?.skipped ?? 0) && st.lastSkip) out.push({ ...base, action: 'run-skip', attributes: attrs({ scheduled: new Date(st.lastSkip.scheduledAt).toISOString() }), message: `service ${s.name}: the tick of ${new Date(st.lastSkip.scheduledAt).toISOString()} was skipped: ${st.lastSkip.reason}` });
  }
  return out;
}

function taskEvents(e: StoreEvent): Draft[] {
  const t = e.object as TaskObject;
  const base = { type: 'task' as const, id: t.id, name: taskLabel(t) };
  const attrs: Record<string, string> = { service: t.spec.serviceName, slot: String(t.spec.slot) };
  if (t.nodeId) attrs.node = t.nodeId;
  if (t.spec.iteration) attrs.run = String(t.spec.iteration);
  if (e.type === 'create') return [{ ...base, action: 'create', timeMs: t.status.timestamps.new, attributes: attrs, message: `task ${base.name} created${t.status.message ? `: ${t.status.message}` : ''}` }];
  if (e.type === 'delete') return [{ ...base, action: 'remove', attributes: attrs, message: `task ${base.name} removed` }];
  const p = e.prev as TaskObject | undefined;
  if (!p) return [];
  const out: Draft[] = [];
  if (t.status.state !== p.status.state) {
    const st = t.status.state;
    let why = '';
    if (t.status.err) why = `: ${t.status.err}`;
    else if (t.status.exitCode !== undefined && TASK_STATE_ORDER[st] > TASK_STATE_ORDER.running) why = `: exit ${t.status.exitCode}${t.status.oomKilled ? ' (OOM killed)' : ''}`;
    else if (t.status.message && st !== 'running') why = ` (${t.status.message})`;
    out.push({ ...base, action: st, timeMs: t.status.timestamps[st], attributes: { ...attrs, from: p.status.state, to: st }, message: `task ${base.name} ${p.status.state} -> ${st}${why}` });
  }
  if (t.spec.desiredState !== p.spec.desiredState) out.push({ ...base, action: 'desired', attributes: { ...attrs, desired: t.spec.desiredState }, message: `task ${base.name} desired ${t.spec.desiredState}` });
  if (t.status.health && t.status.health !== p.status.health) out.push({ ...base, action: 'health', attributes: { ...attrs, health: t.status.health }, message: `task ${base.name} ${t.status.health}${t.status.healthMessage ? `: ${t.status.healthMessage}` : ''}` });
  return out;
}

function nodeEvents(e: StoreEvent): Draft[] {
  const n = e.object as NodeObject;
  const host = n.status?.hostname || n.name;
  const base = { type: 'node' as const, id: n.id, name: host };
  if (e.type === 'create') return [{ ...base, action: 'join', attributes: { role: n.status?.role ?? '' }, message: `node ${host} joined as a ${n.status?.role ?? 'node'}` }];
  if (e.type === 'delete') return [{ ...base, action: 'remove', attributes: {}, message: `node ${host} removed from the cluster` }];
  const p = e.prev as NodeObject | undefined;
  if (!p) return [];
  const out: Draft[] = [];
  if (n.status.state !== p.status.state) out.push({ ...base, action: n.status.state === 'ready' ? 'up' : n.status.state, attributes: { from: p.status.state, to: n.status.state }, message: `node ${host} is ${n.status.state}${n.status.message ? ` (${n.status.message})` : ''}` });
  if (n.spec.availability !== p.spec.availability) out.push({ ...base, action: 'availability', attributes: { availability: n.spec.availability }, message: `node ${host} availability ${p.spec.availability} -> ${n.spec.availability}` });
  if (n.spec.desiredRole !== p.spec.desiredRole) out.push({ ...base, action: n.spec.desiredRole === 'manager' ? 'promote' : 'demote', attributes: { role: n.spec.desiredRole }, message: `node ${host} ${n.spec.desiredRole === 'manager' ? 'promoted to manager' : 'demoted to worker'}` });
  const l = n.status.leadership;
  const pl = p.status.leadership;
  if (l && l.term !== pl?.term) out.push({ ...base, action: 'leader', timeMs: l.since, attributes: { term: String(l.term) }, message: `manager ${host} is the leader (raft term ${l.term})` });
  if (JSON.stringify(n.labels) !== JSON.stringify(p.labels)) out.push({ ...base, action: 'update', attributes: {}, message: `node ${host}: labels changed` });
  return out;
}

function otherEvents(e: StoreEvent): Draft[] {
  const o: StoreObject = e.object;
  const type = o.kind as EventType;
  if (o.kind === 'cluster') {
    if (e.type !== 'update' || !e.prev) return [];
    const c = o.spec as { tokens?: unknown; removed?: Record<string, number> };
    const pc = e.prev.spec as typeof c;
    const what = JSON.stringify(c.tokens) !== JSON.stringify(pc.tokens) ? 'a join token was rotated' : JSON.stringify(c.removed) !== JSON.stringify(pc.removed) ? 'the removed nodes changed' : 'cluster settings changed';
    return [{ type, id: o.id, name: o.name, action: 'update', attributes: {}, message: what }];
  }
  const verb = e.type === 'delete' ? 'remove' : e.type;
  return [{ type, id: o.id, name: o.name, action: verb, attributes: {}, message: `${o.kind} ${o.name} ${verb === 'remove' ? 'removed' : verb === 'create' ? 'created' : 'updated'}` }];
}

/** The cluster events one store event stands for (without version, seq and time). */
export function describe(e: StoreEvent): Draft[] {
  switch (e.object.kind) {
    case 'service':
      return serviceEvents(e);
    case 'task':
      return taskEvents(e);
    case 'node':
      return nodeEvents(e);
    default:
      return otherEvents(e);
  }
}

/**
 * When this manager applied each version (for events whose object records no time of its own).
 * A ring of the most recent versions, as long as the store's event log; versions applied before
 * it started (replayed at start) have no time here.
 */
export class ApplyTimes {
  private readonly versions: Float64Array;
  private readonly times: Float64Array;
  private head = 0;
  private size = 0;
  private watch?: { cancel(): void };

  constructor(private readonly store: ObjectStore, readonly capacity = 100_000) {
    this.versions = new Float64Array(capacity);
    this.times = new Float64Array(capacity);
    this.subscribe();
  }

  private subscribe(): void {
    this.watch = this.store.watch({}, (evs) => this.record(evs[0]!.version, Date.now()), undefined, () => this.subscribe());
  }

  record(version: number, at: number): void {
    if (this.size > 0 && this.versions[(this.head + this.size - 1) % this.capacity] === version) return;
    if (this.size === this.capacity) {
      this.head = (this.head + 1) % this.capacity;
      this.size--;
    }
    const i = (this.head + this.size) % this.capacity;
    this.versions[i] = version;
    this.times[i] = at;
    this.size++;
  }

  /** The time `version` was applied here, or 0. */
  at(version: number): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.versions[(this.head + mid) % this.capacity]! < version) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.size && this.versions[(this.head + lo) % this.capacity] === version ? this.times[(this.head + lo) % this.capacity]! : 0;
  }

  stop(): void {
    this.watch?.cancel();
  }
}

/** Numbers the events of a stream of store events: seq restarts at 0 with each version. */
export class Numberer {
  private version = -1;
  private seq = 0;
  constructor(private readonly times?: ApplyTimes) {}

  events(evs: StoreEvent[]): ClusterEvent[] {
    const out: ClusterEvent[] = [];
    for (const e of evs) {
      if (e.version !== this.version) {
        this.version = e.version;
        this.seq = 0;
      }
      for (const d of describe(e)) out.push({ ...d, version: e.version, seq: this.seq++, timeMs: d.timeMs || this.times?.at(e.version) || 0 });
    }
    return out;
  }
}

export function eventToWire(e: ClusterEvent) {
  return { version: e.version, seq: e.seq, time_ms: e.timeMs, type: e.type, action: e.action, id: e.id, name: e.name, attributes: e.attributes, message: e.message, note: '' };
}

interface EventsRequest {
  after_version: number;
  after_seq?: number | null;
  since_ms: number;
  types: string[];
  follow: boolean;
}

/** How often a following stream tells the client how far it has seen (so a resume skips quiet spans). */
const PROGRESS_MS = 2000;

/** Control.Events: served by every manager from its own replica, after a ReadIndex round. */
export function eventsTable(mgr: Manager, times: ApplyTimes): Record<string, MethodSpec> {
  return {
    Events: {
      roles: ['manager'],
      stream: async (call: grpc.ServerWritableStream<any, any>) => {
        const req = call.request as EventsRequest;
        const types = new Set(req.types ?? []);
        for (const x of types) if (!(EVENT_TYPES as readonly string[]).includes(x)) throw invalid(`event type ${JSON.stringify(x)} is not known: use ${EVENT_TYPES.join(', ')}`);
        const afterVersion = Number(req.after_version) || 0;
        const hasSeq = req.after_seq !== undefined && req.after_seq !== null;
        const afterSeq = hasSeq ? Number(req.after_seq) : Infinity;
        const since = Number(req.since_ms) || 0;
        if (afterVersion < 0 || since < 0) throw invalid('after_version and since_ms must not be negative');
        await readLatest(mgr);
        const store = mgr.raft.store;
        const oldest = store.oldestWatchVersion;
        // Where the replay starts: right after the client's cursor; from the oldest kept event
        // for --since or a plain listing; from now when only following.
        let from = afterVersion > 0 ? (hasSeq ? afterVersion - 1 : afterVersion) : since > 0 || !req.follow ? oldest : store.applied;
        if (from < oldest) {
          call.write({ version: oldest, seq: -1, type: '', action: 'gap', note: `events after version ${from} up to ${oldest} are no longer kept by this manager (it keeps the latest ${(100_000).toLocaleString('en')} store changes, and none from before its last snapshot restore); continuing from version ${oldest}` });
          from = oldest;
        }
        const numberer = new Numberer(times);
        let ended = false;
        const send = (evs: StoreEvent[]) => {
          if (ended) return;
          for (const ce of numberer.events(evs)) {
            if (ce.version < afterVersion || (ce.version === afterVersion && ce.seq <= afterSeq)) continue;
            if (types.size > 0 && !types.has(ce.type)) continue;
            if (since > 0 && ce.timeMs < since) continue;
            call.write(eventToWire(ce));
          }
        };
        await new Promise<void>((resolve, reject) => {
          let w: { cancel(): void } | undefined;
          let timer: NodeJS.Timeout | undefined;
          const finish = (err?: Error) => {
            if (ended) return;
            ended = true;
            clearInterval(timer);
            w?.cancel();
            if (err) reject(err);
            else resolve();
          };
          try {
            w = store.watch({}, send, from, () => finish(unavailable('this manager restored a snapshot: reconnect and resume from the last event seen')));
          } catch (e) {
            finish(e as Error);
            return;
          }
          if (!req.follow) {
            // Everything kept up to now was replayed synchronously by watch().
            call.write({ version: store.applied, seq: -1, type: '', action: 'progress', note: '' });
            finish();
            return;
          }
          // Seen up to now (the replay above covered it): a client that loses this stream before
          // any event resumes from here, not from whatever "now" is on the next manager.
          const progress = () => call.write({ version: store.applied, seq: -1, type: '', action: 'progress', note: '' });
          progress();
          timer = setInterval(progress, PROGRESS_MS);
          call.on('cancelled', () => finish());
          call.on('close', () => finish());
          call.on('error', () => finish());
        });
        // The handler ends its stream (the authorizer's wrapper only reports errors).
        if (!call.cancelled) call.end();
      },
    },
  };
}
