// Expansion: ControllerExpandVolume grows the image (also while a node has it attached);
// NodeExpandVolume grows the node's loop device and its ext4 online where the kernel allows it
// (CAP_SYS_RESOURCE), and otherwise says so; a volume staged after it grew gets its filesystem
// grown before it is mounted.
import t from 'tap';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountCapability } from './client.js';
import { canResizeOnline } from './ext4.js';
import { loopsFor } from './kernel.js';
import { startDriverProc, type DriverProc } from './testing/driver-proc.js';
import { expectCode } from './testing/expect.js';
import { leftovers, sweep, testDir } from './testing/leaks.js';

const dir = testDir('expand');
const pool = join(dir, 'pool');
const me = `e-${process.pid}`;
const SNW = mountCapability('SINGLE_NODE_WRITER');
let D: DriverProc;

t.before(async () => { D = await startDriverProc({ socket: join(dir, 'csi.sock'), pool, nodeId: me, extra: ['--capacity', '4G'] }); });
t.teardown(async () => {
  await D?.kill();
  const left = leftovers(dir);
  sweep(dir);
  if (left.loops.length + left.mounts.length > 0) throw new Error(`left behind: ${JSON.stringify(left)}`);
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const call = (svc: 'controller' | 'node', m: string, req: object) => D.client.call<any>(svc, m, req, { retry: false });
const MiB = 1 << 20;
const staging = (id: string) => join(dir, 'staging', id);
const target = (id: string) => join(dir, 'task', id);
async function up(id: string) {
  const ctx = (await call('controller', 'ControllerPublishVolume', { volume_id: id, node_id: me, volume_capability: SNW })).publish_context;
  await D.client.mountVolume({ volumeId: id, staging: staging(id), target: target(id), capability: SNW, publishContext: ctx }, { retry: false });
}
async function down(id: string) {
  await D.client.unmountVolume({ volumeId: id, staging: staging(id), target: target(id) }, { retry: false });
  await call('controller', 'ControllerUnpublishVolume', { volume_id: id, node_id: me });
}
const fsBytes = async (id: string) => (await D.client.volumeStats(id, target(id))).bytes!.total;

t.test('ControllerExpandVolume by the spec', async (t) => {
  const id = (await call('controller', 'CreateVolume', { name: `c-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: 64 * MiB } })).volume.volume_id;
  const r = await call('controller', 'ControllerExpandVolume', { volume_id: id, capacity_range: { required_bytes: 100 * MiB } });
  t.same(r, { capacity_bytes: 100 * MiB, node_expansion_required: true }, 'grown; the filesystem still has to grow on the node');
  t.equal(statSync(join(pool, 'volumes', id, 'image')).size, 100 * MiB, 'the image file grew');
  t.equal((await call('controller', 'ControllerExpandVolume', { volume_id: id, capacity_range: { required_bytes: 100 * MiB } })).capacity_bytes, 100 * MiB, 'again: unchanged (idempotent)');
  t.equal((await call('controller', 'ControllerExpandVolume', { volume_id: id, capacity_range: { required_bytes: 80 * MiB } })).capacity_bytes, 100 * MiB, 'smaller: never shrinks');
  await expectCode(call('controller', 'ControllerExpandVolume', { volume_id: id, capacity_range: { limit_bytes: 90 * MiB } }), 'OUT_OF_RANGE', /never shrink/);
  await expectCode(call('controller', 'ControllerExpandVolume', { volume_id: id, capacity_range: { required_bytes: 5 * 2 ** 30 } }), 'OUT_OF_RANGE', /bytes left/);
  await expectCode(call('controller', 'ControllerExpandVolume', { volume_id: id }), 'INVALID_ARGUMENT', /capacity_range is required/);
  await expectCode(call('controller', 'ControllerExpandVolume', { capacity_range: { required_bytes: MiB } }), 'INVALID_ARGUMENT', /volume_id is required/);
  await expectCode(call('controller', 'ControllerExpandVolume', { volume_id: 'nope-1', capacity_range: { required_bytes: 100 * MiB } }), 'NOT_FOUND');

  // Grown before its first use: made at the full size.
  await up(id);
  t.ok(await fsBytes(id) > 80 * MiB, `staged afterwards: the filesystem has the new size, less ext4's own (${await fsBytes(id)})`);
  await down(id);
});

t.test('expanding a volume in use', async (t) => {
  const id = (await call('controller', 'CreateVolume', { name: `o-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: 64 * MiB } })).volume.volume_id;
  await up(id);
  writeFileSync(join(target(id), 'keep'), 'kept');
  const before = await fsBytes(id);
  await call('controller', 'ControllerExpandVolume', { volume_id: id, capacity_range: { required_bytes: 256 * MiB } });
  const loop = loopsFor(join(pool, 'volumes', id, 'nodes', `${me}.img`))[0]!;
  t.equal(loop.sizeBytes, 64 * MiB, 'the attached loop device keeps its size until the node refreshes it');
  await expectCode(call('node', 'NodeExpandVolume', { volume_id: id, volume_path: target(id), capacity_range: { required_bytes: 512 * MiB } }), 'OUT_OF_RANGE', /ControllerExpandVolume it to/);
  await expectCode(call('node', 'NodeExpandVolume', { volume_id: 'nope-1', volume_path: target(id) }), 'NOT_FOUND');
  await expectCode(call('node', 'NodeExpandVolume', { volume_id: id, volume_path: dir }), 'NOT_FOUND', /not mounted at/);
  await expectCode(call('node', 'NodeExpandVolume', { volume_id: id }), 'INVALID_ARGUMENT', /volume_path is required/);
  if (canResizeOnline()) {
    const r = await call('node', 'NodeExpandVolume', { volume_id: id, volume_path: target(id), capacity_range: { required_bytes: 256 * MiB } });
    t.equal(r.capacity_bytes, 256 * MiB, 'NodeExpandVolume: grown');
    t.ok(await fsBytes(id) > 200 * MiB, 'online: the mounted filesystem has the new size');
  } else {
    // This machine's root has no CAP_SYS_RESOURCE, and the kernel grows a mounted ext4 only for that.
    await expectCode(call('node', 'NodeExpandVolume', { volume_id: id, volume_path: target(id), capacity_range: { required_bytes: 256 * MiB } }), 'FAILED_PRECONDITION', /needs CAP_SYS_RESOURCE.*grows to it when the volume is next staged/);
    t.equal(await fsBytes(id), before, 'without CAP_SYS_RESOURCE: the mounted filesystem keeps its size');
  }
  t.equal(loopsFor(join(pool, 'volumes', id, 'nodes', `${me}.img`))[0]!.sizeBytes, 256 * MiB, 'the loop device has the new size');
  await down(id);
  await up(id);
  t.ok(await fsBytes(id) > 200 * MiB, `staged again: the filesystem has the new size (${await fsBytes(id)})`);
  t.equal(readFileSync(join(target(id), 'keep'), 'utf8'), 'kept', 'with its data');
  const again = await call('node', 'NodeExpandVolume', { volume_id: id, volume_path: target(id), capacity_range: { required_bytes: 256 * MiB } });
  t.equal(again.capacity_bytes, 256 * MiB, 'NodeExpandVolume when nothing is left to grow: OK (idempotent)');
  await down(id);
});
