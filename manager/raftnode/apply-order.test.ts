// When a write is answered relative to the disks. Three in-process nodes on real DiskStorage and
// the gRPC transport; a gate in front of a node's storage holds its saves (a slow disk, made
// deterministic) to check the two sides of the relaxed Ready contract (raft/types.ts):
//  - a proposal is answered once it is committed on a quorum, even while the leader's own save
//    of a later batch is still in progress (committed entries are applied concurrently with the
//    save, and an append ack that commits entries during a save applies them at once);
//  - it is never answered before a quorum has it durably: with both followers' saves held, the
//    leader's own fsync is not enough.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskStorage } from '../../raft/storage/index.js';
import { ReplicatedNode, type HostStorage, type MemberAddr } from './node.js';
import { freePort } from '../../node/ports.js';
import { until as waitUntil } from '../../test/until.js';

// This file's default wait.
const until = <T>(f: () => T | undefined | null | false, what: string, ms = 20_000) => waitUntil(f, what, ms);

/** Holds save() calls (before they reach the disk) while closed; counts those waiting. */
class SaveGate {
  private closed = false;
  private waiting: (() => void)[] = [];
  saves = 0;
  get held(): number {
    return this.waiting.length;
  }
  close(): void {
    this.closed = true;
  }
  open(): void {
    this.closed = false;
    const w = this.waiting;
    this.waiting = [];
    for (const f of w) f();
  }
  wrap(s: DiskStorage): HostStorage {
    return new Proxy(s, {
      get: (target, prop) => {
        if (prop === 'save') {
          return async (b: Parameters<DiskStorage['save']>[0]) => {
            if (this.closed) await new Promise<void>((r) => this.waiting.push(r));
            await target.save(b);
            this.saves++;
          };
        }
        const v = (target as unknown as Record<string | symbol, unknown>)[prop];
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as unknown as HostStorage;
  }
}

const dir = mkdtempSync(join(tmpdir(), `shoal-apply-order-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const members = new Map<number, MemberAddr>();
for (const id of [1, 2, 3]) members.set(id, { raft: `127.0.0.1:${await freePort('127.0.0.1')}`, api: `127.0.0.1:${await freePort('127.0.0.1')}` });

const nodes = new Map<number, ReplicatedNode>();
const gates = new Map<number, SaveGate>();
for (const id of [1, 2, 3]) {
  const storage = await DiskStorage.open(join(dir, 'n' + id));
  await ReplicatedNode.bootstrap(storage, [1, 2, 3]);
  const gate = new SaveGate();
  gates.set(id, gate);
  const n = new ReplicatedNode({
    id, storage: gate.wrap(storage), listen: members.get(id)!.raft, members,
    // A 1 s election timeout: followers whose saves are held send no heartbeat answers, and the
    // leader must not step down (check quorum) while the second test holds them.
    tickMs: 20, electionTick: 50, proposalTimeoutMs: 15000,
    log: process.env.SHOAL_TEST_LOG ? (m) => process.stderr.write(`[n${id}] ${m}\n`) : undefined,
  });
  await n.start();
  nodes.set(id, n);
}
t.teardown(async () => {
  for (const g of gates.values()) g.open();
  for (const n of nodes.values()) await n.stop();
});

const cfg = (id: string, v: string) => ({ op: 'put' as const, object: { kind: 'config' as const, id, name: id, spec: v } });
const leader = () => until(() => [...nodes.values()].find((n) => n.isLeader()), 'a leader');

t.test('a committed write is answered while the leader is still saving', async (t) => {
  const l = await leader();
  await l.propose([cfg('warm', '1')]); // the leader's first entries are committed
  const gate = gates.get(l.id)!;
  gate.close();
  let done = false;
  const p = l.propose([cfg('a', '1')]).then((r) => {
    done = true;
    return r;
  });
  // The leader's save of this entry is held; both followers save it and ack: that is a quorum.
  const r = await p;
  t.ok(done && r.ok, 'the write was answered');
  t.ok(gate.held > 0, `the leader's own save is still held (${gate.held} waiting)`);
  t.equal(l.store.get('config', 'a')?.version, r.version, 'and applied on the leader');
  gate.open();
  const w = await l.propose([cfg('b', '2')]);
  t.equal(l.store.get('config', 'b')?.version, w.version, 'writes go on after the save');
  await until(() => [...nodes.values()].every((n) => n.store.applied === l.store.applied && (n as any).storage.lastIndex() >= l.store.applied), 'all replicas applied and saved everything');
  const snaps = [...nodes.values()].map((n) => Buffer.from(n.store.snapshot()).toString('base64'));
  t.ok(snaps.every((s) => s === snaps[0]), 'every replica holds the same store');
});

t.test('a write is never answered before a quorum has it on disk', async (t) => {
  const l = await leader();
  const followers = [...nodes.keys()].filter((id) => id !== l.id);
  for (const f of followers) gates.get(f)!.close();
  const before = (l as any).storage.lastIndex() as number;
  let done = false;
  const p = l.propose([cfg('q', '1')]).then((r) => {
    done = true;
    return r;
  });
  // The leader's own save goes through; the followers' are held.
  await until(() => ((l as any).storage.lastIndex() as number) > before, 'the leader saved the entry');
  await until(() => followers.every((f) => gates.get(f)!.held > 0), 'both followers hold a save');
  // Give a wrong answer time to happen: several ticks and loop turns after the leader's save.
  await new Promise((r) => setTimeout(r, 300));
  t.equal(l.isLeader(), true, 'still the leader (else this proves nothing)');
  t.equal(done, false, 'not answered with only the leader durable');
  t.equal(l.store.get('config', 'q'), undefined, 'not applied either');
  gates.get(followers[0]!)!.open();
  const r = await p;
  t.ok(r.ok, 'answered once one follower has saved it too');
  t.ok(gates.get(followers[1]!)!.held > 0, 'the other follower is still held');
  gates.get(followers[1]!)!.open();
  await until(() => [...nodes.values()].every((n) => n.store.applied === l.store.applied), 'all replicas applied');
});
