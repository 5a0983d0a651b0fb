// The node-down grace as a pure decision (node-health.ts): gossip's view, when the node went, now.
import t from 'tap';
import { node } from '../orchestrator/fixtures.js';
import type { NodeObject, NodeState } from './model.js';
import { nodeHealth } from './node-health.js';

const G = 15_000;
const at = (state: NodeState, message = ''): NodeObject => {
  const n = node('w1', { state });
  return { ...n, status: { ...n.status, message } };
};

t.test('alive or suspect: ready', async (t) => {
  t.same(nodeHealth(at('unknown', 'gossip reports the node dead since x'), 'alive', 1, 2, G), { state: 'ready', message: '' });
  t.same(nodeHealth(at('down'), 'suspect', 1, 2, G), { state: 'ready', message: '' });
  t.same(nodeHealth(at('ready'), 'alive', undefined, 2, G), {}, 'already ready: nothing to write');
});

t.test('dead or left: unknown within the grace, down after it', async (t) => {
  const v = nodeHealth(at('ready'), 'left', 1_000, 1_000, G);
  t.equal(v.state, 'unknown');
  t.equal(v.recheckAt, 16_000, 'decided again when the grace runs out');
  t.match(v.message, /gossip reports the node left since .*; its tasks are replaced elsewhere at .* unless it returns/);
  t.same(nodeHealth(at('unknown', v.message), 'left', 1_000, 9_000, G), { recheckAt: 16_000 }, 'unknown already written: only the recheck');
  const d = nodeHealth(at('unknown', v.message), 'dead', 1_000, 16_000, G);
  t.equal(d.state, 'down');
  t.match(d.message, /down after a 15 s grace/);
  t.same(nodeHealth(at('down'), 'dead', 1_000, 99_000, G), {}, 'down stays down');
  t.equal(nodeHealth(at('ready'), 'dead', undefined, 5, 0).state, 'down', 'a grace of 0: down at once');
});

t.test("not in this manager's gossip", async (t) => {
  t.same(nodeHealth(at('ready'), undefined, undefined, 5, G), {}, 'a ready node is left as it is');
  t.same(nodeHealth(at('unknown', 'joined'), undefined, undefined, 5, G), {}, 'a node that never came up is left as it is');
  const gone = at('unknown', 'gossip reports the node dead since x; its tasks are replaced elsewhere at y unless it returns');
  t.same(nodeHealth(gone, undefined, 100, 200, G), { recheckAt: 15_100 }, 'one an earlier leader saw go: its grace runs here too');
  t.equal(nodeHealth(gone, undefined, 100, 15_100, G).state, 'down', 'and it ends');
});
