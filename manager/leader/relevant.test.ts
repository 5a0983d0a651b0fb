// The leader pass's event filter: what must wake it, and the task progress it may skip.
import t from 'tap';
import { replicated, service, task } from '../orchestrator/fixtures.js';
import type { ServiceObject, TaskObject } from '../services/model.js';
import type { StoreEvent } from '../store/types.js';
import { passRelevant } from './relevant.js';

const upd = (o: TaskObject): StoreEvent => ({ type: 'update', object: o } as unknown as StoreEvent);
const plain = service('s1', replicated(2));
const updating: ServiceObject = { ...plain, status: { ...plain.status, update: { state: 'updating', startedAt: 1 } } } as ServiceObject;
const rolling: ServiceObject = { ...plain, status: { ...plain.status, update: { state: 'rollback_started', startedAt: 1 } } } as ServiceObject;
const completed: ServiceObject = { ...plain, status: { ...plain.status, update: { state: 'completed', startedAt: 1 } } } as ServiceObject;
const lookup = (s: ServiceObject) => (id: string) => (id === s.id ? s : undefined);

t.test('task progress is skipped, but a running task of a service being updated wakes the pass', async (t) => {
  for (const st of ['accepted', 'preparing', 'starting', 'running'] as const) {
    t.notOk(passRelevant(upd(task(plain, 'a', { state: st, nodeId: 'n1' })), lookup(plain)), `${st}, no update going on: skipped`);
  }
  t.notOk(passRelevant(upd(task(completed, 'a', { state: 'running', nodeId: 'n1' })), lookup(completed)), 'running, the update completed: skipped');
  t.ok(passRelevant(upd(task(updating, 'a', { state: 'running', nodeId: 'n1' })), lookup(updating)), 'running while its service updates: the next batch may go (monitor period from now)');
  t.ok(passRelevant(upd(task(rolling, 'a', { state: 'running', nodeId: 'n1' })), lookup(rolling)), 'running while its service rolls back: the same');
  t.notOk(passRelevant(upd(task(updating, 'a', { state: 'starting', nodeId: 'n1' })), lookup(updating)), 'starting while its service updates: not yet');
});

t.test('endings, unplaced tasks and every other kind wake it', async (t) => {
  for (const st of ['complete', 'failed', 'shutdown', 'rejected', 'orphaned'] as const) t.ok(passRelevant(upd(task(plain, 'a', { state: st, nodeId: 'n1' })), lookup(plain)), `a task ${st}`);
  t.ok(passRelevant(upd(task(plain, 'a', { state: 'new' })), lookup(plain)), 'a new task');
  t.ok(passRelevant(upd(task(plain, 'a', { state: 'pending' })), lookup(plain)), 'a pending task');
  t.ok(passRelevant({ type: 'update', object: plain } as unknown as StoreEvent, lookup(plain)), 'a service change');
  t.ok(passRelevant({ type: 'create', object: task(plain, 'b', { state: 'running', nodeId: 'n1' }) } as unknown as StoreEvent, lookup(plain)), 'a task created');
});
