// Volumes on a real lab (1 manager, 2 workers; every host runs the built-in CSI driver on one
// shared pool under the lab directory, as a network disk would be): bad input refused with nothing
// written (no volume object, no service, no image file in the pool); a volume created through the
// cluster; a service mounting it writes a file; `volume rm` refused while it is in use, naming
// the task; the worker running the task is killed (SIGKILL): the task lands on the other worker
// with the file's contents intact; the dead worker comes back and its loop device and mounts of
// the volume are gone; after the service, `volume rm` deletes the image file.
import t from 'tap';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { volumePaths } from '../csi/client.js';
import { LAB_IMAGE } from '../lab/registry.js';
import { Lab, eventually } from './services-helpers.js';

const lab = new Lab(t, 'vol');
const W = ['--constraint', 'node.role==worker'];
const DRIVER = 'block.csi.shoal.io';
t.setTimeout(30 * 60_000);

t.before(async () => {
  const t0 = Date.now();
  const up = await lab.shoal(['lab', 'up', '--managers', '1', '--workers', '2', '--demo', '0'], 300_000);
  if (up.code !== 0) throw new Error(`lab up failed: ${up.stderr}\n${up.stdout}`);
  console.log(`# volumes-lab: lab up ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

const pool = () => join(lab.dir, 'csi-pool');
const poolVolumes = () => (existsSync(join(pool(), 'volumes')) ? readdirSync(join(pool(), 'volumes')) : []);

async function volumes(): Promise<any[]> {
  return JSON.parse(await lab.ok(['--lab', 'volume', 'ls', '--format', 'json']));
}

async function nodes(): Promise<{ id: string; hostname: string; status: string }[]> {
  return JSON.parse(await lab.ok(['--lab', 'node', 'ls', '--format', 'json']));
}

/** Loop devices whose backing file is `node`'s link to a pool image. */
function loopsOf(nodeId: string): string[] {
  const r = spawnSync('losetup', ['--list', '--noheadings', '--raw', '--output', 'NAME,BACK-FILE'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.includes(pool()) && l.includes(`/nodes/${nodeId}.img`)).map((l) => l.split(/\s+/)[0]!);
}

/** Mounts under a host's CSI directory (staging and publish paths; not the directory itself). */
function csiMounts(host: string): string[] {
  const dir = join(lab.node(host).stateDir, 'csi') + '/';
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(dir));
}

t.test('bad input is refused with nothing written', async (t) => {
  const refused = async (args: string[], pattern: RegExp, what: string) => {
    const r = await lab.shoal(['--lab', ...args], 60_000);
    t.not(r.code, 0, `${what}: refused (exit ${r.code})`);
    t.match(r.stderr, pattern, `${what}: the message says why: ${r.stderr.trim().split('\n')[0]}`);
  };
  await refused(['volume', 'create', 'Bad_Name!'], /volume name .* is not valid/, 'a bad volume name');
  await refused(['volume', 'create', 'tiny', '--size', '10'], /at least 1 MiB/, 'a size below 1 MiB');
  await refused(['volume', 'create', 'v1', '--access', 'everyone'], /access "everyone" is not known/, 'an unknown access mode');
  await refused(['volume', 'create', 'v1', '--class', 'nope'], /no volume class "nope"/, 'a class that does not exist');
  await refused(['volume', 'create', 'v1', '--size', 'lots'], /--size must be a size/, 'a size that is not one');
  await refused(['service', 'create', '--name', 'bad', ...W, '--mount', 'type=volume,source=nope,target=/data', LAB_IMAGE, 'true'], /there is no volume "nope"/, 'a mount of a volume that does not exist');
  await refused(['service', 'create', '--name', 'bad', ...W, '--mount', 'type=bind,source=/etc,target=/data', LAB_IMAGE, 'true'], /type "bind" is not supported/, 'a bind mount');
  await refused(['service', 'create', '--name', 'bad', ...W, '--mount', 'type=volume,source=x,target=data', LAB_IMAGE, 'true'], /must be an absolute, normalized path/, 'a relative target');
  await refused(['service', 'create', '--name', 'bad', ...W, '--mount', 'type=volume,source=x,target=/d', '--mount', 'type=volume,source=y,target=/d', LAB_IMAGE, 'true'], /mounted twice/, 'two mounts at one target');
  await refused(['volume', 'rm', 'nothing-here'], /no volume "nothing-here"/, 'rm of a volume that does not exist');
  t.same(await volumes(), [], 'no volume was created');
  t.same(JSON.parse(await lab.ok(['--lab', 'service', 'ls', '--format', 'json'])), [], 'no service was created');
  t.same(poolVolumes(), [], 'no image file in the pool');
});

t.test('a volume follows its task when its node dies, with its data; in use, it cannot be removed', async (t) => {
  const t0 = Date.now();
  const c = await lab.shoal(['--lab', 'volume', 'create', 'data', '--size', '64M'], 180_000);
  t.equal(c.code, 0, `volume create exits 0 once provisioned (${c.stderr.trim()})`);
  let v = (await volumes()).find((x) => x.name === 'data');
  t.equal(v?.state, 'created', 'the volume is created');
  t.ok(v?.csiId && poolVolumes().includes(v.csiId), `its image is in the pool (${v?.csiId})`);
  t.equal(v?.capacityBytes, 64 * 1024 * 1024, 'with the capacity asked for');

  const token = `written-by-${process.pid}-${Date.now()}`;
  const s = await lab.shoal(['--lab', 'service', 'create', '--name', 'vs', '--replicas', '1', ...W, '--stop-grace-period', '1s', '--mount', 'type=volume,source=data,target=/data', LAB_IMAGE, 'sh', '-c', `[ -f /data/f ] || { echo ${token} > /data/f; sync; }; exec sleep 1000000`], 300_000);
  t.equal(s.code, 0, `service create converges (${s.stderr.trim().split('\n').slice(-3).join(' | ')})`);
  const first = (await lab.live('vs'))[0]!;
  t.equal(first.state, 'running', `the task runs on ${first.node}`);
  const dead = first.node!;
  const other = dead === 'worker-1' ? 'worker-2' : 'worker-1';
  const all = await nodes();
  const deadId = all.find((n) => n.hostname === dead)!.id;
  const csiId = v.csiId as string;
  const onDead = volumePaths(lab.node(dead).stateDir, DRIVER, csiId, first.id);
  t.equal(readFileSync(join(onDead.target, 'f'), 'utf8').trim(), token, `the file is on the volume as published on ${dead}`);
  v = (await volumes()).find((x) => x.name === 'data');
  t.match(v.attachments, [{ node: dead, state: 'in-use', tasks: ['vs.1'] }], `volume ls: attached to ${dead}, in use by vs.1`);
  t.ok(loopsOf(deadId).length === 1, `${dead} has one loop device of the volume`);
  console.log(`# volumes-lab: volume created and its service running ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const rm = await lab.shoal(['--lab', 'volume', 'rm', 'data'], 60_000);
  t.not(rm.code, 0, 'volume rm while in use is refused');
  t.match(rm.stderr, /in use by task vs\.1/, `naming the task: ${rm.stderr.trim()}`);
  t.ok((await volumes()).some((x) => x.name === 'data' && x.state === 'created'), 'the volume is still there, untouched');

  const t1 = Date.now();
  t.equal((await lab.shoal(['lab', 'stop', dead, '--signal', 'KILL'])).code, 0, `SIGKILL ${dead}`);
  const moved = await eventually(`vs.1 running on ${other}`, async () => (await lab.live('vs')).find((x) => x.node === other && x.state === 'running'), 300_000, 500);
  console.log(`# volumes-lab: the task ran on ${other} ${((Date.now() - t1) / 1000).toFixed(1)} s after ${dead}'s SIGKILL (polled; fence grace included)`);
  const onOther = volumePaths(lab.node(other).stateDir, DRIVER, csiId, moved.id);
  t.equal(readFileSync(join(onOther.target, 'f'), 'utf8').trim(), token, `the file written on ${dead} is read on ${other}, intact`);
  v = (await volumes()).find((x) => x.name === 'data');
  t.match(v.attachments, [{ node: other, state: 'in-use', tasks: ['vs.1'] }], `the volume is attached to ${other} only`);
  t.equal(v.attachments.length, 1, 'one attachment: never two writers');

  t.equal((await lab.shoal(['lab', 'start', dead])).code, 0, `${dead} back`);
  await eventually(`${dead}'s loop device and mounts of the volume gone`, async () => loopsOf(deadId).length === 0 && csiMounts(dead).length === 0, 180_000, 500);
  t.pass(`${dead} released the volume it lost: no loop device, no mount under its csi/ directory`);
  t.equal(readFileSync(join(onOther.target, 'f'), 'utf8').trim(), token, `and ${other} still reads the file`);

  await lab.ok(['--lab', 'service', 'rm', 'vs']);
  await eventually('the volume detached once the service is gone', async () => (await volumes()).find((x) => x.name === 'data')?.attachments.length === 0, 120_000, 500);
  t.equal((await lab.shoal(['--lab', 'volume', 'rm', 'data'], 60_000)).code, 0, 'volume rm once nothing uses it');
  await eventually('the volume and its image file deleted', async () => (await volumes()).length === 0 && !poolVolumes().includes(csiId), 120_000, 500);
  t.pass('the volume object and its image file are gone');
  t.same([...loopsOf(deadId), ...csiMounts('worker-1'), ...csiMounts('worker-2')], [], 'no loop device or volume mount is left on the workers');
});
