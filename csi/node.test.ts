// The Node service of the built-in driver, call by call against the CSI spec: stage (loop
// device, ext4 on first use, mount), publish (bind mount, read-only when asked) and their
// reverses, stats; idempotency and error codes. Real loop devices, ext4 and mounts; the test
// removes every one (checked with losetup -a and /proc/mounts).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { mountCapability } from './client.js';
import { GiB } from './capacity.js';
import { superblock } from './ext4.js';
import { loopsFor, mountAt } from './kernel.js';
import { startDriverProc, type DriverProc } from './testing/driver-proc.js';
import { expectCode } from './testing/expect.js';
import { leftovers, sweep, testDir } from './testing/leaks.js';

const dir = testDir('node');
const pool = join(dir, 'pool');
const me = `n-${process.pid}`;
const SNW = mountCapability('SINGLE_NODE_WRITER');
const SNRO = mountCapability('SINGLE_NODE_READER_ONLY');
let D: DriverProc;

t.before(async () => { D = await startDriverProc({ socket: join(dir, 'csi.sock'), pool, nodeId: me }); });
t.teardown(async () => {
  await D?.kill();
  const left = leftovers(dir);
  sweep(dir);
  if (left.loops.length + left.mounts.length > 0) throw new Error(`left behind: ${JSON.stringify(left)}`);
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const call = (svc: 'controller' | 'node', m: string, req: object) => D.client.call<any>(svc, m, req, { retry: false });
const imageFile = (id: string) => join(pool, 'volumes', id, 'image');
// A node attaches its loop device through its own hard link to the image (see pool.ts).
const image = (id: string) => join(pool, 'volumes', id, 'nodes', `${me}.img`);
let n = 0;
async function attached(cap = SNW, size = 64 * 1024 * 1024, readonly = false): Promise<{ id: string; ctx: Record<string, string>; staging: string; target: string }> {
  const id = (await call('controller', 'CreateVolume', { name: `v${++n}-${process.pid}`, volume_capabilities: [cap], capacity_range: { required_bytes: size } })).volume.volume_id;
  const ctx = (await call('controller', 'ControllerPublishVolume', { volume_id: id, node_id: me, volume_capability: cap, readonly })).publish_context;
  return { id, ctx, staging: join(dir, 'staging', id), target: join(dir, 'pods', `p${n}`, 'vol') };
}
const stage = (v: { id: string; ctx: object; staging: string }, cap = SNW) => call('node', 'NodeStageVolume', { volume_id: v.id, publish_context: v.ctx, staging_target_path: v.staging, volume_capability: cap });
const publish = (v: { id: string; ctx: object; staging: string }, target: string, readonly = false, cap = SNW) => call('node', 'NodePublishVolume', { volume_id: v.id, publish_context: v.ctx, staging_target_path: v.staging, target_path: target, volume_capability: cap, readonly });
const mountsAt = (p: string) => readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.split(' ')[1] === p).length;
const writeFails = (p: string) => { try { writeFileSync(p, 'x'); return 'written'; } catch (e) { return (e as NodeJS.ErrnoException).code; } };

t.test('NodeStageVolume', async (t) => {
  const v = await attached();
  await stage(v);
  const loops = loopsFor(image(v.id));
  t.equal(loops.length, 1, 'one loop device on the image');
  t.ok(superblock(loops[0]!.path), 'ext4 made on first use');
  const m = mountAt(v.staging);
  t.equal(m?.source, loops[0]!.path, 'mounted at the staging path');
  t.equal(m?.fsType, 'ext4');
  t.notOk(m?.options.includes('ro'), 'read-write');
  t.match(JSON.parse(readFileSync(join(pool, 'volumes', v.id, 'nodes', `${me}.json`), 'utf8')), { state: 'staged', generation: 1 }, 'the node recorded it in the pool');
  await stage(v);
  t.equal(loopsFor(image(v.id)).length, 1, 'again: still one loop device (idempotent)');
  t.equal(mountsAt(v.staging), 1, 'and one mount');

  writeFileSync(join(v.staging, 'keep'), 'data');
  await call('node', 'NodeUnstageVolume', { volume_id: v.id, staging_target_path: v.staging });
  await stage(v);
  t.equal(readFileSync(join(v.staging, 'keep'), 'utf8'), 'data', 'staged again later: the same filesystem, not reformatted');

  await expectCode(stage({ ...v, staging: join(dir, 'other-staging') }), 'FAILED_PRECONDITION', /already staged on this node at/);
  const occupied = join(dir, 'occupied');
  mkdirSync(occupied, { recursive: true });
  spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', occupied]);
  const v2 = await attached();
  await expectCode(stage({ ...v2, staging: occupied }), 'ALREADY_EXISTS', /another filesystem mounted/);
  spawnSync('umount', [occupied]);

  const bad: [string, object, keyof typeof import('@grpc/grpc-js').status, RegExp][] = [
    ['no volume id', { staging_target_path: v.staging, volume_capability: SNW }, 'INVALID_ARGUMENT', /volume_id is required/],
    ['no staging path', { volume_id: v.id, volume_capability: SNW }, 'INVALID_ARGUMENT', /staging_target_path is required/],
    ['a relative staging path', { volume_id: v.id, staging_target_path: 'rel/dir', volume_capability: SNW }, 'INVALID_ARGUMENT', /absolute path/],
    ['no capability', { volume_id: v.id, staging_target_path: v.staging }, 'INVALID_ARGUMENT', /volume_capability/],
    ['an unknown volume', { volume_id: 'nope-1', staging_target_path: v.staging, volume_capability: SNW }, 'NOT_FOUND', /does not exist/],
    ['another pool', { volume_id: v2.id, publish_context: { ...v2.ctx, 'shoal.io/pool': 'pool-elsewhere' }, staging_target_path: v2.staging, volume_capability: SNW }, 'FAILED_PRECONDITION', /cannot reach that pool/],
  ];
  for (const [name, req, code, msg] of bad) t.ok(await expectCode(call('node', 'NodeStageVolume', req), code, msg), `${name}: ${code}`);

  const un = (await call('controller', 'CreateVolume', { name: `unattached-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: 32 << 20 } })).volume.volume_id;
  await expectCode(stage({ id: un, ctx: {}, staging: join(dir, 'staging', un) }), 'FAILED_PRECONDITION', /not published to node .*ControllerPublishVolume/);

  // Data that is not ext4 is never formatted over.
  const v3 = await attached();
  const fd = openSync(imageFile(v3.id), 'r+');
  writeSync(fd, Buffer.from('someone else\'s data'), 0, undefined, 4096);
  fsyncSync(fd);
  closeSync(fd);
  await expectCode(stage(v3), 'FAILED_PRECONDITION', /not an ext4 filesystem; refusing to format/);
  t.equal(loopsFor(image(v3.id)).length, 0, 'and nothing was attached for it');

  // Read-only attachment of a never-formatted volume: nothing can make its filesystem.
  const v4 = await attached(SNRO, 32 << 20, true);
  await expectCode(stage(v4, SNRO), 'FAILED_PRECONDITION', /no filesystem yet and is attached read-only/);

  for (const x of [v, v4]) {
    await call('node', 'NodeUnstageVolume', { volume_id: x.id, staging_target_path: x.staging });
  }
});

t.test('NodePublishVolume / NodeUnpublishVolume', async (t) => {
  const v = await attached();
  await expectCode(publish(v, v.target), 'FAILED_PRECONDITION', /not staged at/);
  await stage(v);
  await publish(v, v.target);
  t.equal(mountAt(v.target)?.source, loopsFor(image(v.id))[0]!.path, 'bind-mounted at the target (created by the driver)');
  writeFileSync(join(v.target, 'f'), 'hello');
  t.equal(readFileSync(join(v.staging, 'f'), 'utf8'), 'hello', 'the same filesystem as the staging mount');
  await publish(v, v.target);
  t.equal(mountsAt(v.target), 1, 'again: still one mount (idempotent)');

  const ro = join(dir, 'pods', 'reader', 'vol');
  await publish(v, ro, true);
  t.equal(writeFails(join(ro, 'g')), 'EROFS', 'read-only when asked');
  t.equal(readFileSync(join(ro, 'f'), 'utf8'), 'hello', 'and reads the data');
  t.equal(writeFails(join(v.target, 'g')), 'written', 'the other target stays read-write');
  await expectCode(publish(v, ro, false), 'ALREADY_EXISTS', /published read-only/);

  const other = join(dir, 'pods', 'tmpfs');
  mkdirSync(other, { recursive: true });
  spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', other]);
  await expectCode(publish(v, other), 'ALREADY_EXISTS', /another filesystem/);
  await expectCode(call('node', 'NodeUnpublishVolume', { volume_id: v.id, target_path: other }), 'FAILED_PRECONDITION', /not volume/);
  spawnSync('umount', [other]);

  const bad: [string, object, keyof typeof import('@grpc/grpc-js').status, RegExp][] = [
    ['no target', { volume_id: v.id, staging_target_path: v.staging, volume_capability: SNW }, 'INVALID_ARGUMENT', /target_path is required/],
    ['no staging path', { volume_id: v.id, target_path: v.target, volume_capability: SNW }, 'INVALID_ARGUMENT', /staging_target_path is required/],
    ['no capability', { volume_id: v.id, staging_target_path: v.staging, target_path: v.target }, 'INVALID_ARGUMENT', /volume_capability/],
    ['an unknown volume', { volume_id: 'nope-1', staging_target_path: v.staging, target_path: v.target, volume_capability: SNW }, 'NOT_FOUND', /does not exist/],
  ];
  for (const [name, req, code, msg] of bad) t.ok(await expectCode(call('node', 'NodePublishVolume', req), code, msg), `${name}: ${code}`);

  await expectCode(call('node', 'NodeUnstageVolume', { volume_id: v.id, staging_target_path: v.staging }), 'FAILED_PRECONDITION', /still published at/);
  for (const p of [v.target, ro]) {
    await call('node', 'NodeUnpublishVolume', { volume_id: v.id, target_path: p });
    t.equal(mountsAt(p), 0, `unpublished ${p}`);
    t.notOk(existsSync(p), 'and the target removed');
    await call('node', 'NodeUnpublishVolume', { volume_id: v.id, target_path: p });
  }
  t.pass('unpublishing again: OK (idempotent)');
  await expectCode(call('node', 'NodeUnpublishVolume', { volume_id: 'nope-1', target_path: v.target }), 'NOT_FOUND');
  await expectCode(call('node', 'NodeUnpublishVolume', { volume_id: v.id }), 'INVALID_ARGUMENT', /target_path is required/);
  await call('node', 'NodeUnstageVolume', { volume_id: v.id, staging_target_path: v.staging });
});

/** A process in a mount namespace of its own, made (private) while the volume is mounted; `setup` runs in it first. */
async function namespaceHolder(setup: string): Promise<import('node:child_process').ChildProcess> {
  // Its copy of the machine's mounts would also pin other tests' volumes: drop those first.
  const others = `awk '{print $5}' /proc/self/mountinfo | grep '^/tmp/shoal-csi-' | grep -v '^${dir}' | sort -r | while read m; do umount -l "$m"; done`;
  const p = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `${others}; ${setup}; echo ready; exec sleep 600`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => p.stdout!.once('data', r));
  return p;
}
const kill = async (p: import('node:child_process').ChildProcess) => { p.kill('SIGKILL'); if (p.exitCode === null && p.signalCode === null) await new Promise((r) => p.once('exit', r)); };

t.test('NodeUnstageVolume', async (t) => {
  const v = await attached();
  await stage(v);
  await publish(v, v.target);
  // A container using the volume: its mount namespace has it at a path of its own.
  const ctr = join(dir, 'container-root', 'data');
  mkdirSync(ctr, { recursive: true });
  const holder = await namespaceHolder(`mount --bind ${v.target} ${ctr} && umount ${v.target} && umount ${v.staging}`);
  await call('node', 'NodeUnpublishVolume', { volume_id: v.id, target_path: v.target });
  await expectCode(call('node', 'NodeUnstageVolume', { volume_id: v.id, staging_target_path: v.staging }), 'FAILED_PRECONDITION', new RegExp(`mount namespace of process ${holder.pid} .* at ${ctr}`));
  t.equal(mountsAt(v.staging), 1, 'refused while a container uses it: still staged');
  await kill(holder);
  await call('node', 'NodeUnstageVolume', { volume_id: v.id, staging_target_path: v.staging });
  t.equal(mountsAt(v.staging), 0, 'once it is gone: unmounted');
  t.equal(loopsFor(image(v.id)).length, 0, 'and the loop device detached');
  t.match(JSON.parse(readFileSync(join(pool, 'volumes', v.id, 'nodes', `${me}.json`), 'utf8')), { state: 'released' }, 'the node recorded that it let go');
  await call('node', 'NodeUnstageVolume', { volume_id: v.id, staging_target_path: v.staging });
  t.pass('again: OK (idempotent)');
  await expectCode(call('node', 'NodeUnstageVolume', { volume_id: 'nope-1', staging_target_path: v.staging }), 'NOT_FOUND');
  await expectCode(call('node', 'NodeUnstageVolume', { volume_id: v.id }), 'INVALID_ARGUMENT', /staging_target_path is required/);
});

t.test('NodeUnstageVolume unmounts copies another namespace made of the volume by accident', async (t) => {
  const v = await attached();
  await stage(v);
  await publish(v, v.target);
  // Some process on the machine made a private mount namespace meanwhile: it copied the volume's
  // mounts at their host paths, without any use for them.
  const bystander = await namespaceHolder('true');
  const dev = loopsFor(image(v.id))[0]!.dev;
  const copies = () => readFileSync(`/proc/${bystander.pid}/mountinfo`, 'utf8').split('\n').filter((l) => l.split(' ')[2] === dev).length;
  t.equal(copies(), 2, 'it holds copies of the staging and target mounts');
  await call('node', 'NodeUnpublishVolume', { volume_id: v.id, target_path: v.target });
  await call('node', 'NodeUnstageVolume', { volume_id: v.id, staging_target_path: v.staging });
  t.equal(copies(), 0, 'unstaged: its copies were unmounted in its namespace');
  t.equal(bystander.exitCode, null, 'and it runs on, untouched otherwise');
  t.equal(loopsFor(image(v.id)).length, 0, 'the loop device is detached');
  await kill(bystander);
});

t.test('read-only access modes', async (t) => {
  // Formatted once read-write, then attached SINGLE_NODE_READER_ONLY.
  const w = await attached();
  await stage(w);
  writeFileSync(join(w.staging, 'doc'), 'v1');
  await call('node', 'NodeUnstageVolume', { volume_id: w.id, staging_target_path: w.staging });
  await call('controller', 'ControllerUnpublishVolume', { volume_id: w.id, node_id: me });
  const ctx = (await call('controller', 'ControllerPublishVolume', { volume_id: w.id, node_id: me, volume_capability: SNRO })).publish_context;
  const r = { ...w, ctx };
  await stage(r, SNRO);
  t.ok(loopsFor(image(w.id))[0]!.readonly, 'the loop device is read-only');
  t.ok(mountAt(w.staging)?.options.includes('ro'), 'the staging mount is read-only');
  await publish(r, w.target, false, SNRO);
  t.equal(writeFails(join(w.target, 'x')), 'EROFS', 'published read-only even without readonly: the mode is read-only');
  t.equal(readFileSync(join(w.target, 'doc'), 'utf8'), 'v1', 'the data is there');
  await call('node', 'NodeUnpublishVolume', { volume_id: w.id, target_path: w.target });
  await call('node', 'NodeUnstageVolume', { volume_id: w.id, staging_target_path: w.staging });
});

t.test('NodeGetVolumeStats', async (t) => {
  const v = await attached(SNW, 256 << 20);
  await stage(v);
  await publish(v, v.target);
  const s0 = await D.client.volumeStats(v.id, v.target);
  // ext4 counts its journal and inode tables out of the total, and keeps a little back for
  // delayed allocation out of what is available.
  t.ok(s0.bytes!.total > 200 << 20 && s0.bytes!.total <= 256 << 20, `total bytes: the volume's size less ext4's own (${s0.bytes!.total})`);
  t.ok(s0.bytes!.available > 0 && s0.bytes!.available + s0.bytes!.used <= s0.bytes!.total, `used + available within the total (${s0.bytes!.used} + ${s0.bytes!.available})`);
  t.ok(s0.inodes!.total > 0, 'inodes counted');
  const fd = openSync(join(v.target, 'ten'), 'w');
  writeSync(fd, Buffer.alloc(10 << 20, 1));
  fsyncSync(fd);
  closeSync(fd);
  for (let i = 0; i < 5; i++) writeFileSync(join(v.target, `f${i}`), '');
  const s1 = await D.client.volumeStats(v.id, v.staging);
  t.ok(s1.bytes!.used - s0.bytes!.used >= 10 << 20, 'writing 10 MiB uses 10 MiB (seen from the staging path too)');
  t.equal(s1.inodes!.used - s0.inodes!.used, 6, 'six new files, six inodes');
  t.same(s1.condition, { abnormal: false, message: '' }, 'condition: normal');
  await expectCode(D.client.volumeStats('nope-1', v.target, '', { retry: false }), 'NOT_FOUND');
  await expectCode(D.client.volumeStats(v.id, dir, '', { retry: false }), 'NOT_FOUND', /not mounted at/);
  await expectCode(call('node', 'NodeGetVolumeStats', { volume_id: v.id }), 'INVALID_ARGUMENT', /volume_path is required/);
  await call('node', 'NodeUnpublishVolume', { volume_id: v.id, target_path: v.target });
  await call('node', 'NodeUnstageVolume', { volume_id: v.id, staging_target_path: v.staging });
});

t.test('a whole life, through the client helpers', async (t) => {
  const c = D.client;
  const cap = mountCapability('SINGLE_NODE_WRITER');
  const vol = await c.createVolume({ name: `life-${process.pid}`, capacity: { required_bytes: GiB }, capabilities: [cap] });
  const ctx = await c.controllerPublish({ volumeId: vol.volume_id, nodeId: me, capability: cap });
  const staging = join(dir, 'life', 'staging');
  const target = join(dir, 'life', 'task-1');
  await c.mountVolume({ volumeId: vol.volume_id, staging, target, capability: cap, publishContext: ctx });
  await c.mountVolume({ volumeId: vol.volume_id, staging, target, capability: cap, publishContext: ctx });
  writeFileSync(join(target, 'x'), 'y');
  await c.unmountVolume({ volumeId: vol.volume_id, staging, target });
  await c.unmountVolume({ volumeId: vol.volume_id, staging, target });
  await c.controllerUnpublish(vol.volume_id, me);
  await c.deleteVolume(vol.volume_id);
  t.same(leftovers(join(dir, 'life')), { loops: [], mounts: [] }, 'mount, mount again, unmount, unmount again: nothing left');
});
