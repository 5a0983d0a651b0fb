// Snapshots: a copy of the image, taken while the volume is unpublished, or, while a node has it
// staged read-write, after that node froze its filesystem (flushed, writers held) at the
// controller's request; restoring one (CreateVolume from it) gives back exactly that data.
// Two shoal-csi processes on one pool: the controller's (node a) and the one with the volume (b).
import t from 'tap';
import { closeSync, fsyncSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { mountCapability } from './client.js';
import { startDriverProc, type DriverProc } from './testing/driver-proc.js';
import { expectCode } from './testing/expect.js';
import { leftovers, sweep, testDir } from './testing/leaks.js';

const dir = testDir('snapshot');
const pool = join(dir, 'pool');
const na = `sa-${process.pid}`;
const nb = `sb-${process.pid}`;
const SNW = mountCapability('SINGLE_NODE_WRITER');
let A: DriverProc;
let B: DriverProc;

t.before(async () => {
  A = await startDriverProc({ socket: join(dir, 'a.sock'), pool, nodeId: na, extra: ['--watch-interval', '200'] });
  B = await startDriverProc({ socket: join(dir, 'b.sock'), pool, nodeId: nb, extra: ['--watch-interval', '200'] });
});
t.teardown(async () => {
  try { process.kill(B.proc.pid!, 'SIGCONT'); } catch { /* gone */ }
  await A?.kill();
  await B?.kill();
  const left = leftovers(dir);
  sweep(dir);
  if (left.loops.length + left.mounts.length > 0) throw new Error(`left behind: ${JSON.stringify(left)}`);
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const ctl = (m: string, req: object) => A.client.call<any>('controller', m, req, { retry: false });
const paths = (node: string, id: string) => ({ staging: join(dir, node, 'staging', id), target: join(dir, node, 'task', id) });
async function mountOn(p: DriverProc, node: string, id: string): Promise<string> {
  const ctx = (await ctl('ControllerPublishVolume', { volume_id: id, node_id: node, volume_capability: SNW })).publish_context;
  const { staging, target } = paths(node, id);
  await p.client.mountVolume({ volumeId: id, staging, target, capability: SNW, publishContext: ctx }, { retry: false });
  return target;
}
async function unmountOn(p: DriverProc, node: string, id: string): Promise<void> {
  const { staging, target } = paths(node, id);
  await p.client.unmountVolume({ volumeId: id, staging, target }, { retry: false });
  await ctl('ControllerUnpublishVolume', { volume_id: id, node_id: node });
}
const vol = async (name: string, size = 64 << 20) => (await ctl('CreateVolume', { name: `${name}-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: size } })).volume.volume_id as string;

t.test('CreateSnapshot of a volume in use on another node, and restoring it', async (t) => {
  const id = await vol('src');
  const tb = await mountOn(B, nb, id);
  // Written through the page cache, not synced: the freeze must flush it for the copy.
  writeFileSync(join(tb, 'state'), 'version 1');
  const t0 = Date.now();
  const snap = (await ctl('CreateSnapshot', { source_volume_id: id, name: `snap1-${process.pid}` })).snapshot;
  t.ok(snap.ready_to_use, `taken (${Date.now() - t0} ms: b froze the filesystem for it)`);
  t.equal(snap.source_volume_id, id);
  t.equal(snap.size_bytes, 64 << 20, 'the size of the volume');
  t.ok(snap.creation_time.seconds > 0, 'a creation time');
  t.same((await ctl('CreateSnapshot', { source_volume_id: id, name: `snap1-${process.pid}` })).snapshot, snap, 'again by the same name: the same snapshot (idempotent)');
  writeFileSync(join(tb, 'state'), 'version 2');
  t.equal(readFileSync(join(tb, 'state'), 'utf8'), 'version 2', 'b writes on after the snapshot (thawed)');

  const restored = (await ctl('CreateVolume', { name: `restored-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: 128 << 20 }, volume_content_source: { snapshot: { snapshot_id: snap.snapshot_id } } })).volume;
  t.equal(restored.content_source?.snapshot?.snapshot_id, snap.snapshot_id, 'a volume from the snapshot');
  t.equal(restored.capacity_bytes, 128 << 20, 'bigger than the snapshot, as asked');
  const ta = await mountOn(A, na, restored.volume_id);
  t.equal(readFileSync(join(ta, 'state'), 'utf8'), 'version 1', 'holding the data of the moment of the snapshot');
  const stats = await A.client.volumeStats(restored.volume_id, ta);
  t.ok(stats.bytes!.total > 100 << 20, `its filesystem grown to the new size when staged (${stats.bytes!.total})`);
  await expectCode(ctl('CreateVolume', { name: `small-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: 32 << 20, limit_bytes: 32 << 20 }, volume_content_source: { snapshot: { snapshot_id: snap.snapshot_id } } }), 'OUT_OF_RANGE', /more than capacity_range.limit_bytes/);
  await unmountOn(A, na, restored.volume_id);
  await unmountOn(B, nb, id);
});

t.test('a writer blocked by the freeze loses nothing', async (t) => {
  const id = await vol('busy');
  const tb = await mountOn(B, nb, id);
  // A writer appending and syncing in a loop while the snapshot is taken.
  const writer = spawn('sh', ['-c', `i=0; while [ $i -lt 400 ]; do echo line$i >> ${join(tb, 'log')}; sync ${join(tb, 'log')}; i=$((i+1)); done`], { stdio: 'ignore' });
  const done = new Promise((r) => writer.once('exit', r));
  await new Promise((r) => setTimeout(r, 100));
  const snap = (await ctl('CreateSnapshot', { source_volume_id: id, name: `busy-${process.pid}` })).snapshot;
  await done;
  const lines = readFileSync(join(tb, 'log'), 'utf8').trim().split('\n');
  t.equal(lines.length, 400, 'the writer finished all its lines');
  const r = (await ctl('CreateVolume', { name: `busy-r-${process.pid}`, volume_capabilities: [SNW], volume_content_source: { snapshot: { snapshot_id: snap.snapshot_id } }, capacity_range: { required_bytes: 64 << 20 } })).volume.volume_id;
  const ta = await mountOn(A, na, r);
  const copy = readFileSync(join(ta, 'log'), 'utf8').trim().split('\n');
  t.ok(copy.length <= 400, `the snapshot holds a prefix of the log (${copy.length} lines)`);
  t.same(copy, lines.slice(0, copy.length), 'line for line: consistent, nothing torn');
  await unmountOn(A, na, r);
  await unmountOn(B, nb, id);
});

t.test('a node that does not freeze in time: ABORTED, and nothing is copied', async (t) => {
  const id = await vol('stuck');
  const tb = await mountOn(B, nb, id);
  const fd = openSync(join(tb, 'x'), 'w');
  writeSync(fd, 'x');
  fsyncSync(fd);
  closeSync(fd);
  process.kill(B.proc.pid!, 'SIGSTOP');
  try {
    await expectCode(ctl('CreateSnapshot', { source_volume_id: id, name: `stuck-${process.pid}` }), 'ABORTED', /did not freeze it for the snapshot/);
  } finally { process.kill(B.proc.pid!, 'SIGCONT'); }
  t.same((await A.client.listSnapshots({ volumeId: id })), [], 'no snapshot recorded');
  writeFileSync(join(tb, 'y'), 'still writable');
  t.pass('b was never left frozen');
  await unmountOn(B, nb, id);
});

t.test('CreateSnapshot / DeleteSnapshot / ListSnapshots by the spec', async (t) => {
  const id = await vol('quiet');
  const s1 = (await ctl('CreateSnapshot', { source_volume_id: id, name: `q1-${process.pid}` })).snapshot;
  const s2 = (await ctl('CreateSnapshot', { source_volume_id: id, name: `q2-${process.pid}` })).snapshot;
  t.ok(s1.ready_to_use && s2.ready_to_use, 'an unpublished volume: copied at once');
  const other = await vol('other');
  await expectCode(ctl('CreateSnapshot', { source_volume_id: other, name: `q1-${process.pid}` }), 'ALREADY_EXISTS', /already exists, of volume/);
  await expectCode(ctl('CreateSnapshot', { source_volume_id: 'nope-1', name: `n-${process.pid}` }), 'NOT_FOUND');
  await expectCode(ctl('CreateSnapshot', { name: `n-${process.pid}` }), 'INVALID_ARGUMENT', /source_volume_id is required/);
  await expectCode(ctl('CreateSnapshot', { source_volume_id: id }), 'INVALID_ARGUMENT', /name is required/);
  await expectCode(ctl('CreateSnapshot', { source_volume_id: id, name: `p-${process.pid}`, parameters: { x: '1' } }), 'INVALID_ARGUMENT', /unknown parameters/);

  t.same((await A.client.listSnapshots({ volumeId: id })).map((s) => s.snapshot_id).sort(), [s1.snapshot_id, s2.snapshot_id].sort(), 'listed by source volume');
  t.same((await A.client.listSnapshots({ snapshotId: s2.snapshot_id })).map((s) => s.snapshot_id), [s2.snapshot_id], 'listed by id');
  t.same(await A.client.listSnapshots({ snapshotId: 'nope-1' }), [], 'an unknown id: an empty list, not an error');
  const page = await ctl('ListSnapshots', { max_entries: 1, source_volume_id: id });
  t.equal(page.entries.length, 1, 'max_entries');
  t.ok(page.next_token, 'and a token for the rest');
  t.equal((await ctl('ListSnapshots', { max_entries: 1, source_volume_id: id, starting_token: page.next_token })).entries.length, 1, 'the next page');
  await expectCode(ctl('ListSnapshots', { starting_token: '/../x' }), 'ABORTED', /starting_token/);

  await ctl('DeleteVolume', { volume_id: id });
  t.equal((await A.client.listSnapshots({ snapshotId: s1.snapshot_id })).length, 1, 'a snapshot outlives its volume');
  await ctl('DeleteSnapshot', { snapshot_id: s1.snapshot_id });
  await ctl('DeleteSnapshot', { snapshot_id: s1.snapshot_id });
  await ctl('DeleteSnapshot', { snapshot_id: 'never-1' });
  t.same(await A.client.listSnapshots({ snapshotId: s1.snapshot_id }), [], 'deleted; deleting again or an unknown id: OK');
  await expectCode(ctl('DeleteSnapshot', {}), 'INVALID_ARGUMENT', /snapshot_id is required/);
  await ctl('DeleteSnapshot', { snapshot_id: s2.snapshot_id });
});
