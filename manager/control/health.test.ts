// Node health follows gossip on the leader: a gossip event (healthChanged) reconciles at once,
// not at the next periodic round (set to an hour here, so only the event can have done it). A
// node gossip reports gone is `unknown` for the grace, then `down` (node-health.ts); the first
// tests set the grace to 0 (down at once), the last ones a grace of their own.
// One real manager (raft on disk, a single voter); gossip is a table the test sets, standing in
// for the node's gossip member list (what shoald passes as the manager's gossip view).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { newNodeObject } from '../ca/cluster-init.js';
import { createKeyAndCSR, createRootCA, issueNodeCertificate } from '../ca/pki.js';
import { freePort } from '../../node/ports.js';
import { Manager } from './manager.js';
import type { NodeObject } from './model.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-health-${process.pid}-`));
const ca = await createRootCA('cl');
const { keyPem, csrPem } = await createKeyAndCSR();
const certPem = (await issueNodeCertificate({ ca, csrPem, nodeId: 'm1', role: 'manager', clusterId: 'cl' })).certPem;
const gossip = new Map<string, 'alive' | 'suspect' | 'dead' | 'left'>();
const port = await freePort('127.0.0.1');
const mgr = new Manager({ stateDir: dir, nodeId: 'm1', clusterId: 'cl', raftListen: `127.0.0.1:${port}`, raftAdvertise: `127.0.0.1:${port}`, apiAddr: '', tls: () => ({ caPem: ca.certPem, certPem, keyPem }), gossip: (id) => gossip.get(id), bootstrap: true, healthIntervalMs: 3_600_000, nodeDownGraceMs: 0, log: () => {} });
t.teardown(async () => {
  await mgr.stop();
  rmSync(dir, { recursive: true, force: true });
});
await mgr.start();
await mgr.waitLeader(15_000);
while (!mgr.isLeader()) await new Promise((r) => setTimeout(r, 20));
const nodes = ['w1', 'w2', 'w3'];
await mgr.raft.propose(nodes.map((n) => {
  const o = newNodeObject({ nodeId: n, role: 'worker', hostname: n, addr: '', certPem });
  return { op: 'create' as const, object: { ...o, status: { ...(o.status as object), state: 'ready' } } };
}));
const state = (id: string) => (mgr.node(id) as NodeObject).status.state;

t.test('a gossip event marks a dead node down, and a node back alive ready, at once', async (t) => {
  gossip.set('w1', 'dead');
  gossip.set('w2', 'left');
  gossip.set('w3', 'suspect');
  await mgr.healthChanged();
  t.same(nodes.map(state), ['down', 'down', 'ready'], 'dead and left are down; suspect stays ready');
  t.match((mgr.node('w1') as NodeObject).status.message, /gossip reports the node dead/);
  gossip.set('w1', 'alive');
  await mgr.healthChanged();
  t.equal(state('w1'), 'ready');
});

t.test('events during a round are not lost: each caller hears of a round that saw its change', async (t) => {
  gossip.set('w1', 'dead');
  const first = mgr.healthChanged();
  gossip.set('w3', 'dead');
  const second = mgr.healthChanged();
  await Promise.all([first, second]);
  t.same(nodes.map(state), ['down', 'down', 'down']);
});

t.test('with a grace: gone is unknown first, and back within the grace it is ready, nothing down', async (t) => {
  mgr.o.nodeDownGraceMs = 3_600_000;
  for (const n of nodes) gossip.set(n, 'alive');
  await mgr.healthChanged();
  t.same(nodes.map(state), ['ready', 'ready', 'ready']);
  gossip.set('w1', 'left');
  gossip.set('w2', 'dead');
  await mgr.healthChanged();
  t.same(nodes.map(state), ['unknown', 'unknown', 'ready'], 'left and dead: unknown (no new tasks), not down (tasks stay)');
  t.match((mgr.node('w2') as NodeObject).status.message, /gossip reports the node dead since .*; its tasks are replaced elsewhere at .* unless it returns/);
  gossip.set('w1', 'alive');
  await mgr.healthChanged();
  t.same(nodes.map(state), ['ready', 'unknown', 'ready'], 'back: ready again');
});

t.test('a grace that runs out: down, by the manager\'s own timer (no gossip event, no periodic round)', async (t) => {
  mgr.o.nodeDownGraceMs = 1_000;
  gossip.set('w3', 'dead');
  await mgr.healthChanged();
  // The deadline only turns a missing timer into a failure.
  const end = Date.now() + 60_000;
  while ((state('w2') !== 'down' || state('w3') !== 'down') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  t.same(nodes.map(state), ['ready', 'down', 'down'], 'w2 and w3 down once their grace ran out; w1 (alive) ready');
  t.match((mgr.node('w3') as NodeObject).status.message, /gossip reports the node dead since .* \(down after a 1 s grace\)/);
});
