// Crashes in the middle: the driver is killed with SIGKILL at a point inside a call (a crash
// point, SHOAL_CSI_CRASH_AT) or between two calls; a restarted driver then finishes the call
// when it is repeated, or undoes what was done when the reverse call comes, and in the end
// nothing is left: no loop device, no mount, no image, nothing half-made in the pool.
import t, { type Test } from 'tap';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountCapability } from './client.js';
import { loopsFor, mountAt } from './kernel.js';
import { startDriverProc, type DriverProc } from './testing/driver-proc.js';
import { leftovers, sweep, testDir } from './testing/leaks.js';

const dir = testDir('crash');
const pool = join(dir, 'pool');
const me = `c-${process.pid}`;
const SNW = mountCapability('SINGLE_NODE_WRITER');
let D: DriverProc | undefined;

t.teardown(async () => {
  await D?.kill();
  const left = leftovers(dir);
  sweep(dir);
  if (left.loops.length + left.mounts.length > 0) throw new Error(`left behind: ${JSON.stringify(left)}`);
});

const start = async (crashAt?: string) => {
  D = await startDriverProc({ socket: join(dir, 'csi.sock'), pool, nodeId: me, env: crashAt ? { SHOAL_CSI_CRASH_AT: crashAt } : {} });
  return D;
};
/** The call must end the driver by SIGKILL at its crash point. */
async function crashes(p: DriverProc, call: Promise<unknown>): Promise<void> {
  const err = await call.then(() => undefined, (e: Error) => e);
  if (!err) throw new Error('the call succeeded; the driver was to die inside it');
  const ex = await p.exited();
  if (ex.signal !== 'SIGKILL') throw new Error(`the driver ended with ${JSON.stringify(ex)}, not by SIGKILL`);
  p.client.close();
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const call = (p: DriverProc, svc: 'controller' | 'node', m: string, req: object) => p.client.call<any>(svc, m, req, { retry: false });
const link = (id: string) => join(pool, 'volumes', id, 'nodes', `${me}.img`);
let n = 0;

interface Vol { id: string; ctx: Record<string, string>; staging: string; target: string }
async function attachedVolume(p: DriverProc): Promise<Vol> {
  const id = (await call(p, 'controller', 'CreateVolume', { name: `k${++n}-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: 64 << 20 } })).volume.volume_id;
  const ctx = (await call(p, 'controller', 'ControllerPublishVolume', { volume_id: id, node_id: me, volume_capability: SNW })).publish_context;
  return { id, ctx, staging: join(dir, 'staging', id), target: join(dir, 'task', id) };
}
const stageReq = (v: Vol) => ({ volume_id: v.id, publish_context: v.ctx, staging_target_path: v.staging, volume_capability: SNW });
const publishReq = (v: Vol) => ({ ...stageReq(v), target_path: v.target, readonly: false });
async function removeAll(p: DriverProc, v: Vol): Promise<void> {
  await p.client.unmountVolume({ volumeId: v.id, staging: v.staging, target: v.target }, { retry: false });
  await call(p, 'controller', 'ControllerUnpublishVolume', { volume_id: v.id, node_id: me });
  await call(p, 'controller', 'DeleteVolume', { volume_id: v.id });
}
function clean(t: Test, v: Vol): void {
  t.same(leftovers(dir), { loops: [], mounts: [] }, 'no loop device or mount left (losetup -a, /proc/mounts)');
  t.notOk(existsSync(join(pool, 'volumes', v.id)), 'the volume and its image are gone');
  t.same(readdirSync(join(pool, '.tmp')), [], 'nothing half-made in the pool');
}

// Stage's steps, each interrupted: repeating NodeStage finishes it; or NodeUnstage undoes it.
for (const point of ['stage:after-loop', 'stage:after-mkfs', 'stage:after-mount']) {
  for (const then of ['finish', 'undo'] as const) {
    t.test(`killed at ${point}, then ${then}`, async (t) => {
      let p = await start(point);
      const v = await attachedVolume(p);
      await crashes(p, call(p, 'node', 'NodeStageVolume', stageReq(v)));
      t.equal(loopsFor(link(v.id)).length, 1, 'the dead driver left a loop device');
      p = await start();
      if (then === 'finish') {
        await call(p, 'node', 'NodeStageVolume', stageReq(v));
        t.equal(loopsFor(link(v.id)).length, 1, 'repeated: staged, on the same one loop device');
        t.ok(mountAt(v.staging), 'and mounted');
        await call(p, 'node', 'NodePublishVolume', publishReq(v));
        writeFileSync(join(v.target, 'f'), 'ok');
        t.equal(readFileSync(join(v.staging, 'f'), 'utf8'), 'ok', 'a working filesystem');
      } else {
        await call(p, 'node', 'NodeUnstageVolume', { volume_id: v.id, staging_target_path: v.staging });
        t.equal(loopsFor(link(v.id)).length, 0, 'unstaged: the loop device is detached');
        t.notOk(mountAt(v.staging), 'and nothing mounted');
      }
      await removeAll(p, v);
      clean(t, v);
      await p.kill();
    });
  }
}

t.test('killed between bind mount and read-only remount: NodePublish repeated finishes it', async (t) => {
  let p = await start('publish:after-bind');
  const v = await attachedVolume(p);
  await call(p, 'node', 'NodeStageVolume', stageReq(v));
  await crashes(p, call(p, 'node', 'NodePublishVolume', { ...publishReq(v), readonly: true }));
  t.notOk(mountAt(v.target)!.options.includes('ro'), 'the dead driver left a read-write bind mount');
  p = await start();
  await call(p, 'node', 'NodePublishVolume', { ...publishReq(v), readonly: true });
  t.ok(mountAt(v.target)!.options.includes('ro'), 'repeated: made read-only, as asked');
  await removeAll(p, v);
  clean(t, v);
  await p.kill();
});

t.test('killed after unmounting, before detaching: NodeUnstage repeated detaches', async (t) => {
  let p = await start('unstage:after-umount');
  const v = await attachedVolume(p);
  await call(p, 'node', 'NodeStageVolume', stageReq(v));
  await crashes(p, call(p, 'node', 'NodeUnstageVolume', { volume_id: v.id, staging_target_path: v.staging }));
  t.equal(loopsFor(link(v.id)).length, 1, 'the dead driver left the loop device');
  p = await start();
  await call(p, 'node', 'NodeUnstageVolume', { volume_id: v.id, staging_target_path: v.staging });
  t.equal(loopsFor(link(v.id)).length, 0, 'detached');
  await removeAll(p, v);
  clean(t, v);
  await p.kill();
});

t.test('killed (SIGKILL from outside) between stage and publish', async (t) => {
  for (const then of ['publish', 'unstage']) {
    let p = await start();
    const v = await attachedVolume(p);
    await call(p, 'node', 'NodeStageVolume', stageReq(v));
    writeFileSync(join(v.staging, 'before'), 'x');
    await p.kill('SIGKILL');
    t.ok(mountAt(v.staging), 'the volume stays staged while the driver is dead');
    p = await start();
    if (then === 'publish') {
      await call(p, 'node', 'NodeStageVolume', stageReq(v));
      await call(p, 'node', 'NodePublishVolume', publishReq(v));
      t.equal(readFileSync(join(v.target, 'before'), 'utf8'), 'x', 'restarted: stage again (a no-op) and publish work on what is there');
    }
    await removeAll(p, v);
    clean(t, v);
    await p.kill();
  }
});

t.test('killed inside CreateVolume and DeleteVolume', async (t) => {
  let p = await start('create:before-rename');
  const name = `cv-${process.pid}`;
  await crashes(p, call(p, 'controller', 'CreateVolume', { name, volume_capabilities: [SNW], capacity_range: { required_bytes: 64 << 20 } }));
  t.equal(readdirSync(join(pool, 'volumes')).filter((x) => x.startsWith('cv-')).length, 0, 'no volume yet: it was being built in .tmp');
  t.equal(readdirSync(join(pool, '.tmp')).length, 1, 'where the dead driver left it');
  p = await start('delete:after-rename');
  t.same(readdirSync(join(pool, '.tmp')), [], 'a restarted driver removes its dead predecessor\'s leftovers');
  const id = (await call(p, 'controller', 'CreateVolume', { name, volume_capabilities: [SNW], capacity_range: { required_bytes: 64 << 20 } })).volume.volume_id;
  t.ok(existsSync(join(pool, 'volumes', id, 'image')), 'created when asked again');
  await crashes(p, call(p, 'controller', 'DeleteVolume', { volume_id: id }));
  p = await start();
  await call(p, 'controller', 'DeleteVolume', { volume_id: id });
  t.notOk(existsSync(join(pool, 'volumes', id)), 'deleted');
  t.same(readdirSync(join(pool, '.tmp')), [], 'and the half-deleted copy swept');
  await p.kill();
});
