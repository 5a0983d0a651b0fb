// DiskStorage under the real Raft core (raft/core RawNode): three nodes in one process, messages
// delivered by hand (a deterministic stand-in for the transport, which this test is not about).
// Each Ready is persisted with save(rd) before its messagesAfterPersist go out. Covers bootstrap,
// replication, a local snapshot + compaction on the leader, a lagging follower that receives the
// snapshot (Ready.snapshot -> save) and restarts of both from disk.

import t from 'tap';
import { RawNode, decodeConfChange } from '../core/index.js';
import { EntryType, MessageType, Role, type Message, type NodeId } from '../types.js';
import { DiskStorage } from './disk-storage.js';
import { prng, snapshotFiles, tempDir } from './testkit.js';

interface Host {
  id: NodeId;
  dir: string;
  storage: DiskStorage;
  raw: RawNode;
  state: string[];
  applied: number;
}

const enc = (s: string) => Buffer.from(s);

async function startHost(id: NodeId, dir: string, seed: number): Promise<Host> {
  // retainOnOpen > 0 with RaftConfig.applied = the snapshot index: the documented pairing.
  const storage = await DiskStorage.open(dir, { segmentSizeBytes: 4096, retainOnOpen: 5000 });
  const snap = storage.snapshot();
  const applied = snap.meta.index;
  const state: string[] = applied > 0 ? (JSON.parse(Buffer.from(snap.data).toString()) as string[]) : [];
  const raw = new RawNode({ id, storage, random: prng(seed), applied });
  return { id, dir, storage, raw, state, applied };
}

async function handleReady(h: Host, outbox: Message[]): Promise<boolean> {
  if (!h.raw.hasReady()) return false;
  const rd = h.raw.ready();
  outbox.push(...rd.messages);
  await h.storage.save(rd);
  outbox.push(...rd.messagesAfterPersist);
  if (rd.snapshot) {
    h.state = JSON.parse(Buffer.from(rd.snapshot.data).toString()) as string[];
    h.applied = rd.snapshot.meta.index;
  }
  for (const e of rd.committedEntries) {
    if (e.index <= h.applied) continue;
    if (e.type === EntryType.ConfChange) h.raw.applyConfChange(decodeConfChange(e.data));
    else if (e.data.length > 0) h.state.push(Buffer.from(e.data).toString());
    h.applied = e.index;
  }
  h.raw.advance();
  return true;
}

async function stabilize(hosts: Map<NodeId, Host>, down: Set<NodeId>): Promise<void> {
  for (let round = 0; round < 10_000; round++) {
    const outbox: Message[] = [];
    let busy = false;
    for (const h of hosts.values()) if (!down.has(h.id)) busy = (await handleReady(h, outbox)) || busy;
    for (const m of outbox) {
      if (down.has(m.to) || down.has(m.from)) continue;
      hosts.get(m.to)!.raw.step(m);
      // The in-process "transport" delivered the snapshot: tell the sender, as a real transport would.
      if (m.type === MessageType.Snap) hosts.get(m.from)!.raw.reportSnapshot(m.to, true);
    }
    if (!busy && outbox.length === 0) return;
  }
  throw new Error('the cluster did not settle');
}

function leaderOf(hosts: Map<NodeId, Host>): Host | undefined {
  return [...hosts.values()].find((h) => h.raw.status().role === Role.Leader);
}

t.test('three nodes on DiskStorage: replicate, snapshot, catch up by snapshot, restart from disk', async (t) => {
  const base = await tempDir(t, 'core');
  const hosts = new Map<NodeId, Host>();
  for (const id of [1, 2, 3]) {
    const h = await startHost(id, `${base}/n${id}`, id);
    h.raw.bootstrap([1, 2, 3]);
    hosts.set(id, h);
  }
  t.teardown(async () => {
    for (const h of hosts.values()) await h.storage.close().catch(() => {});
  });
  const none = new Set<NodeId>();
  await stabilize(hosts, none);
  hosts.get(1)!.raw.campaign();
  await stabilize(hosts, none);
  t.equal(leaderOf(hosts)?.id, 1, 'node 1 leads');

  const propose = async (prefix: string, n: number, down: Set<NodeId>) => {
    for (let i = 0; i < n; i++) {
      leaderOf(hosts)!.raw.propose(enc(`${prefix}${i}`));
      if (i % 7 === 6) await stabilize(hosts, down);
    }
    await stabilize(hosts, down);
  };
  await propose('a', 30, none);
  for (const h of hosts.values()) t.equal(h.state.length, 30, `node ${h.id} applied 30 commands`);

  // Node 3 is cut off while the log moves on, then the leader snapshots and compacts it away.
  const down3 = new Set<NodeId>([3]);
  await propose('b', 100, down3);
  const leader = hosts.get(1)!;
  const A = leader.applied;
  await leader.storage.saveSnapshot({ meta: { index: A, term: leader.storage.term(A), conf: leader.raw.status().conf }, data: enc(JSON.stringify(leader.state)) });
  await leader.storage.compact(A);
  t.equal(leader.storage.firstIndex(), A + 1, 'leader compacted its log up to the snapshot');

  await propose('c', 1, none);
  const n3 = hosts.get(3)!;
  t.equal(n3.storage.snapshot().meta.index, A, 'node 3 caught up through the snapshot');
  t.same(await snapshotFiles(n3.dir), [DiskStorage.snapshotFileName(A, n3.storage.term(A))], 'and wrote it to disk');
  t.same(n3.state, leader.state, 'node 3 has the same state as the leader');

  await propose('d', 10, none);

  // Restart node 3 from disk: state from its snapshot, the rest replayed from its WAL.
  await n3.storage.close();
  const r3 = await startHost(3, n3.dir, 33);
  t.equal(r3.storage.snapshot().meta.index, A);
  t.ok(r3.storage.lastIndex() >= A + 11, `node 3's WAL holds the entries after the snapshot (last ${r3.storage.lastIndex()})`);
  hosts.set(3, r3);
  await stabilize(hosts, none);
  t.same(r3.state, leader.state, 'restarted node 3 re-applied to the same state');

  // Restart the leader too; another node takes over and the cluster keeps going.
  await leader.storage.close();
  const r1 = await startHost(1, leader.dir, 11);
  t.equal(r1.storage.snapshot().meta.index, A);
  hosts.set(1, r1);
  await stabilize(hosts, none);
  hosts.get(2)!.raw.campaign();
  await stabilize(hosts, none);
  t.equal(leaderOf(hosts)?.id, 2, 'node 2 leads after the restart');
  await propose('e', 5, none);
  const expected = [...Array.from({ length: 30 }, (_, i) => `a${i}`), ...Array.from({ length: 100 }, (_, i) => `b${i}`), 'c0', ...Array.from({ length: 10 }, (_, i) => `d${i}`), ...Array.from({ length: 5 }, (_, i) => `e${i}`)];
  for (const h of hosts.values()) t.same(h.state, expected, `node ${h.id} applied every command once, in order`);
  const hs = hosts.get(2)!.storage.initialState().hardState;
  t.ok(hs.term >= 2 && hs.commit === hosts.get(2)!.storage.lastIndex(), `node 2's persisted hard state is current (${JSON.stringify(hs)})`);
});
