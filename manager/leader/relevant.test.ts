// Which store changes run another leader pass (relevant.ts), and why it matters: a rolling
// update driven only by the passes those changes trigger, as on the leader (a ReconcileLoop on a
// real object store, the real pass, committed to the store), must finish. Stand-in agents (a
// store watch) take the place of real ones: they only report what an agent reports (running,
// then ready once its readiness probe passes; shutdown when asked), which is all the passes read.
import t, { type Test } from 'tap';
import { node, replicated, service } from '../orchestrator/fixtures.js';
import { isTerminal, statusAt, taskInput, templateKey, type ServiceObject, type TaskObject, type UpdateConfig } from '../services/model.js';
import { ObjectStore } from '../store/store.js';
import type { ObjectInput, StoreEvent, TxnOp } from '../store/types.js';
import { ReconcileLoop } from './loop.js';
import { decidePass } from './pipeline.js';
import { passRelevant } from './relevant.js';

function taskEvent(prev: Partial<TaskObject['status']>, next: Partial<TaskObject['status']>, serviceId = 's1'): StoreEvent {
  const base = { kind: 'task', id: 't1', name: 't1', labels: {}, version: 2, createdVersion: 1, serviceId, nodeId: 'n1', spec: { desiredState: 'running', slot: 1 } };
  const st = (s: Partial<TaskObject['status']>) => ({ state: 'running', message: '', err: '', timestamps: {}, ...s });
  return { version: 3, type: 'update', object: { ...base, version: 3, status: st(next) }, prev: { ...base, status: st(prev) } } as unknown as StoreEvent;
}

t.test('what runs a pass', async (t) => {
  const idle = { ...service('s1', replicated(2)), status: { createdAt: 0, updatedAt: 0 } } as ServiceObject;
  const rolling = { ...idle, status: { ...idle.status, update: { state: 'updating', startedAt: 1, message: '' } } } as ServiceObject;
  const back = { ...idle, status: { ...idle.status, update: { state: 'rollback_started', startedAt: 1, message: '' } } } as ServiceObject;
  const done = { ...idle, status: { ...idle.status, update: { state: 'completed', startedAt: 1, message: '' } } } as ServiceObject;
  const of = (s: ServiceObject | undefined) => () => s;
  t.ok(passRelevant({ version: 1, type: 'update', object: node('n1') } as StoreEvent, of(idle)), 'a node change');
  t.ok(passRelevant({ ...taskEvent({}, {}), type: 'create' }, of(idle)), 'a task created');
  t.ok(passRelevant(taskEvent({ state: 'running' }, { state: 'failed' }), of(idle)), 'a task that ended');
  t.ok(passRelevant(taskEvent({ state: 'new' }, { state: 'pending' }), of(idle)), 'a task to place');
  t.notOk(passRelevant(taskEvent({ state: 'starting' }, { state: 'running' }), of(idle)), 'a task of a settled service running: no pass');
  t.notOk(passRelevant(taskEvent({ state: 'running', ready: false }, { state: 'running', ready: true }), of(done)), 'its readiness: no pass either');
  t.ok(passRelevant(taskEvent({ state: 'starting' }, { state: 'running' }), of(rolling)), 'during an update: a task that runs (ready: no probe)');
  t.notOk(passRelevant(taskEvent({ state: 'starting' }, { state: 'running', ready: false }), of(rolling)), 'running but not ready yet: nothing for the updater');
  t.ok(passRelevant(taskEvent({ state: 'running', ready: false }, { state: 'running', ready: true }), of(rolling)), 'its readiness probe passed');
  t.ok(passRelevant(taskEvent({ state: 'running', ready: true }, { state: 'running', ready: false }), of(back)), 'during a rollback: readiness lost');
  t.notOk(passRelevant(taskEvent({ state: 'running', ready: true }, { state: 'running', ready: true, health: 'healthy' }), of(rolling)), 'a health report that leaves readiness as it was');
  t.notOk(passRelevant(taskEvent({ state: 'starting' }, { state: 'running' }), of(undefined)), 'a task of a removed service running');
});

/** A leader's pass loop over a real store, with stand-in agents; resolves when `done` holds. */
async function rollout(t: Test, order: UpdateConfig['order']): Promise<void> {
  const store = new ObjectStore();
  let index = 0;
  const txn = (ops: TxnOp[]) => store.applyTxn(++index, ops);
  for (const id of ['n1', 'n2']) {
    const n = node(id);
    txn([{ op: 'create', object: { kind: 'node', id, name: id, labels: {}, spec: n.spec, status: n.status } }]);
  }
  const s0 = service('web', replicated(4));
  const svc: ObjectInput = { kind: 'service', id: s0.id, name: s0.name, labels: {}, spec: s0.spec, status: { createdAt: 0, updatedAt: 0, revision: 1, revisions: [{ revision: 1, spec: s0.spec, at: 0, change: 'created' }] } };
  txn([{ op: 'create', object: svc }]);
  let seq = 0;
  const loop = new ReconcileLoop({
    name: 'leader pass',
    store,
    kinds: ['service', 'task', 'node'],
    relevant: (e) => passRelevant(e, (id) => store.get('service', id) as ServiceObject | undefined),
    log: () => {},
    pass: async () => {
      const p = decidePass({ now: Date.now(), nodes: store.list('node') as never, services: store.list('service') as ServiceObject[], tasks: store.list('task') as TaskObject[], newId: () => `t${++seq}` });
      for (const g of p.groups) txn(g);
      return { wakeAt: p.orchestrator.wakeAt };
    },
  });
  // Agents: an assigned task runs, not ready yet; its readiness probe passes a moment later (as
  // reports come in separate batches); a task asked to stop stops. Reports go out after the
  // commit that caused them, as an agent's would.
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, f: () => void) => {
    const h = setTimeout(() => {
      timers.delete(h);
      f();
    }, ms);
    timers.add(h);
  };
  const report = (id: string, patch: (x: TaskObject) => TaskObject['status'] | Partial<TaskObject['status']> | undefined) => {
    const x = store.get('task', id) as TaskObject | undefined;
    if (!x) return;
    const status = patch(x);
    if (status) txn([{ op: 'update', object: taskInput(x, { status }), expectVersion: x.version }]);
  };
  const watch = store.watch({ kinds: ['task'] }, (evs) => {
    for (const e of evs) {
      if (e.type === 'delete') continue;
      const x = e.object as TaskObject;
      if (isTerminal(x.status.state)) continue;
      if (x.spec.desiredState !== 'running') later(5, () => report(x.id, (y) => (isTerminal(y.status.state) ? undefined : statusAt(y, 'shutdown', Date.now()))));
      else if (x.status.state === 'assigned') later(5, () => report(x.id, (y) => (y.status.state === 'assigned' ? { ...statusAt(y, 'running', Date.now()), ready: false } : undefined)));
      else if (x.status.state === 'running' && x.status.ready === false) later(20, () => report(x.id, (y) => (y.status.state === 'running' && y.spec.desiredState === 'running' ? { ready: true } : undefined)));
    }
  });
  t.teardown(() => {
    loop.stop();
    watch.cancel();
    for (const h of timers) clearTimeout(h);
  });
  loop.start();
  const waitFor = async (what: string, f: () => boolean) => {
    // The deadline only turns a stall into a failure: a pass takes well under a millisecond here.
    const end = Date.now() + 20_000;
    while (!f()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; tasks: ${(store.list('task') as TaskObject[]).map((x) => `${x.id}/${x.spec.slot} ${x.status.state}/${x.spec.desiredState} ready=${x.status.ready}`).join(', ')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const live = () => (store.list('task') as TaskObject[]).filter((x) => x.spec.desiredState === 'running');
  await waitFor('4 tasks running and ready', () => live().length === 4 && live().every((x) => x.status.state === 'running' && x.status.ready === true));
  const cur = store.get('service', s0.id) as ServiceObject;
  const spec = { ...cur.spec, task: { ...cur.spec.task, main: { ...cur.spec.task.main, image: 'busybox:2' } }, update: { parallelism: 2, delayMs: 0, order, failureAction: 'pause' as const, monitorMs: 0, maxFailureRatio: 0 } };
  txn([{ op: 'update', object: { kind: 'service', id: cur.id, name: cur.name, labels: {}, spec, status: { ...cur.status, revision: 2, update: { state: 'updating', startedAt: Date.now(), message: 'updating' } } }, expectVersion: cur.version }]);
  await waitFor(`the ${order} update completed`, () => (store.get('service', s0.id) as ServiceObject).status.update?.state === 'completed');
  const key = templateKey(spec.task);
  t.equal(live().length, 4, 'four tasks wanted running');
  t.ok(live().every((x) => x.spec.templateKey === key && x.status.state === 'running'), 'all on the new template, running');
}

t.test('a start-first update finishes on the passes its tasks\' reports trigger', (t) => rollout(t, 'start-first'));
t.test('a stop-first update finishes on the passes its tasks\' reports trigger', (t) => rollout(t, 'stop-first'));
