// Attach and fencing across nodes: two shoal-csi processes with their own node ids on one pool
// (as two lab hosts sharing the pool directory). A single-node-writer volume is never writable
// on two nodes: it moves only after the first node let go, or fenced itself, or went silent
// past the fence grace; a node that comes back to a volume taken from it shuts its filesystem
// down before anything else; given the volume again, it stages it afresh, never the fenced mount.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, fsyncSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { mountCapability } from './client.js';
import { startDriverProc, type DriverProc } from './testing/driver-proc.js';
import { expectCode } from './testing/expect.js';
import { leftovers, sweep, testDir } from './testing/leaks.js';

const dir = testDir('fencing');
const pool = join(dir, 'pool');
const na = `fa-${process.pid}`;
const nb = `fb-${process.pid}`;
const SNW = mountCapability('SINGLE_NODE_WRITER');
const MNRO = mountCapability('MULTI_NODE_READER_ONLY');
const timing = ['--watch-interval', '200', '--fence-grace', '1500'];
const procs = new Map<string, DriverProc>();
const start = async (node: string) => {
  const p = await startDriverProc({ socket: join(dir, `${node}.sock`), pool, nodeId: node, extra: timing });
  procs.set(node, p);
  return p;
};

t.teardown(async () => {
  for (const p of procs.values()) { try { process.kill(p.proc.pid!, 'SIGCONT'); } catch { /* gone */ } await p.kill(); }
  const left = leftovers(dir);
  sweep(dir);
  if (left.loops.length + left.mounts.length > 0) throw new Error(`left behind: ${JSON.stringify(left)}`);
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const call = (p: DriverProc, svc: 'controller' | 'node', m: string, req: object) => p.client.call<any>(svc, m, req, { retry: false });
const paths = (node: string, id: string) => ({ staging: join(dir, node, 'staging', id), target: join(dir, node, 'task', id) });
async function mountOn(p: DriverProc, node: string, id: string, cap = SNW) {
  const ctx = (await call(p, 'controller', 'ControllerPublishVolume', { volume_id: id, node_id: node, volume_capability: cap })).publish_context;
  const { staging, target } = paths(node, id);
  await p.client.mountVolume({ volumeId: id, staging, target, capability: cap, publishContext: ctx }, { retry: false });
  return target;
}
async function unmountOn(p: DriverProc, node: string, id: string) {
  const { staging, target } = paths(node, id);
  await p.client.unmountVolume({ volumeId: id, staging, target }, { retry: false });
}
const until = async (f: () => Promise<boolean> | boolean, what: string, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};
const errCode = (f: () => void) => { try { f(); return 'ok'; } catch (e) { return (e as NodeJS.ErrnoException).code; } };

let A: DriverProc;
let B: DriverProc;
t.before(async () => { A = await start(na); B = await start(nb); });

t.test('a single-node-writer volume moves only after the first node let go', async (t) => {
  const id = (await call(A, 'controller', 'CreateVolume', { name: `move-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: 64 << 20 } })).volume.volume_id;
  const ta = await mountOn(A, na, id);
  writeFileSync(join(ta, 'data'), 'written on a');
  await expectCode(call(A, 'controller', 'ControllerPublishVolume', { volume_id: id, node_id: nb, volume_capability: SNW }), 'FAILED_PRECONDITION', new RegExp(`published to node ${na}`));
  await unmountOn(A, na, id);
  await call(A, 'controller', 'ControllerUnpublishVolume', { volume_id: id, node_id: na });
  const tb = await mountOn(B, nb, id);
  t.equal(readFileSync(join(tb, 'data'), 'utf8'), 'written on a', 'attached on b at once (a released it), with its data');
  await unmountOn(B, nb, id);
  await call(A, 'controller', 'ControllerUnpublishVolume', { volume_id: id, node_id: nb });
  await call(A, 'controller', 'DeleteVolume', { volume_id: id });
});

t.test('revoked while still in use: the node fences itself before the volume moves', async (t) => {
  const id = (await call(A, 'controller', 'CreateVolume', { name: `fence-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: 64 << 20 } })).volume.volume_id;
  const ta = await mountOn(A, na, id);
  const fd = openSync(join(ta, 'log'), 'w');
  writeSync(fd, 'before\n');
  fsyncSync(fd);
  // The CO decides a's node is gone while a's driver is in fact frozen (SIGSTOP): nothing can
  // confirm a stopped writing yet.
  process.kill(A.proc.pid!, 'SIGSTOP');
  await call(B, 'controller', 'ControllerUnpublishVolume', { volume_id: id, node_id: na });
  await expectCode(call(B, 'controller', 'ControllerPublishVolume', { volume_id: id, node_id: nb, volume_capability: SNW }), 'FAILED_PRECONDITION', new RegExp(`node ${na} has not yet confirmed it stopped writing`));
  t.equal(errCode(() => writeSync(fd, 'still a\n')), 'ok', 'meanwhile a can still write (its driver is stopped, its filesystem untouched)');
  process.kill(A.proc.pid!, 'SIGCONT');
  // a's watcher sees the attachment gone and shuts the filesystem down.
  await until(() => errCode(() => { writeSync(fd, 'after\n'); fsyncSync(fd); }) === 'EIO', 'a to fence the volume');
  t.pass('a fenced itself: its writes now fail with EIO');
  closeSync(fd);
  t.equal(errCode(() => writeFileSync(join(ta, 'new'), 'x')), 'EIO', 'new files too');
  // The node records `fenced` right after the shutdown.
  await until(async () => (await A.client.volumeStats(id, ta)).condition?.abnormal === true, 'the fence to be recorded');
  t.match((await A.client.volumeStats(id, ta)).condition, { abnormal: true, message: /fenced/ }, 'NodeGetVolumeStats reports the volume abnormal: fenced');
  const tb = await mountOn(B, nb, id);
  t.match(readFileSync(join(tb, 'log'), 'utf8'), /^before\n/, 'attached on b once a confirmed; b sees what a had synced');
  writeFileSync(join(tb, 'b'), 'mine now');
  // a's agent cleans up when it learns the task is gone: works on a fenced filesystem.
  await expectCode(call(A, 'node', 'NodePublishVolume', { volume_id: id, staging_target_path: paths(na, id).staging, target_path: join(dir, 'x'), volume_capability: SNW }), 'FAILED_PRECONDITION', /fenced/);
  await unmountOn(A, na, id);
  await unmountOn(B, nb, id);
  await call(A, 'controller', 'ControllerUnpublishVolume', { volume_id: id, node_id: '' });
  await call(A, 'controller', 'DeleteVolume', { volume_id: id });
});

t.test('a node that died holding a volume: it moves after the fence grace, and the node fences it when it returns', async (t) => {
  const id = (await call(B, 'controller', 'CreateVolume', { name: `dead-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: 64 << 20 } })).volume.volume_id;
  const ta = await mountOn(A, na, id);
  writeFileSync(join(ta, 'f'), 'from a');
  spawnSync('sync'); // the write is in a's page cache; a crash of a's driver does not lose it, a crash of the host would
  await A.kill('SIGKILL');
  const killedAt = Date.now();
  await call(B, 'controller', 'ControllerUnpublishVolume', { volume_id: id, node_id: na });
  await expectCode(call(B, 'controller', 'ControllerPublishVolume', { volume_id: id, node_id: nb, volume_capability: SNW }), 'FAILED_PRECONDITION', /presumed gone in \d+ s/);
  let tb = '';
  await until(async () => {
    try { tb = await mountOn(B, nb, id); return true; } catch { return false; }
  }, 'the fence grace to pass');
  t.ok(Date.now() - killedAt >= 1500, `attached on b only after the grace (${Date.now() - killedAt} ms after a went silent)`);
  t.equal(readFileSync(join(tb, 'f'), 'utf8'), 'from a', 'with a\'s data');
  // a comes back (same node id, same pool): its first pass fences the stale mount.
  A = await start(na);
  await until(() => errCode(() => writeFileSync(join(ta, 'g'), 'late write')) === 'EIO', 'the returning a to fence its stale mount');
  t.pass('the returning node cannot write to the volume any more');
  await unmountOn(A, na, id);
  t.same(leftovers(join(dir, na)), { loops: [], mounts: [] }, 'and its agent can remove its loop device and mounts');
  await unmountOn(B, nb, id);
  await call(B, 'controller', 'ControllerUnpublishVolume', { volume_id: id, node_id: '' });
  await call(B, 'controller', 'DeleteVolume', { volume_id: id });
});

t.test('a node that died between stage and publish, fenced, then given the volume again: the new stage is a fresh mount, never the fenced one', async (t) => {
  const id = (await call(B, 'controller', 'CreateVolume', { name: `again-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: 32 << 20 } })).volume.volume_id;
  const { staging, target } = paths(na, id);
  const ctx1 = (await call(A, 'controller', 'ControllerPublishVolume', { volume_id: id, node_id: na, volume_capability: SNW })).publish_context;
  await call(A, 'node', 'NodeStageVolume', { volume_id: id, publish_context: ctx1, staging_target_path: staging, volume_capability: SNW });
  writeFileSync(join(staging, 'f'), 'staged on a');
  spawnSync('sync');
  // a's node dies before NodePublishVolume; the CO takes the volume back from it meanwhile.
  await A.kill('SIGKILL');
  await call(B, 'controller', 'ControllerUnpublishVolume', { volume_id: id, node_id: na });
  A = await start(na);
  await until(() => errCode(() => writeFileSync(join(staging, 'g'), 'late')) === 'EIO', 'the returning a to fence its stale staging mount');
  // The CO places the volume's next task on a again: published there under a new attachment.
  let ctx2: Record<string, string> = {};
  await until(async () => {
    try { ctx2 = (await call(B, 'controller', 'ControllerPublishVolume', { volume_id: id, node_id: na, volume_capability: SNW })).publish_context; return true; } catch { return false; }
  }, 'the volume to be published to a again');
  t.not(ctx2['shoal.io/generation'], ctx1['shoal.io/generation'], `a new attachment (generation ${ctx1['shoal.io/generation']} -> ${ctx2['shoal.io/generation']})`);
  await A.client.mountVolume({ volumeId: id, staging, target, capability: SNW, publishContext: ctx2 }, { retry: false });
  t.equal(errCode(() => writeFileSync(join(target, 'h'), 'new task')), 'ok', 'the new task can write: its stage is a fresh mount of the volume');
  t.equal(readFileSync(join(target, 'f'), 'utf8'), 'staged on a', 'with the data a had synced');
  t.equal((await A.client.volumeStats(id, target)).condition?.abnormal ?? false, false, 'NodeGetVolumeStats: healthy');
  await unmountOn(A, na, id);
  t.same(leftovers(join(dir, na)), { loops: [], mounts: [] }, 'unpublished and unstaged: no loop device or mount left');
  await call(B, 'controller', 'ControllerUnpublishVolume', { volume_id: id, node_id: '' });
  await call(B, 'controller', 'DeleteVolume', { volume_id: id });
});

t.test('a stage with an attachment that was revoked meanwhile is refused', async (t) => {
  const id = (await call(A, 'controller', 'CreateVolume', { name: `late-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: 32 << 20 } })).volume.volume_id;
  const ctx = (await call(A, 'controller', 'ControllerPublishVolume', { volume_id: id, node_id: na, volume_capability: SNW })).publish_context;
  await call(A, 'controller', 'ControllerUnpublishVolume', { volume_id: id, node_id: na });
  await expectCode(call(A, 'node', 'NodeStageVolume', { volume_id: id, publish_context: ctx, staging_target_path: paths(na, id).staging, volume_capability: SNW }), 'FAILED_PRECONDITION', /not published to node/);
  t.same(leftovers(join(pool, 'volumes', id)), { loops: [], mounts: [] }, 'nothing attached');
  await call(A, 'controller', 'DeleteVolume', { volume_id: id });
});

t.test('MULTI_NODE_READER_ONLY: read on two nodes at once', async (t) => {
  const id = (await call(A, 'controller', 'CreateVolume', { name: `ro-${process.pid}`, volume_capabilities: [SNW, MNRO], capacity_range: { required_bytes: 32 << 20 } })).volume.volume_id;
  const tw = await mountOn(A, na, id);
  writeFileSync(join(tw, 'page'), 'shared');
  await unmountOn(A, na, id);
  await call(A, 'controller', 'ControllerUnpublishVolume', { volume_id: id, node_id: na });
  const ra = await mountOn(A, na, id, MNRO);
  const rb = await mountOn(B, nb, id, MNRO);
  t.equal(readFileSync(join(ra, 'page'), 'utf8'), 'shared', 'node a reads');
  t.equal(readFileSync(join(rb, 'page'), 'utf8'), 'shared', 'node b reads');
  t.equal(errCode(() => writeFileSync(join(rb, 'x'), 'x')), 'EROFS', 'neither writes');
  await unmountOn(A, na, id);
  await unmountOn(B, nb, id);
  await call(A, 'controller', 'ControllerUnpublishVolume', { volume_id: id, node_id: '' });
  await call(A, 'controller', 'DeleteVolume', { volume_id: id });
});
