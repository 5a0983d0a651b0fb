// The dispatcher's status queue (status-queue.ts): the latest report of a task stands, in the
// agent's order, also when writes fail and their reports are put back.
import t from 'tap';
import { StatusQueue, laterOf, type QueuedStatus } from './status-queue.js';
import type { TaskState } from '../services/model.js';

const report = (state: TaskState, at: number, message: string, extra: Partial<QueuedStatus['status']> = {}): QueuedStatus => ({ nodeId: 'n1', status: { state, message, err: '', ...extra }, timestamps: { [state]: at }, at });

t.test('two writes in flight fail in order: the later report is not replaced by the earlier one', async (t) => {
  // What a leader kill did (services-faults): `starting` was taken for a write, `running` came
  // and was taken for a second write, both writes failed (leadership moved), the first put its
  // report back, then the second found it queued and gave way to it.
  const q = new StatusQueue();
  q.add('t1', report('starting', 1000, 'creating the pod'));
  const first = q.take();
  q.add('t1', report('running', 2000, 'started', { containerId: 'c1' }));
  const second = q.take();
  q.putBack(first);
  q.putBack(second);
  const now = q.get('t1')!;
  t.equal(now.status.state, 'running', 'running stands');
  t.equal(now.status.message, 'started');
  t.equal(now.status.containerId, 'c1');
  t.same(now.timestamps, { starting: 1000, running: 2000 }, 'with when it reached each state');
  // And in the other order of failure.
  const q2 = new StatusQueue();
  q2.add('t1', report('starting', 1000, 'creating the pod'));
  const a = q2.take();
  q2.add('t1', report('running', 2000, 'started'));
  const b = q2.take();
  q2.putBack(b);
  q2.putBack(a);
  t.equal(q2.get('t1')!.status.state, 'running', 'whichever failure is handled first');
});

t.test('a report put back gives way to a later one queued meanwhile, and beats an earlier one', async (t) => {
  const q = new StatusQueue();
  q.add('t1', report('starting', 1000, 'waiting for network attachment default (address 10.0.0.7): ...'));
  const taken = q.take();
  q.add('t1', report('starting', 1500, 'creating the pod'));
  q.putBack(taken);
  t.equal(q.get('t1')!.status.message, 'creating the pod', 'the same state: the later report stands');
  t.equal(q.get('t1')!.timestamps.starting, 1500);

  const q2 = new StatusQueue();
  q2.add('t1', report('running', 3000, 'started'));
  const taken2 = q2.take();
  q2.add('t1', report('starting', 2000, 'creating the pod')); // re-sent on a new session, older
  q2.putBack(taken2);
  t.equal(q2.get('t1')!.status.state, 'running', 'a state further on stands over an older report that came since');
  t.same(q2.get('t1')!.timestamps, { starting: 2000, running: 3000 });
});

t.test('reports as they arrive: forward only, the same state when later; fields kept', async (t) => {
  const q = new StatusQueue();
  q.add('t1', report('running', 2000, 'started', { containerId: 'c1' }));
  q.add('t1', report('starting', 1000, 'creating the pod'));
  t.equal(q.get('t1')!.status.state, 'running', 'an older state arriving after a newer one does not win');
  q.add('t1', report('running', 2500, 'started', { health: 'healthy' }));
  t.equal(q.get('t1')!.status.health, 'healthy', 'the same state, later: it stands');
  t.equal(q.get('t1')!.status.containerId, 'c1', 'what an earlier report said and this one does not is kept');
  t.equal(q.size, 1);
  t.equal(q.take().length, 1);
  t.equal(q.size, 0, 'take empties the queue');
  t.equal(laterOf(undefined, report('new' as TaskState, 1, '')).at, 1, 'nothing queued: the report stands');
});
