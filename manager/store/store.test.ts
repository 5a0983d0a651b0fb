import t from 'tap';
import { Packr, Unpackr } from 'msgpackr';
import { encodeCommand, encodeSnapshot, encodeSnapshotAsync } from './codec.js';
import { ObjectStore } from './store.js';
import { TooOldError, type ObjectInput, type StoreEvent, type TxnResult } from './types.js';

const task = (id: string, over: Partial<ObjectInput> = {}): ObjectInput => ({
  kind: 'task', id, name: 'task-' + id, labels: {}, spec: { image: 'busybox' }, ...over,
});

function ok(r: TxnResult) {
  if (!r.ok) throw new Error('expected success, got ' + JSON.stringify(r.conflict));
  return r;
}

t.test('create, get, versions and secondary indices', async (t) => {
  const s = new ObjectStore();
  const r = ok(s.applyTxn(5, [
    { op: 'create', object: { kind: 'service', id: 's1', name: 'web', labels: { tier: 'front' }, spec: { replicas: 2 } } },
    { op: 'create', object: task('t1', { serviceId: 's1', nodeId: 'n1', labels: { tier: 'front', app: 'web' } }) },
    { op: 'create', object: task('t2', { serviceId: 's1', nodeId: 'n2', labels: { tier: 'front' } }) },
    { op: 'create', object: task('t3', { serviceId: 's2', nodeId: 'n1' }) },
  ]));
  t.equal(r.version, 5);
  t.equal(s.applied, 5);
  t.equal(s.get('task', 't1')?.version, 5);
  t.equal(s.get('task', 't1')?.createdVersion, 5);
  t.same(s.get('task', 't1')?.status, null, 'status defaults to null');
  t.equal(s.getByName('service', 'web')?.id, 's1');
  t.equal(s.getByName('task', 'web'), undefined, 'names are per kind');
  t.same(s.list('task', { serviceId: 's1' }).map((o) => o.id).sort(), ['t1', 't2']);
  t.same(s.list('task', { nodeId: 'n1' }).map((o) => o.id).sort(), ['t1', 't3']);
  t.same(s.list('task', { labels: { tier: 'front' } }).map((o) => o.id).sort(), ['t1', 't2']);
  t.same(s.list('task', { labels: { tier: 'front', app: 'web' } }).map((o) => o.id), ['t1']);
  t.same(s.list('task', { serviceId: 's1', nodeId: 'n2' }).map((o) => o.id), ['t2']);
  t.same(s.list('task', { labels: { nope: 'x' } }), []);
  t.equal(s.list('task').length, 3);
  t.equal(s.list('volume').length, 0);

  // Update moves the task to another node and drops a label: the indices follow.
  ok(s.applyTxn(6, [{ op: 'update', object: task('t1', { serviceId: 's1', nodeId: 'n2', labels: { tier: 'front' } }), expectVersion: 5 }]));
  t.equal(s.get('task', 't1')?.version, 6);
  t.equal(s.get('task', 't1')?.createdVersion, 5);
  t.same(s.list('task', { nodeId: 'n1' }).map((o) => o.id), ['t3']);
  t.same(s.list('task', { nodeId: 'n2' }).map((o) => o.id).sort(), ['t1', 't2']);
  t.same(s.list('task', { labels: { app: 'web' } }), []);

  // An update that keeps every indexed field (name, service, node, labels) is found as before.
  ok(s.applyTxn(7, [{ op: 'update', object: task('t1', { serviceId: 's1', nodeId: 'n2', labels: { tier: 'front' }, spec: { image: 'other' } }) }]));
  t.same(s.list('task', { serviceId: 's1', nodeId: 'n2', labels: { tier: 'front' } }).map((o) => [o.id, o.version, (o.spec as { image: string }).image]).sort(), [['t1', 7, 'other'], ['t2', 5, 'busybox']]);
  t.equal(s.getByName('task', 'task-t1')?.version, 7);
  t.equal(s.size, 4);

  ok(s.applyTxn(8, [{ op: 'delete', kind: 'task', id: 't2', expectVersion: 5 }]));
  t.equal(s.get('task', 't2'), undefined);
  t.same(s.list('task', { serviceId: 's1' }).map((o) => o.id), ['t1']);
  t.equal(s.getByName('task', 'task-t2'), undefined, 'the name is freed');
  t.equal(s.size, 3);
});

t.test('a failed compare fails the whole transaction and changes nothing', async (t) => {
  const s = new ObjectStore();
  ok(s.applyTxn(1, [{ op: 'create', object: task('a') }, { op: 'create', object: task('b') }]));
  const events: StoreEvent[] = [];
  s.watch({}, (e) => events.push(...e));
  const r = s.applyTxn(2, [
    { op: 'update', object: task('a', { labels: { x: 'y' } }), expectVersion: 1 },
    { op: 'delete', kind: 'task', id: 'b', expectVersion: 99 },
  ]);
  t.equal(r.ok, false);
  if (!r.ok) {
    t.equal(r.conflict.code, 'version-mismatch');
    t.equal(r.conflict.opIndex, 1);
    t.match(r.conflict.message, /version 1, not 99/);
  }
  t.same(s.get('task', 'a')?.labels, {}, 'first op rolled back');
  t.equal(s.get('task', 'a')?.version, 1);
  t.same(s.list('task', { labels: { x: 'y' } }), [], 'index untouched');
  t.equal(events.length, 0, 'no events for a failed txn');
  t.equal(s.applied, 2, 'the index is consumed anyway, identically everywhere');

  const cases: [string, TxnResult][] = [
    ['exists', s.applyTxn(3, [{ op: 'create', object: task('a') }])],
    ['name-taken', s.applyTxn(4, [{ op: 'create', object: task('c', { name: 'task-a' }) }])],
    ['not-found', s.applyTxn(5, [{ op: 'update', object: task('zz') }])],
    ['not-found', s.applyTxn(6, [{ op: 'delete', kind: 'task', id: 'zz' }])],
    ['version-mismatch', s.applyTxn(7, [{ op: 'put', object: task('new'), expectVersion: 3 }])],
    ['version-mismatch', s.applyTxn(8, [{ op: 'put', object: task('a'), expectVersion: 0 }])],
  ];
  for (const [code, r] of cases) t.equal(r.ok ? 'ok' : r.conflict.code, code, code);
  t.equal(s.size, 2);
});

t.test('ops inside one transaction see each other; renames and swaps keep names exact', async (t) => {
  const s = new ObjectStore();
  ok(s.applyTxn(1, [
    { op: 'create', object: task('a', { name: 'x' }) },
    { op: 'update', object: task('a', { name: 'y' }) },
    { op: 'create', object: task('b', { name: 'x' }) },
  ]));
  t.equal(s.getByName('task', 'x')?.id, 'b');
  t.equal(s.getByName('task', 'y')?.id, 'a');
  // swap names a<->b in one txn via a temporary name
  ok(s.applyTxn(2, [
    { op: 'update', object: task('a', { name: 'tmp' }) },
    { op: 'update', object: task('b', { name: 'y' }) },
    { op: 'update', object: task('a', { name: 'x' }) },
  ]));
  t.equal(s.getByName('task', 'x')?.id, 'a');
  t.equal(s.getByName('task', 'y')?.id, 'b');
  t.equal(s.getByName('task', 'tmp'), undefined);
  ok(s.applyTxn(3, [{ op: 'delete', kind: 'task', id: 'a' }, { op: 'create', object: task('c', { name: 'x' }) }]));
  t.equal(s.getByName('task', 'x')?.id, 'c');
  ok(s.applyTxn(4, [{ op: 'put', object: task('p'), expectVersion: 0 }, { op: 'put', object: task('p', { labels: { v: '2' } }) }]));
  t.same(s.get('task', 'p')?.labels, { v: '2' });
});

t.test('bad input: malformed ops and entries fail as invalid, identically, and lose nothing', async (t) => {
  const s = new ObjectStore();
  ok(s.applyTxn(1, [{ op: 'create', object: task('a') }]));
  const bad: [unknown, RegExp][] = [
    [[], /at least one operation/],
    [[{ op: 'frob' }], /unknown operation "frob"/],
    [[{ op: 'create', object: { ...task('b'), kind: 'pod' } }], /kind "pod" is not one of/],
    [[{ op: 'create', object: { ...task('b'), id: '' } }], /id must be/],
    [[{ op: 'create', object: { ...task('b'), name: ' bad name' } }], /name " bad name"/],
    [[{ op: 'create', object: { ...task('b'), labels: { 'a=b': 'c' } } }], /label key/],
    [[{ op: 'create', object: { ...task('b'), spec: undefined } }], /spec is missing/],
    [[{ op: 'delete', kind: 'task', id: 'a', expectVersion: -1 }], /non-negative integer/],
  ];
  let idx = 2;
  for (const [ops, re] of bad) {
    const r = s.applyTxn(idx++, ops as never);
    t.equal(r.ok, false);
    if (!r.ok) {
      t.equal(r.conflict.code, 'invalid');
      t.match(r.conflict.message, re);
    }
  }
  const garbage = s.applyEntry(idx++, new Uint8Array([0xc1, 0xc1]));
  t.equal(garbage?.result.ok, false);
  const wrongFormat = s.applyEntry(idx++, new Uint8Array([0x93, 0x07, 0xa1, 0x78, 0x90]));
  t.match(wrongFormat?.result.ok === false && wrongFormat.result.conflict.message, /format 7 is not supported/);
  t.equal(s.size, 1);
  t.equal(s.get('task', 'a')?.version, 1);
  t.equal(s.applied, idx - 1);
  t.throws(() => s.applyTxn(1, [{ op: 'create', object: task('q') }]), /not after the applied index/);
  t.equal(s.applyEntry(3, encodeCommand({ reqId: 'r', ops: [] })), null, 're-delivered index is ignored');
});

t.test('applyEntry decodes commands and returns the proposer reqId; empty entries advance', async (t) => {
  const s = new ObjectStore();
  t.equal(s.applyEntry(1, new Uint8Array()), null);
  t.equal(s.applied, 1);
  const r = s.applyEntry(2, encodeCommand({ reqId: 'req-1', ops: [{ op: 'create', object: task('a') }] }));
  t.equal(r?.reqId, 'req-1');
  t.equal(r?.result.ok, true);
  t.equal(s.skip(3), true);
  t.equal(s.skip(3), false);
  t.equal(s.applied, 3);
});

t.test('watches: replay from a version, live events, filters, too old', async (t) => {
  const s = new ObjectStore({ eventLogCapacity: 4 });
  ok(s.applyTxn(1, [{ op: 'create', object: task('a', { labels: { env: 'prod' } }) }]));
  ok(s.applyTxn(2, [{ op: 'create', object: { kind: 'node', id: 'n1', name: 'n1', spec: {} } }]));
  ok(s.applyTxn(3, [{ op: 'update', object: task('a', { labels: { env: 'dev' } }) }]));
  const all: StoreEvent[] = [];
  s.watch({}, (e) => all.push(...e), 1);
  t.same(all.map((e) => [e.version, e.type, e.object.kind]), [[2, 'create', 'node'], [3, 'update', 'task']]);
  const tasks: StoreEvent[] = [];
  s.watch({ kinds: ['task'] }, (e) => tasks.push(...e), 0);
  t.same(tasks.map((e) => e.version), [1, 3]);
  const prod: StoreEvent[] = [];
  const w = s.watch({ labels: { env: 'prod' } }, (e) => prod.push(...e), 0);
  t.same(prod.map((e) => e.version), [1]);
  ok(s.applyTxn(4, [{ op: 'delete', kind: 'task', id: 'a' }]));
  t.same(all.map((e) => e.version), [2, 3, 4]);
  t.equal(all[2]!.object.labels.env, 'dev', 'delete carries the last state');
  t.same(tasks.map((e) => e.version), [1, 3, 4]);
  t.same(prod.map((e) => e.version), [1], 'label filter excludes dev');
  w.cancel();
  ok(s.applyTxn(5, [{ op: 'create', object: task('b', { labels: { env: 'prod' } }) }]));
  t.same(prod.map((e) => e.version), [1], 'cancelled watcher gets nothing');
  // capacity 4: event 1 is now evicted
  t.equal(s.oldestWatchVersion, 1);
  t.throws(() => s.watch({}, () => {}, 0), TooOldError);
  t.throws(() => s.watch({}, () => {}, 0), /too old, re-list/);
  const fromOne: StoreEvent[] = [];
  s.watch({}, (e) => fromOne.push(...e), 1);
  t.same(fromOne.map((e) => e.version), [2, 3, 4, 5]);
  const future: StoreEvent[] = [];
  s.watch({}, (e) => future.push(...e), 5);
  t.equal(future.length, 0);
});

t.test('snapshot and restore: same objects, indices, versions; watchers told to re-list', async (t) => {
  const a = new ObjectStore();
  ok(a.applyTxn(3, [
    { op: 'create', object: task('t1', { serviceId: 's', nodeId: 'n', labels: { k: 'v' }, status: { state: 'running' } }) },
    { op: 'create', object: { kind: 'secret', id: 'sec', name: 'pw', spec: { data: new Uint8Array([1, 2, 3]) } } },
  ]));
  ok(a.applyTxn(4, [{ op: 'update', object: task('t1', { serviceId: 's', nodeId: 'n', labels: { k: 'v' }, status: { state: 'complete' } }) }]));
  const snap = a.snapshot();
  t.ok(snap instanceof Uint8Array);
  t.ok(Array.isArray(new Unpackr({ useRecords: true }).unpack(snap)), 'decodes with a fresh msgpackr instance');

  const b = new ObjectStore();
  let reset: Error | undefined;
  b.watch({}, () => {}, undefined, (e) => (reset = e));
  b.restore(snap);
  t.match(reset?.message, /re-list/);
  t.equal(b.applied, 4);
  t.same(b.get('task', 't1'), a.get('task', 't1'));
  t.same(b.list('task', { serviceId: 's', nodeId: 'n', labels: { k: 'v' } }).map((o) => o.id), ['t1']);
  t.same((b.get('secret', 'sec')?.spec as { data: Uint8Array }).data, new Uint8Array([1, 2, 3]));
  t.equal(b.getByName('secret', 'pw')?.id, 'sec');
  t.throws(() => b.watch({}, () => {}, 3), TooOldError, 'events before the snapshot are gone');
  // Both continue identically.
  for (const s of [a, b]) ok(s.applyTxn(5, [{ op: 'delete', kind: 'task', id: 't1', expectVersion: 4 }]));
  t.same(b.snapshot(), a.snapshot());
  t.throws(() => b.restore(new Uint8Array([0x93, 0x09, 0x00, 0x90])), /snapshot format 9 is not supported/);
  t.equal(b.size, 1, 'a refused snapshot changes nothing');
});

t.test('determinism: two stores fed the same entries end identical', async (t) => {
  const a = new ObjectStore({ eventLogCapacity: 50 });
  const b = new ObjectStore({ eventLogCapacity: 50 });
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 1; i <= 500; i++) {
    const id = 'o' + Math.floor(rnd() * 20);
    const r = rnd();
    const ops = r < 0.4
      ? [{ op: 'create' as const, object: task(id, { labels: { g: String(i % 3) } }) }]
      : r < 0.8 ? [{ op: 'put' as const, object: task(id, { nodeId: 'n' + (i % 4) }), expectVersion: Math.floor(rnd() * i) }]
      : [{ op: 'delete' as const, kind: 'task' as const, id }];
    const data = encodeCommand({ reqId: 'r' + i, ops });
    t.same(a.applyEntry(i, data), b.applyEntry(i, data));
  }
  t.same(a.snapshot(), b.snapshot());
  t.ok(a.size > 0);
});

t.test('snapshots are written in chunks (format 2), encoded alike in one go or a chunk at a time; format 1 is still read', async (t) => {
  const a = new ObjectStore();
  for (let b = 0; b < 45; b++) {
    const ops = [];
    for (let i = b * 100; i < b * 100 + 100; i++) ops.push({ op: 'create' as const, object: { kind: 'config' as const, id: `c${i}`, name: `n${i}`, labels: { i: String(i % 7) }, spec: { v: i }, status: null } });
    t.ok(a.applyEntry(b + 1, encodeCommand({ reqId: 'r' + b, ops }))!.result.ok);
  }
  const view = a.snapshotView();
  // The view stays as it was while the store moves on (objects are replaced, never changed).
  t.ok(a.applyEntry(46, encodeCommand({ reqId: 'r2', ops: [{ op: 'put', object: { kind: 'config', id: 'c0', name: 'n0', labels: {}, spec: { v: 'changed' }, status: null } }] }))!.result.ok);
  const later = await encodeSnapshotAsync(view);
  const direct = encodeSnapshot(view);
  t.same(Buffer.from(later), Buffer.from(direct), 'async and one-go encodings are the same bytes');
  const v = new Unpackr({ mapsAsObjects: true }).unpack(later) as unknown[];
  t.equal(v[0], 2, 'format 2');
  t.equal((v[2] as unknown[]).length, 3, '4,500 objects in chunks of 2,000');
  const b = new ObjectStore();
  b.restore(later);
  t.equal(b.applied, 45);
  t.equal(b.size, 4500);
  t.same(b.get('config', 'c0')?.spec, { v: 0 }, 'the view holds the state at its index');
  t.same(b.list('config', { labels: { i: '3' } }).length, a.list('config', { labels: { i: '3' } }).length);
  // A format 1 snapshot (written before chunks) still restores.
  const old = new Packr({ useRecords: true, mapsAsObjects: true, moreTypes: false }).pack([1, view.applied, view.objects]);
  const c = new ObjectStore();
  c.restore(old);
  t.equal(c.size, 4500);
  t.same(c.snapshot(), b.snapshot(), 'same store either way');
  t.throws(() => c.restore(new Packr({ useRecords: false }).pack([2, 5, ['not bytes']])), /chunk is not bytes/);
  t.equal(c.size, 4500, 'a refused snapshot changes nothing');
});

t.test('status patches: forward only, on the task\'s node, timestamps merged, skipped (not failed) when they do not apply', async (t) => {
  const s = new ObjectStore();
  const st = (state: string, ts: Record<string, number>) => ({ state, message: '', err: '', timestamps: ts });
  ok(s.applyTxn(1, [
    { op: 'create', object: task('a', { nodeId: 'n1', serviceId: 's', labels: { k: 'v' }, status: st('assigned', { new: 1, assigned: 2 }) }) },
    { op: 'create', object: task('b', { nodeId: 'n1', status: st('running', { running: 5 }) }) },
  ]));
  const events: StoreEvent[] = [];
  s.watch({ kinds: ['task'] }, (e) => events.push(...e));
  const before = s.get('task', 'a')!;
  const r = ok(s.applyTxn(2, [
    { op: 'status', kind: 'task', id: 'a', nodeId: 'n1', status: { state: 'running', message: 'started', containerId: 'c1', timestamps: { running: 9 } } },
    { op: 'status', kind: 'task', id: 'b', nodeId: 'n1', status: { state: 'starting', message: 'late', timestamps: { starting: 4 } } },
    { op: 'status', kind: 'task', id: 'b', nodeId: 'n2', status: { state: 'failed', timestamps: { failed: 6 } } },
    { op: 'status', kind: 'task', id: 'gone', status: { state: 'running' } },
  ]));
  t.same(r.objects.map((o) => o?.id ?? null), ['a', null, null, null], 'a step back, another node\'s report and a missing task are skipped');
  const a = s.get('task', 'a')!;
  t.equal(a.version, 2);
  t.equal(a.createdVersion, 1);
  t.same(a.status, { state: 'running', message: 'started', err: '', containerId: 'c1', timestamps: { new: 1, assigned: 2, running: 9 } });
  t.same([a.spec, a.labels, a.nodeId, a.serviceId, a.name], [before.spec, before.labels, before.nodeId, before.serviceId, before.name], 'the rest of the object is kept');
  t.same(s.list('task', { nodeId: 'n1', serviceId: 's', labels: { k: 'v' } }).map((o) => o.id), ['a'], 'indices kept');
  t.equal(s.get('task', 'b')!.version, 1, 'skipped patches change nothing');
  t.same(events.map((e) => [e.type, e.object.id, e.version]), [['update', 'a', 2]]);
  t.equal(events[0]!.prev, before, 'the update event carries the task as it was (cluster events tell the state change from it)');
  // Same state again: more detail (a message, health); a later terminal state replaces an earlier one.
  ok(s.applyTxn(3, [{ op: 'status', kind: 'task', id: 'a', status: { state: 'running', health: 'healthy' } }]));
  t.equal((s.get('task', 'a')!.status as { health: string }).health, 'healthy');
  ok(s.applyTxn(4, [{ op: 'status', kind: 'task', id: 'a', status: { state: 'shutdown', timestamps: { shutdown: 10 } } }, { op: 'status', kind: 'task', id: 'a', status: { state: 'failed', err: 'x', timestamps: { failed: 11 } } }]));
  t.same((s.get('task', 'a')!.status as { state: string; timestamps: object }).timestamps, { new: 1, assigned: 2, running: 9, shutdown: 10, failed: 11 }, 'ops in one transaction see each other');
  // A patch in the same transaction as a failing op is rolled back with it.
  const bad = s.applyTxn(5, [{ op: 'status', kind: 'task', id: 'b', status: { state: 'complete' } }, { op: 'delete', kind: 'task', id: 'b', expectVersion: 99 }]);
  t.equal(bad.ok, false);
  t.equal((s.get('task', 'b')!.status as { state: string }).state, 'running');
});

t.test('status patches: bad input is refused as invalid, naming what is wrong', async (t) => {
  const s = new ObjectStore();
  ok(s.applyTxn(1, [{ op: 'create', object: task('a', { status: { state: 'assigned', timestamps: {} } }) }]));
  const bad: [unknown, RegExp][] = [
    [{ op: 'status', kind: 'node', id: 'a', status: { state: 'running' } }, /tasks only/],
    [{ op: 'status', kind: 'task', id: '', status: { state: 'running' } }, /task id/],
    [{ op: 'status', kind: 'task', id: 'a', status: { state: 'flying' } }, /"flying" is not one of the task states/],
    [{ op: 'status', kind: 'task', id: 'a' }, /needs a status object/],
    [{ op: 'status', kind: 'task', id: 'a', nodeId: 5, status: { state: 'running' } }, /nodeId must be a string/],
    [{ op: 'status', kind: 'task', id: 'a', status: { state: 'running', timestamps: { running: 'now' } } }, /must be a number/],
    [{ op: 'status', kind: 'task', id: 'a', status: { state: 'running', timestamps: { later: 1 } } }, /not a task state/],
  ];
  let idx = 2;
  for (const [op, re] of bad) {
    const r = s.applyTxn(idx++, [op as never]);
    t.equal(r.ok, false);
    if (!r.ok) {
      t.equal(r.conflict.code, 'invalid');
      t.match(r.conflict.message, re);
    }
  }
  t.equal(s.get('task', 'a')!.version, 1, 'nothing changed');
  // Through the log as well: the encoded patch applies alike.
  const data = encodeCommand({ reqId: 'p', ops: [{ op: 'status', kind: 'task', id: 'a', status: { state: 'running', timestamps: { running: 3 } } }] });
  const b = new ObjectStore();
  ok(b.applyTxn(1, [{ op: 'create', object: task('a', { status: { state: 'assigned', timestamps: {} } }) }]));
  t.same(s.applyEntry(idx, data), b.applyEntry(idx, data));
  t.same(s.get('task', 'a'), b.get('task', 'a'));
});

t.test('a command of many ops is written with records (smaller), a small one as maps; both decode to the same ops', async (t) => {
  const { decodeCommand } = await import('./codec.js');
  const ops = Array.from({ length: 40 }, (_, i) => ({ op: 'create' as const, object: task(`t${i}`, { serviceId: 's', nodeId: `n${i % 3}`, spec: { image: 'busybox', env: ['A=1'], slot: i } }) }));
  const big = encodeCommand({ reqId: 'big', ops });
  const maps = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false }).pack([1, 'big', ops]);
  t.ok(big.length < maps.length * 0.7, `records: ${big.length} bytes, maps: ${maps.length}`);
  t.same(decodeCommand(big), { reqId: 'big', ops });
  t.same(decodeCommand(encodeCommand({ reqId: 'small', ops: ops.slice(0, 2) })), { reqId: 'small', ops: ops.slice(0, 2) });
  const a = new ObjectStore();
  const b = new ObjectStore();
  ok(a.applyEntry(1, big)!.result);
  ok(b.applyEntry(1, maps)!.result);
  t.same(a.snapshot(), b.snapshot(), 'the same store either way');
});
