// Three (then four) replicated nodes in one process, each with its own DiskStorage in a temp dir
// and a real gRPC transport on loopback: elections, proposals, conflicts, ReadIndex reads,
// snapshots with log compaction, a learner catching up by snapshot and promoted to voter, and a
// restart from disk. Ticks are 20 ms instead of 100 ms only to keep the test short.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskStorage } from '../../raft/storage/index.js';
import { ConflictError } from '../store/types.js';
import { NotLeaderError, ProposalDroppedError } from './errors.js';
import { ReplicatedNode, type MemberAddr } from './node.js';
import { StoreService } from '../storeapi/service.js';
import { StoreClient } from '../storeapi/client.js';
import { freePort } from '../../node/ports.js';
import { until as waitUntil } from '../../test/until.js';

// This file's default wait.
const until = <T>(f: () => T | undefined | null | false, what: string, ms = 20_000) => waitUntil(f, what, ms);

const dir = mkdtempSync(join(tmpdir(), `shoal-raftnode-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const members = new Map<number, MemberAddr>();
for (const id of [1, 2, 3, 4]) members.set(id, { raft: `127.0.0.1:${await freePort('127.0.0.1')}`, api: `127.0.0.1:${await freePort('127.0.0.1')}` });

const nodes = new Map<number, ReplicatedNode>();
const apis = new Map<number, StoreService>();

async function startNode(id: number, opts: { bootstrap: boolean; voters?: number[] }): Promise<ReplicatedNode> {
  const storage = await DiskStorage.open(join(dir, 'n' + id));
  if (opts.bootstrap) await ReplicatedNode.bootstrap(storage, opts.voters ?? [1, 2, 3]);
  const n = new ReplicatedNode({
    id, storage, listen: members.get(id)!.raft, members: new Map([...members].filter(([k]) => k <= 3 || k === id)),
    tickMs: 20, snapshotEvery: 100, snapshotKeep: 20, proposalTimeoutMs: 8000,
    log: process.env.SHOAL_TEST_LOG ? (m) => process.stderr.write(`[n${id}] ${m}\n`) : undefined,
  });
  await n.start();
  const api = new StoreService(n);
  await api.start(members.get(id)!.api);
  nodes.set(id, n);
  apis.set(id, api);
  return n;
}

async function stopNode(id: number): Promise<void> {
  await apis.get(id)?.stop();
  await nodes.get(id)?.stop();
  nodes.delete(id);
  apis.delete(id);
}

t.teardown(async () => {
  for (const id of [...nodes.keys()]) await stopNode(id);
});

const leader = () => until(() => [...nodes.values()].find((n) => n.isLeader()), 'a leader');
const cfg = (id: string, v: string) => ({ op: 'put' as const, object: { kind: 'config' as const, id, name: id, spec: v } });

t.test('three nodes elect a leader and replicate transactions identically', async (t) => {
  for (const id of [1, 2, 3]) await startNode(id, { bootstrap: true });
  const l = await leader();
  const r = await l.propose([cfg('a', '1'), cfg('b', '2')]);
  t.equal(r.ok, true);
  t.equal(r.objects[0]?.version, r.version);
  await until(() => [...nodes.values()].every((n) => n.store.applied >= r.version), 'all applied');
  for (const n of nodes.values()) t.equal(n.store.get('config', 'b')?.spec, '2', `node ${n.id} has b`);

  await t.rejects(l.propose([{ op: 'update', object: { kind: 'config', id: 'a', name: 'a', spec: 'x' }, expectVersion: 1 }]), ConflictError);
  await t.rejects(l.propose([{ op: 'create', object: { kind: 'pod' as never, id: 'a', name: 'a', spec: 1 } }]), /kind "pod"/);
  const f = [...nodes.values()].find((n) => !n.isLeader())!;
  // A follower's proposal is forwarded to the leader by raft and resolves when applied locally.
  const fw = await f.propose([cfg('c', '3')]);
  t.equal(f.store.get('config', 'c')?.version, fw.version, 'forwarded write applied on the follower');
  await t.rejects(f.propose([{ op: 'create', object: { kind: 'config', id: 'c', name: 'c', spec: 1 } }]), ConflictError, 'conflict reaches the follower too');

  // A linearizable read on a follower sees a write acknowledged just before.
  const w = await l.propose([cfg('lin', 'yes')]);
  await f.linearizableRead();
  t.ok(f.store.applied >= w.version, 'follower read point covers the acknowledged write');
  t.equal(f.store.get('config', 'lin')?.spec, 'yes');
});

t.test('the Store service: follower forwards writes, reads, watch replay', async (t) => {
  const l = await leader();
  const fid = [...nodes.keys()].find((id) => id !== l.id)!;
  const c = new StoreClient(members.get(fid)!.api);
  t.teardown(() => c.close());
  const from = nodes.get(fid)!.store.applied;
  const p = await c.put({ kind: 'service', id: 's1', name: 'web', labels: { app: 'web' }, spec: { replicas: 3 } });
  t.ok(p.version > from, 'write through a follower committed');
  const g = await c.get('service', 's1');
  t.same(g.object?.spec, { replicas: 3 });
  t.equal(g.object?.version, p.version);
  const lst = await c.list('service', { labels: { app: 'web' } });
  t.same(lst.objects.map((o) => o.id), ['s1']);
  await t.rejects(c.put({ kind: 'service', id: 's1', name: 'web', spec: {} }, 1), { code: 10 });
  await t.rejects(c.txn([{ type: 9 }]), { code: 3 });
  const events: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const w = c.watch({ kinds: ['service'], fromVersion: from });
    w.on('data', (e) => {
      events.push(`${e.type}:${e.object.id}`);
      w.cancel();
      resolve();
    });
    w.on('error', (e: { code: number }) => (e.code === 1 ? resolve() : reject(e)));
  });
  t.same(events, ['create:s1'], 'watch replays from a version');
  const tooOld = await new Promise<{ code: number; details: string }>((resolve) => {
    const w = c.watch({ fromVersion: 0 });
    w.on('data', () => {});
    w.on('error', resolve);
  });
  t.equal(tooOld.code, 11);
  t.match(tooOld.details, /too old, re-list/);
});

t.test('snapshots compact the log; a learner catches up from a snapshot and is promoted', async (t) => {
  const l = await leader();
  let last = 0;
  for (let i = 0; i < 300; i++) last = (await l.propose([cfg('k' + (i % 50), 'v' + i)])).version;
  await until(() => [...nodes.values()].every((n) => n.store.applied >= last), 'all applied');
  for (const n of nodes.values()) t.ok(n.metrics.snapshots >= 2, `node ${n.id} took snapshots (${n.metrics.snapshots})`);
  const firstIdx = (l as any).storage.firstIndex() as number;
  t.ok(firstIdx > 100, `leader log compacted (first index ${firstIdx})`);

  const n4 = await startNode(4, { bootstrap: false });
  await t.rejects(n4.propose([cfg('x', 'y')]), NotLeaderError, 'a node outside the cluster knows no leader');
  await l.addLearner(4, members.get(4)!);
  await until(() => n4.store.applied >= last, 'learner caught up', 30000);
  t.same(n4.store.snapshot().length > 0, true);
  t.equal(n4.store.get('config', 'k49')?.spec, 'v299');
  t.same(l.confState().learners, [4]);
  await until(() => (l.progress(4) ?? 0) >= last, 'leader sees the learner matched');
  // Only one membership change may be pending: a second one proposed alongside is refused by the
  // core, and its caller is told so (ProposalDroppedError), not left to
  // time out with an unknown outcome (UnknownOutcomeError).
  const promoting = l.promote(4);
  const second = await l.removeMember(3).then(() => undefined, (e: Error) => e);
  t.ok(second instanceof ProposalDroppedError, `the second change is refused (${second?.name}: ${second?.message})`);
  t.match(second?.message ?? '', /pending/, 'and says another change is pending');
  t.same(l.confState().voters.slice().sort().includes(3), true, 'the refused change did nothing');
  const cs = await promoting;
  t.same(cs.voters.slice().sort(), [1, 2, 3, 4]);
  const w = await l.propose([cfg('after4', 'ok')]);
  await until(() => n4.store.applied >= w.version, 'new voter applies');
  t.equal(n4.store.get('config', 'after4')?.spec, 'ok');
});

t.test('a node restarted from disk catches up and ends identical', async (t) => {
  const l = await leader();
  const victim = [...nodes.keys()].find((id) => id !== l.id)!;
  await stopNode(victim);
  let last = 0;
  for (let i = 0; i < 150; i++) last = (await l.propose([cfg('r' + (i % 10), 'v' + i)])).version;
  const back = await startNode(victim, { bootstrap: victim <= 3 });
  await until(() => back.store.applied >= last, 'restarted node caught up', 30000);
  await until(() => [...nodes.values()].every((n) => n.store.applied === l.store.applied), 'all equal');
  const snaps = [...nodes.values()].map((n) => Buffer.from(n.store.snapshot()).toString('base64'));
  t.ok(snaps.every((s) => s === snaps[0]), 'every replica holds the same store');
});
