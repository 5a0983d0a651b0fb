// Scheduled jobs decided on a real in-memory store, with a virtual clock: the cron decisions and
// the orchestrator's passes are committed as the leader's loops commit them (versions checked),
// and a fake agent stands in for the nodes (it moves tasks to running and complete when the test
// says: the orchestration and the schedule are what is tested here; the lab test runs real
// containers). Ticks, each concurrency policy, the starting deadline, history limits, a failover
// (a second leader deciding from the same store), a leader away over a tick, time zones.
import t from 'tap';
import { ObjectStore } from '../store/store.js';
import type { ObjectInput, TxnOp } from '../store/types.js';
import type { NodeObject } from '../control/model.js';
import { DEFAULT_RESTART, newTaskStatus, type RestartPolicy, statusAt, taskInput, type ServiceObject, type ServiceSpec, type TaskObject, type TaskState } from '../services/model.js';
import type { JobSchedule } from '../services/schedule.js';
import { decideSchedules, runOutcome, scheduleSince } from './cron.js';
import { orchestrate } from './orchestrate.js';
import { orchestratorOps } from '../leader/ops.js';

const MIN = 60_000;
const T0 = Date.parse('2024-05-01T10:00:30Z');

class Cluster {
  store = new ObjectStore();
  index = 0;
  now = T0;
  ids = 0;

  constructor(nodes = 2) {
    const ops: TxnOp[] = [];
    for (let i = 1; i <= nodes; i++) {
      ops.push({ op: 'create', object: { kind: 'node', id: `n${i}`, name: `n${i}`, labels: {}, spec: { desiredRole: 'worker', availability: 'active' }, status: { role: 'worker', state: 'ready', message: '', hostname: `node-${i}`, addr: '', gossipAddr: '', certSerial: '', certNotAfter: 0, certPem: '' } } });
    }
    this.commit(ops);
  }

  commit(ops: TxnOp[]): boolean {
    if (ops.length === 0) return true;
    const r = this.store.applyTxn(++this.index, ops);
    return r.ok;
  }

  service(name: string, schedule: Partial<JobSchedule>, mode: ServiceSpec['mode'] = { type: 'replicated-job', completions: 1, maxConcurrent: 1 }, restart: RestartPolicy = { ...DEFAULT_RESTART, condition: 'none' }): ServiceObject {
    const spec: ServiceSpec = {
      mode,
      task: { main: { name: 'main', image: 'busybox' }, sidecars: [], init: [], resources: { reservations: {}, limits: {} }, placement: { constraints: [], preferences: [] }, restart, stopGracePeriodMs: 10_000, stopSignal: 'SIGTERM' },
      schedule: { cron: '* * * * *', timeZone: 'UTC', concurrencyPolicy: 'allow', successfulRunsHistoryLimit: 3, failedRunsHistoryLimit: 1, suspend: false, ...schedule },
    };
    const obj: ObjectInput = { kind: 'service', id: `svc-${name}`, name, labels: {}, spec, status: { createdAt: this.now, updatedAt: this.now, revision: 1, revisions: [{ revision: 1, spec, at: this.now, change: 'created' }] } };
    this.commit([{ op: 'create', object: obj }]);
    return this.svc(name);
  }

  svc(name: string): ServiceObject {
    return this.store.getByName('service', name) as ServiceObject;
  }

  tasks(name?: string): TaskObject[] {
    const all = this.store.list('task') as TaskObject[];
    return name ? all.filter((x) => x.spec.serviceName === name) : all;
  }

  /** One pass of the cron loop at `now`; returns whether it committed. */
  cron(view = this.view()): { committed: boolean; wakeAt?: number; notes: string[] } {
    const d = decideSchedules({ ...view, now: this.now });
    let committed = true;
    for (const c of d.changes) {
      const ok = this.commit([{ op: 'update', object: { kind: 'service', id: c.service.id, name: c.service.name, labels: c.service.labels, spec: c.service.spec, status: c.status }, expectVersion: c.service.version }]);
      committed &&= ok;
    }
    return { committed: committed && d.changes.length > 0, wakeAt: d.wakeAt, notes: d.notes };
  }

  view() {
    return { now: this.now, services: this.store.list('service') as ServiceObject[], tasks: this.tasks(), nodes: this.store.list('node') as NodeObject[] };
  }

  /** One orchestrator pass, committed as components.ts commits it. */
  orchestrate(): void {
    const v = this.view();
    const d = orchestrate({ ...v, newId: () => `t${++this.ids}` });
    if (!this.commit(orchestratorOps(d).flat())) throw new Error('orchestrator commit failed');
  }

  /** The fake agent: a task moves to `state` (placed on n1 if it was not). */
  set(task: TaskObject, state: TaskState): void {
    const cur = this.store.get('task', task.id) as TaskObject;
    this.commit([{ op: 'update', object: taskInput(cur, { nodeId: cur.nodeId ?? 'n1', status: statusAt(cur, state, this.now) }), expectVersion: cur.version }]);
  }

  /** Every new task of the service starts running; tasks told to stop report shutdown. */
  agent(name: string): void {
    for (const x of this.tasks(name)) {
      if (x.status.state === 'new') this.set(x, 'running');
      else if (x.spec.desiredState !== 'running' && x.status.state === 'running') this.set(x, 'shutdown');
    }
  }

  /** Ends every running task of a run. */
  finish(name: string, iteration: number, state: TaskState = 'complete'): void {
    for (const x of this.tasks(name)) if ((x.spec.iteration ?? 0) === iteration && x.status.state === 'running') this.set(x, state);
  }

  /** Leader loops until nothing changes (cron, orchestrator, agent). */
  settle(name: string): void {
    for (let i = 0; i < 10; i++) {
      const before = this.index;
      this.cron();
      this.orchestrate();
      this.agent(name);
      if (this.index === before) return;
    }
    throw new Error('did not settle');
  }

  runs(name: string) {
    return (this.svc(name).status.schedule?.runs ?? []).map((r) => ({ it: r.iteration, at: new Date(r.scheduledAt).toISOString().slice(11, 19), result: r.result ?? 'running' }));
  }
}

const at = (hhmmss: string) => Date.parse(`2024-05-01T${hhmmss}Z`);

t.test('a run at each tick, none before the first; deciding twice starts nothing twice', async (t) => {
  const c = new Cluster();
  c.service('tick', {});
  c.now = at('10:00:59');
  const first = c.cron();
  t.equal(first.wakeAt, at('10:01:00'), 'wakes at the first tick');
  c.settle('tick');
  t.same(c.runs('tick'), [], 'no run before the first tick after creation');
  c.now = at('10:01:00') + 3;
  const view = c.view();
  c.cron();
  c.orchestrate();
  t.match(c.tasks('tick')[0]?.status.message, /^run 1: job run 1 of 1/, 'the new task says which run it belongs to');
  c.settle('tick');
  t.same(c.runs('tick'), [{ it: 1, at: '10:01:00', result: 'running' }], 'run 1 for 10:01');
  const tasks = c.tasks('tick');
  t.equal(tasks.length, 1, 'one task');
  t.equal(tasks[0]!.spec.iteration, 1, 'of run 1');
  // A leader that decided from the view before that commit (a deposed one, or a retried pass):
  // its write carries the old version and fails.
  const stale = c.cron(view);
  t.equal(stale.committed, false, 'a decision from the stale view is refused by the store');
  c.settle('tick');
  t.same(c.runs('tick').length, 1, 'still one run');
  c.finish('tick', 1);
  c.now = at('10:01:20');
  c.settle('tick');
  t.same(c.runs('tick'), [{ it: 1, at: '10:01:00', result: 'succeeded' }], 'run 1 succeeded once its task completed');
  t.ok(c.svc('tick').status.schedule!.lastSuccessfulTime, 'last successful time kept');
  for (const m of ['10:02:00', '10:03:00', '10:04:00']) {
    c.now = at(m) + 5;
    c.settle('tick');
    c.finish('tick', c.svc('tick').status.schedule!.iteration);
    c.settle('tick');
  }
  t.same(c.runs('tick').map((r) => r.at), ['10:02:00', '10:03:00', '10:04:00'], 'one run per tick; only 3 succeeded runs are kept');
  t.same([...new Set(c.tasks('tick').map((x) => x.spec.iteration))].sort(), [2, 3, 4], 'the tasks of run 1 went with it');
});

t.test('a leader away over a tick: the new leader starts it late, once; with a deadline it is skipped', async (t) => {
  for (const deadline of [undefined, 30]) {
    const c = new Cluster();
    c.service('job', deadline ? { startingDeadlineSeconds: deadline } : {});
    c.now = at('10:01:00');
    c.settle('job');
    c.finish('job', 1);
    c.settle('job');
    // No leader from 10:01:30 to 10:02:40: nobody decided at 10:02.
    c.now = at('10:02:40');
    c.settle('job');
    c.now = at('10:02:41');
    c.settle('job');
    const st = c.svc('job').status.schedule!;
    if (deadline === undefined) {
      t.same(c.runs('job').map((r) => r.at), ['10:01:00', '10:02:00'], 'no deadline: the 10:02 run starts late, once');
      t.equal(st.skipped, 0);
    } else {
      t.same(c.runs('job').map((r) => r.at), ['10:01:00'], '30 s deadline: the 10:02 tick is not started 40 s late');
      t.equal(st.skipped, 1, 'counted as skipped once');
      t.match(st.lastSkip!.reason, /not started within its starting deadline of 30 s/);
      c.now = at('10:03:00');
      c.settle('job');
      t.same(c.runs('job').map((r) => r.at), ['10:01:00', '10:03:00'], 'the next tick runs');
    }
  }
});

t.test('a leader away over two ticks: only the latest starts (as Kubernetes)', async (t) => {
  const c = new Cluster();
  c.service('job', {});
  c.now = at('10:03:10');
  c.settle('job');
  t.same(c.runs('job').map((r) => r.at), ['10:03:00'], 'one run, for the most recent tick');
});

t.test('forbid: a tick while a run goes waits, then runs or is skipped', async (t) => {
  // Without a deadline the waiting tick runs once the run ends (before the next tick).
  let c = new Cluster();
  c.service('slow', { concurrencyPolicy: 'forbid' });
  c.now = at('10:01:00');
  c.settle('slow');
  c.now = at('10:02:00');
  c.settle('slow');
  t.same(c.runs('slow').map((r) => r.result), ['running'], 'no second run while the first goes');
  t.match(c.svc('slow').status.schedule!.waiting, { scheduledAt: at('10:02:00') }, 'the 10:02 tick waits');
  c.now = at('10:02:20');
  c.finish('slow', 1);
  c.settle('slow');
  t.same(c.runs('slow'), [{ it: 1, at: '10:01:00', result: 'succeeded' }, { it: 2, at: '10:02:00', result: 'running' }], 'it starts when run 1 ends');
  t.equal(c.svc('slow').status.schedule!.skipped, 0, 'nothing skipped');

  // With a 15 s deadline a run that lasts 90 s makes the 10:02 tick miss its window.
  c = new Cluster();
  c.service('slow', { concurrencyPolicy: 'forbid', startingDeadlineSeconds: 15 });
  c.now = at('10:01:00');
  c.settle('slow');
  c.now = at('10:02:00');
  c.settle('slow');
  c.now = at('10:02:30');
  c.finish('slow', 1);
  c.settle('slow');
  let st = c.svc('slow').status.schedule!;
  t.same(c.runs('slow').map((r) => r.at), ['10:01:00'], 'the 10:02 tick did not run');
  t.equal(st.skipped, 1, 'skipped once');
  t.match(st.lastSkip, { scheduledAt: at('10:02:00'), reason: /run 1 was still running \(concurrency policy forbid\); not started within its starting deadline of 15 s/ });
  c.now = at('10:03:00');
  c.settle('slow');
  t.same(c.runs('slow').map((r) => r.at), ['10:01:00', '10:03:00'], 'the 10:03 tick runs');

  // A run longer than two ticks: the first waiting tick is overtaken by the next.
  c = new Cluster();
  c.service('slow', { concurrencyPolicy: 'forbid' });
  for (const m of ['10:01:00', '10:02:00', '10:03:00']) {
    c.now = at(m);
    c.settle('slow');
  }
  st = c.svc('slow').status.schedule!;
  t.equal(st.skipped, 1, '10:02 skipped for good');
  t.match(st.lastSkip, { scheduledAt: at('10:02:00'), reason: /the tick of .*10:03:00.* came first/ });
  t.match(st.waiting, { scheduledAt: at('10:03:00') }, '10:03 waits');
  c.now = at('10:03:30');
  c.finish('slow', 1);
  c.settle('slow');
  t.same(c.runs('slow').map((r) => r.at), ['10:01:00', '10:03:00'], '10:03 runs when run 1 ends');
});

t.test('replace: the running run is stopped and replaced', async (t) => {
  const c = new Cluster();
  c.service('rep', { concurrencyPolicy: 'replace' });
  c.now = at('10:01:00');
  c.settle('rep');
  const old = c.tasks('rep')[0]!;
  c.now = at('10:02:00');
  c.settle('rep');
  t.same(c.runs('rep'), [{ it: 1, at: '10:01:00', result: 'replaced' }, { it: 2, at: '10:02:00', result: 'running' }]);
  const o = c.store.get('task', old.id) as TaskObject;
  t.equal(o.spec.desiredState, 'shutdown', "run 1's task is told to stop");
  t.equal(o.status.state, 'shutdown', 'and stopped');
  t.equal(c.tasks('rep').filter((x) => x.spec.desiredState === 'running').length, 1, 'one task wanted: run 2');
});

t.test('allow: runs overlap, each with its own completions and concurrency', async (t) => {
  const c = new Cluster();
  c.service('par', {}, { type: 'replicated-job', completions: 3, maxConcurrent: 2 });
  c.now = at('10:01:00');
  c.settle('par');
  t.equal(c.tasks('par').length, 2, 'run 1: two of three at a time');
  c.now = at('10:02:00');
  c.settle('par');
  const running = c.tasks('par').filter((x) => x.status.state === 'running');
  t.same(running.map((x) => `${x.spec.iteration}.${x.spec.slot}`).sort(), ['1.1', '1.2', '2.1', '2.2'], 'run 2 starts alongside run 1, slots counted per run');
  c.finish('par', 1);
  c.settle('par');
  t.same(c.tasks('par').filter((x) => x.spec.iteration === 1).map((x) => x.spec.slot).sort(), [1, 2, 3], 'run 1 goes on to its third completion');
  t.equal(c.runs('par')[0]!.result, 'running', 'run 1 is not done with 2 of 3');
  c.finish('par', 1);
  c.settle('par');
  t.same(c.runs('par').map((r) => r.result), ['succeeded', 'running'], 'run 1 succeeded (3 of 3), run 2 goes on');
  t.match(c.svc('par').status.schedule!.runs[0]!.message, /3 of 3 completed/);
});

t.test('failed runs: kept by the failed history limit, their tasks removed when trimmed', async (t) => {
  const c = new Cluster();
  c.service('bad', { failedRunsHistoryLimit: 1, successfulRunsHistoryLimit: 1 });
  for (const m of ['10:01:00', '10:02:00', '10:03:00']) {
    c.now = at(m);
    c.settle('bad');
    c.finish('bad', c.svc('bad').status.schedule!.iteration, 'failed');
    c.settle('bad');
  }
  t.same(c.runs('bad'), [{ it: 3, at: '10:03:00', result: 'failed' }], 'one failed run kept');
  t.same(c.tasks('bad').map((x) => x.spec.iteration), [3], 'with its task (logs, exit code); the others are gone');
  c.now = at('10:04:00');
  c.settle('bad');
  c.finish('bad', 4);
  c.settle('bad');
  t.same(c.runs('bad').map((r) => `${r.it}:${r.result}`), ['3:failed', '4:succeeded'], 'limits per result');
});

t.test('a failing slot that restarts: the run goes on until the restart policy gives up', async (t) => {
  const c = new Cluster();
  c.service('retry', {}, { type: 'replicated-job', completions: 1, maxConcurrent: 1 }, { condition: 'on-failure', delayMs: 1000, maxAttempts: 2, windowMs: 0 });
  c.now = at('10:01:00');
  c.settle('retry');
  for (let i = 0; i < 3; i++) {
    c.finish('retry', 1, 'failed');
    c.now += 1500;
    c.settle('retry');
  }
  const run = c.svc('retry').status.schedule!.runs[0]!;
  t.equal(run.result, 'failed', 'failed after the allowed restarts');
  t.match(run.message, /0 of 1 completed; 1 failed and will not restart/);
  t.equal(c.tasks('retry').length, 3, 'the first attempt and two restarts');
});

t.test('global jobs: a run on every eligible node', async (t) => {
  const c = new Cluster(3);
  c.service('each', {}, { type: 'global-job' });
  c.now = at('10:01:00');
  c.settle('each');
  t.same(c.tasks('each').map((x) => x.nodeId).sort(), ['n1', 'n2', 'n3'], 'one task per node');
  c.finish('each', 1);
  c.settle('each');
  t.same(c.runs('each').map((r) => r.result), ['succeeded']);
  c.now = at('10:02:00');
  c.settle('each');
  t.equal(c.tasks('each').filter((x) => x.spec.iteration === 2).length, 3, 'run 2: a task per node again');
  const s = c.svc('each');
  const o = runOutcome(s, c.tasks('each').filter((x) => x.spec.iteration === 2), c.view().nodes, c.now);
  t.equal(o.done, false, 'run 2 not done while its tasks run');
});

t.test('suspend, time zones, the schedule start, a template change', async (t) => {
  const c = new Cluster();
  c.service('off', { suspend: true });
  c.now = at('10:05:00');
  c.settle('off');
  t.same(c.runs('off'), [], 'suspended: no runs');

  const z = new Cluster();
  // 12:00 in Kolkata is 06:30 UTC.
  z.now = Date.parse('2024-05-01T06:00:00Z');
  z.service('noon', { cron: '0 12 * * *', timeZone: 'Asia/Kolkata' });
  const d = z.cron();
  t.equal(new Date(d.wakeAt!).toISOString(), '2024-05-01T06:30:00.000Z', 'noon in Asia/Kolkata is 06:30 UTC');
  z.now = d.wakeAt!;
  z.settle('noon');
  t.equal(z.runs('noon').length, 1, 'and it runs then');

  const s = c.svc('off');
  t.equal(scheduleSince(s), T0, 'ticks count from the creation');

  // A spec change of a scheduled job rolls nothing: it applies from the next run.
  const cur = c.svc('off');
  c.commit([{ op: 'update', object: { kind: 'service', id: cur.id, name: cur.name, labels: {}, spec: cur.spec, status: { ...cur.status, update: { state: 'updating', startedAt: c.now, message: 'updating' } } }, expectVersion: cur.version }]);
  c.cron();
  t.match(c.svc('off').status.update, { state: 'completed', message: /applies from the next run/ });
});

t.test('a task of a run that has not been started by the orchestrator yet is not a finished run', async (t) => {
  const c = new Cluster();
  const s = c.service('x', {}, { type: 'replicated-job', completions: 2, maxConcurrent: 1 });
  t.equal(runOutcome(s, [], [], c.now).done, false, 'no tasks yet: going');
  const one = { ...({} as TaskObject), id: 'a', spec: { serviceName: 'x', slot: 1, serviceVersion: 1, desiredState: 'running', template: s.spec.task, restarts: [], iteration: 1 }, status: { ...newTaskStatus(c.now), state: 'complete' } } as unknown as TaskObject;
  t.equal(runOutcome(s, [one], [], c.now).done, false, '1 of 2 completed, slot 2 not started: going');
});
