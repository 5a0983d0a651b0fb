// The allocator's decision: new tasks still wanted move to pending (with what they wait for);
// tasks let go before they were placed end as shutdown; everything further along is not its.
import t from 'tap';
import { replicated, service, task } from '../orchestrator/fixtures.js';
import type { DesiredState, TaskState } from '../services/model.js';
import { allocate } from './allocator.js';

const s = service('s', replicated(1));

t.test('table: each state and desired state', async (t) => {
  const rows: [TaskState, DesiredState, string | undefined, { state: string; message: RegExp } | undefined][] = [
    ['new', 'running', undefined, { state: 'pending', message: /waiting for a node/ }],
    ['new', 'running', 'n1', { state: 'pending', message: /waiting for its node/ }],
    ['new', 'shutdown', undefined, { state: 'shutdown', message: /stopped before it was placed/ }],
    ['new', 'remove', undefined, { state: 'shutdown', message: /stopped before it was placed/ }],
    ['pending', 'shutdown', undefined, { state: 'shutdown', message: /stopped before it was placed/ }],
    ['pending', 'running', undefined, undefined],
    ['assigned', 'shutdown', 'n1', undefined],
    ['running', 'shutdown', 'n1', undefined],
    ['failed', 'running', 'n1', undefined],
  ];
  for (const [state, desired, nodeId, want] of rows) {
    const got = allocate([task(s, 'x', { slot: 1, state, desired, nodeId })]);
    const name = `${state}/${desired}${nodeId ? ' on a node' : ''}`;
    if (!want) t.same(got, [], `${name}: not the allocator's`);
    else {
      t.equal(got.length, 1, name);
      t.equal(got[0]!.state, want.state, name);
      t.match(got[0]!.message, want.message, name);
    }
  }
});
