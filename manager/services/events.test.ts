// Events from the store's changes: what each change is told as (services updated, rolled back,
// scaled; tasks' states; nodes down and up; a new leader; scheduled runs), and the Events stream
// served from a real in-memory store: a resume from any cursor (version, position) continues
// exactly where the first stream stopped, filters by type and time, a gap when the log no longer
// holds the cursor, following live changes. The manager around the store is a stand-in (the
// stream only needs its store and a ReadIndex round, which has nothing to wait for here).
import t from 'tap';
import { EventEmitter } from 'node:events';
import { ObjectStore } from '../store/store.js';
import type { ObjectInput, StoreEvent } from '../store/types.js';
import type { Manager } from '../control/manager.js';
import { ApplyTimes, Numberer, eventsTable } from './events.js';

function storeWith(cap?: number) {
  const store = new ObjectStore(cap ? { eventLogCapacity: cap } : {});
  let index = 0;
  const put = (...objs: ObjectInput[]) => {
    const r = store.applyTxn(++index, objs.map((o) => ({ op: 'put' as const, object: o })));
    if (!r.ok) throw new Error(JSON.stringify(r.conflict));
  };
  const del = (kind: ObjectInput['kind'], id: string) => store.applyTxn(++index, [{ op: 'delete', kind, id }]);
  return { store, put, del };
}

const spec = (image: string, replicas = 1) => ({ mode: { type: 'replicated', replicas }, task: { main: { name: 'main', image }, sidecars: [], init: [], resources: { reservations: {}, limits: {} }, placement: { constraints: [], preferences: [] }, restart: { condition: 'any', delayMs: 5000, maxAttempts: 0, windowMs: 0 }, stopGracePeriodMs: 10000, stopSignal: 'SIGTERM' } });
const node = (state: string, leadership?: { term: number; since: number }) => ({ kind: 'node' as const, id: 'n1', name: 'n1', labels: {}, spec: { desiredRole: 'manager', availability: 'active' }, status: { role: 'manager', state, message: '', hostname: 'manager-1', addr: '', gossipAddr: '', certSerial: '', certNotAfter: 0, certPem: '', ...(leadership ? { leadership } : {}) } });
const task = (state: string, desired = 'running', extra: Record<string, unknown> = {}) => ({ kind: 'task' as const, id: 't1', name: 'web.1.t1', labels: {}, serviceId: 's1', nodeId: 'n1', spec: { serviceName: 'web', slot: 1, serviceVersion: 1, desiredState: desired, template: spec('a').task, restarts: [] }, status: { state, message: '', err: '', timestamps: { [state]: 1_700_000_000_000 }, ...extra } });

/** A history that touches every kind of event. */
function history() {
  const h = storeWith();
  const s1 = { kind: 'service' as const, id: 's1', name: 'web', labels: {}, spec: spec('img:1'), status: { createdAt: 1000, updatedAt: 1000, revision: 1, revisions: [{ revision: 1, spec: spec('img:1'), at: 1000, change: 'created' }] } };
  h.put(node('ready'));
  h.put(s1);
  h.put(task('new'), { ...s1 });
  h.put(task('running'));
  h.put({ ...s1, spec: spec('img:2'), status: { ...s1.status, updatedAt: 2000, revision: 2, revisions: [...s1.status.revisions, { revision: 2, spec: spec('img:2'), at: 2000, change: 'image "img:1" -> "img:2"' }], update: { state: 'updating', startedAt: 2000, message: 'updating' } } });
  const s2 = h.store.get('service', 's1')!;
  h.put({ ...s2, status: { ...(s2.status as object), update: { state: 'completed', startedAt: 2000, completedAt: 3000, message: 'update completed' } } } as ObjectInput);
  const s3 = h.store.get('service', 's1')!;
  h.put({ ...s3, spec: spec('img:2', 4) } as ObjectInput);
  h.put(task('failed', 'running', { exitCode: 3 }));
  h.put(task('failed', 'shutdown', { exitCode: 3 }));
  h.put(node('down'));
  h.put(node('ready', { term: 7, since: 5000 }));
  const s4 = h.store.get('service', 's1')!;
  h.put({ ...s4, status: { ...(s4.status as object), revision: 3, revisions: [], update: { state: 'rollback_started', startedAt: 6000, message: 'rolling back' } } } as ObjectInput);
  h.del('task', 't1');
  h.del('service', 's1');
  return h;
}

function collect(store: ObjectStore, from = 0): ReturnType<Numberer['events']> {
  const out: ReturnType<Numberer['events']> = [];
  const n = new Numberer();
  store.watch({}, (evs: StoreEvent[]) => out.push(...n.events(evs)), from).cancel();
  return out;
}

t.test('what each change is told as', async (t) => {
  const { store } = history();
  const evs = collect(store);
  const lines = evs.map((e) => `${e.type} ${e.action}: ${e.message}`);
  t.same(lines, [
    'node join: node manager-1 joined as a manager',
    'service create: service web created (replicated, 1 replica(s), image img:1)',
    'task create: task web.1 created',
    'task running: task web.1 new -> running',
    'service update: service web updated to revision 2: image "img:1" -> "img:2"',
    'service update-completed: service web: update completed',
    'service scale: service web scaled from 1 to 4',
    'task failed: task web.1 running -> failed: exit 3',
    'task desired: task web.1 desired shutdown',
    'node down: node manager-1 is down',
    'node up: node manager-1 is ready',
    'node leader: manager manager-1 is the leader (raft term 7)',
    'service rollback: service web rolled back to revision 3: spec changed',
    'task remove: task web.1 removed',
    'service remove: service web removed',
  ]);
  t.equal(evs.find((e) => e.action === 'leader')!.timeMs, 5000, "a leader's time is when it took over");
  t.equal(evs.find((e) => e.action === 'failed')!.timeMs, 1_700_000_000_000, "a task state's time is the task's own timestamp");
  t.same(evs.find((e) => e.action === 'failed')!.attributes, { service: 'web', slot: '1', node: 'n1', from: 'running', to: 'failed' });
  // Numbers: (version, seq) strictly increasing.
  for (let i = 1; i < evs.length; i++) {
    const a = evs[i - 1]!;
    const b = evs[i]!;
    if (!(b.version > a.version || (b.version === a.version && b.seq === a.seq + 1))) t.fail(`order broken at ${i}`);
  }
  const multi = evs.filter((e) => e.seq > 0);
  t.ok(multi.length > 0, 'a version that stands for several events numbers them 0, 1, ...');
});

t.test('scheduled runs are told', async (t) => {
  const h = storeWith();
  const sp = { ...spec('job:1'), mode: { type: 'replicated-job', completions: 1, maxConcurrent: 1 }, schedule: { cron: '* * * * *', timeZone: 'UTC', concurrencyPolicy: 'forbid', successfulRunsHistoryLimit: 3, failedRunsHistoryLimit: 1, suspend: false } };
  const base = { kind: 'service' as const, id: 's', name: 'tick', labels: {}, spec: sp };
  h.put({ ...base, status: { createdAt: 0, updatedAt: 0 } });
  h.put({ ...base, status: { createdAt: 0, updatedAt: 0, schedule: { since: 0, iteration: 1, lastScheduleTime: 60_000, runs: [{ iteration: 1, scheduledAt: 60_000, startedAt: 60_010 }], skipped: 0 } } });
  h.put({ ...base, status: { createdAt: 0, updatedAt: 0, schedule: { since: 0, iteration: 1, lastScheduleTime: 60_000, runs: [{ iteration: 1, scheduledAt: 60_000, startedAt: 60_010 }], skipped: 0, waiting: { scheduledAt: 120_000, reason: 'run 1 was still running (concurrency policy forbid)' } } } });
  h.put({ ...base, status: { createdAt: 0, updatedAt: 0, schedule: { since: 0, iteration: 1, lastScheduleTime: 60_000, runs: [{ iteration: 1, scheduledAt: 60_000, startedAt: 60_010, finishedAt: 150_000, result: 'succeeded', message: '1 of 1 completed' }], skipped: 1, lastSkip: { scheduledAt: 120_000, reason: 'not started within its starting deadline of 15 s' } } } });
  const lines = collect(h.store).map((e) => `${e.action}: ${e.message}`);
  t.same(lines.slice(1), [
    'run-start: service tick: run 1 started for the tick of 1970-01-01T00:01:00.000Z',
    'run-wait: service tick: the tick of 1970-01-01T00:02:00.000Z waits: run 1 was still running (concurrency policy forbid)',
    'run-succeeded: service tick: run 1 succeeded (1 of 1 completed)',
    'run-skip: service tick: the tick of 1970-01-01T00:02:00.000Z was skipped: not started within its starting deadline of 15 s',
  ]);
});

/** A fake Control.Events call: the request, writes collected, events a client would see. */
function fakeCall(request: Record<string, unknown>) {
  const call = Object.assign(new EventEmitter(), { request, cancelled: false, ended: false, written: [] as any[], write(m: unknown) { this.written.push(m); return true; }, end() { this.ended = true; } });
  return call;
}

function server(store: ObjectStore) {
  const mgr = { raft: { store, linearizableRead: async () => undefined } } as unknown as Manager;
  return eventsTable(mgr, new ApplyTimes(store)).Events!.stream!;
}

const key = (e: any) => `${e.version}/${e.seq}`;

t.test('a resume from any cursor continues exactly where the stream stopped', async (t) => {
  const { store } = history();
  const serve = server(store);
  const all = fakeCall({ after_version: 0, since_ms: 0, types: [], follow: false });
  await serve(all as any, {} as any);
  const evs = all.written.filter((m) => m.seq >= 0);
  t.equal(evs.length, 15, 'every kept event listed');
  t.match(all.written.at(-1), { action: 'progress', version: store.applied }, 'ends saying how far it has seen');
  t.equal(all.ended, true, 'and ends the stream');
  for (let i = 0; i < evs.length; i++) {
    const c = fakeCall({ after_version: evs[i].version, after_seq: evs[i].seq, since_ms: 0, types: [], follow: false });
    await serve(c as any, {} as any);
    t.same(c.written.filter((m) => m.seq >= 0).map(key), evs.slice(i + 1).map(key), `resumed after ${key(evs[i])}`);
  }
  const v = fakeCall({ after_version: evs[4].version, since_ms: 0, types: [], follow: false });
  await serve(v as any, {} as any);
  t.same(v.written.filter((m) => m.seq >= 0).map(key), evs.filter((e) => e.version > evs[4].version).map(key), 'after a whole version');
});

t.test('filters: type and time', async (t) => {
  const { store } = history();
  const serve = server(store);
  const c = fakeCall({ after_version: 0, since_ms: 0, types: ['node'], follow: false });
  await serve(c as any, {} as any);
  t.same(c.written.filter((m) => m.seq >= 0).map((m) => m.action), ['join', 'down', 'up', 'leader'], 'only node events');
  const s = fakeCall({ after_version: 0, since_ms: 1_600_000_000_000, types: ['task'], follow: false });
  await serve(s as any, {} as any);
  // The history was written before this server's ApplyTimes existed: events whose object records
  // no time (desired, remove) have none, and a time filter leaves them out.
  t.same(s.written.filter((m) => m.seq >= 0).map((m) => m.action), ['create', 'running', 'failed'], 'task events at or after the time (their own timestamps)');
  const bad = fakeCall({ after_version: 0, since_ms: 0, types: ['container'], follow: false });
  await t.rejects(serve(bad as any, {} as any), /event type "container" is not known/);
});

t.test('a cursor older than the kept log: a gap note, then what is kept', async (t) => {
  const h = storeWith(4);
  for (let i = 0; i < 10; i++) h.put({ kind: 'secret', id: `x${i}`, name: `x${i}`, labels: {}, spec: {} });
  const serve = server(h.store);
  const c = fakeCall({ after_version: 2, since_ms: 0, types: [], follow: false });
  await serve(c as any, {} as any);
  t.match(c.written[0], { action: 'gap', note: /events after version 2 up to 6 are no longer kept/ });
  t.same(c.written.filter((m) => m.seq >= 0).map((m) => m.name), ['x6', 'x7', 'x8', 'x9'], 'then the kept ones');
});

t.test('following: live changes arrive, progress is reported, cancel ends it', async (t) => {
  const h = storeWith();
  h.put(node('ready'));
  const serve = server(h.store);
  const c = fakeCall({ after_version: 0, since_ms: 0, types: [], follow: true });
  const done = serve(c as any, {} as any);
  await new Promise((r) => setTimeout(r, 10));
  t.same(c.written.map((m) => `${m.action}@${m.version}`), ['progress@1'], 'following from now: nothing old, and how far it has seen');
  h.put(node('down'));
  h.put(node('ready'));
  t.same(c.written.slice(1).map((m) => m.action), ['down', 'up'], 'live events as they are applied');
  await new Promise((r) => setTimeout(r, 2300));
  t.match(c.written.at(-1), { action: 'progress', version: 3 }, 'a progress note with the applied version');
  c.emit('cancelled');
  await done;
  h.put(node('down'));
  t.equal(c.written.filter((m) => m.action === 'down').length, 1, 'nothing after cancel');
});

t.test('apply times: the time a version was applied here', async (t) => {
  const h = storeWith();
  const times = new ApplyTimes(h.store, 3);
  for (let i = 0; i < 5; i++) h.put({ kind: 'secret', id: `x${i}`, name: `x${i}`, labels: {}, spec: {} });
  t.equal(times.at(1), 0, 'evicted');
  t.ok(times.at(5) > 0 && times.at(3) > 0, 'recent ones kept');
  times.record(9, 42);
  t.equal(times.at(9), 42);
  times.stop();
});
