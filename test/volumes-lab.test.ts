// Volumes on a real lab (1 manager, 2 workers; every host runs the built-in CSI driver on one
// shared pool under the lab directory, as a network disk would be): bad input refused with nothing
// written (no volume object, no service, no image file in the pool); a volume created through the
// cluster; a service mounting it writes a file; `volume rm` refused while it is in use, naming
// the task; the worker running the task is killed (SIGKILL): the task lands on the other worker
// with the file's contents intact; the dead worker comes back and its loop device and mounts of
// the volume are gone; after the service, `volume rm` deletes the image file. A single-node-writer
// volume raced for by a scale-up and a second service is published for one task at a time (every
// publish and staging mount of it sampled all along), and handed over when its holder goes. A class
// mount gives each slot its own volume, kept with its slot when the task moves (a drain) and
// across an update, reclaimed by `service rm`. shoald (its CSI driver inside) dies by SIGKILL
// between NodeStage and NodePublish (the driver's crash point, set for that one run) and stays down
// until the managers detach the volume from it: back, the old stage is undone (fenced, never
// reused), the task mounts it afresh, none fails, and once the service is gone nothing is left.
import t from 'tap';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { volumePaths } from '../csi/client.js';
import { isAlive } from '../lab/procs.js';
import { LAB_IMAGE } from '../lab/registry.js';
import { Lab, eventually } from './services-helpers.js';
import { DRIVER, csiMounts as csiMountsOf, loopsOf as loopsOfHost, mountsOfVolume as mountsOfVol, poolOf, readOnVolume, sampleMounts, volumesOf } from './volumes-helpers.js';

const lab = new Lab(t, 'vol');
const W = ['--constraint', 'node.role==worker'];
t.setTimeout(30 * 60_000);

t.before(async () => {
  const t0 = Date.now();
  const up = await lab.shoal(['lab', 'up', '--managers', '1', '--workers', '2', '--demo', '0'], 300_000);
  if (up.code !== 0) throw new Error(`lab up failed: ${up.stderr}\n${up.stdout}`);
  console.log(`# volumes-lab: lab up ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

const pool = () => poolOf(lab);
const poolVolumes = () => (existsSync(join(pool(), 'volumes')) ? readdirSync(join(pool(), 'volumes')) : []);

const volumes = () => volumesOf(lab);

async function nodes(): Promise<{ id: string; hostname: string; status: string }[]> {
  return JSON.parse(await lab.ok(['--lab', 'node', 'ls', '--format', 'json']));
}

const loopsOf = (nodeId: string) => loopsOfHost(lab, nodeId);
const csiMounts = (host: string) => csiMountsOf(lab, host);
const mountsOfVolume = (csiId: string) => mountsOfVol(lab, csiId);

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

t.test('a single-node-writer volume serves one task at a time: a scale-up and a second service race for it', async (t) => {
  const t0 = Date.now();
  await lab.ok(['--lab', 'volume', 'create', 'solo', '--size', '32M'], 180_000);
  const csiId = (await volumes()).find((x) => x.name === 'solo')!.csiId as string;
  const sampler = sampleMounts(lab, csiId);
  // Each task that ever gets the volume writes its name into it, so the data says who held it.
  const mount = ['--mount', 'type=volume,source=solo,target=/data', '--stop-grace-period', '1s'];
  const run = [LAB_IMAGE, 'sh', '-c', 'echo "$SHOAL_TASK_NAME" >> /data/holders; sync; exec sleep 1000000'];
  // All at once: a service of one replica scaled to three right behind its creation, and a second
  // service of two replicas on the same volume.
  const created = await Promise.all([
    lab.shoal(['--lab', 'service', 'create', '--name', 'race', '--replicas', '1', '--detach', ...W, ...mount, ...run], 120_000)
      .then(async (r) => (r.code === 0 ? lab.shoal(['--lab', 'service', 'scale', 'race=3', '--detach'], 120_000) : r)),
    lab.shoal(['--lab', 'service', 'create', '--name', 'race2', '--replicas', '2', '--detach', ...W, ...mount, ...run], 120_000),
  ]);
  for (const r of created) t.equal(r.code, 0, `created and scaled (${r.stderr.trim()})`);
  const settled = async (saw: <V>(v: V) => V) => {
    const live = saw([...(await lab.live('race')), ...(await lab.live('race2'))]);
    const running = live.filter((x) => x.state === 'running');
    const waiting = live.filter((x) => x.state !== 'running');
    return live.length === 5 && running.length === 1 && waiting.every((x) => x.state === 'pending' && /volume solo is in use by task/.test(x.message)) && { running: running[0]!, waiting };
  };
  const first = await eventually('one task of the five running, four pending on the volume', settled, 300_000, 1000);
  t.pass(`${first.running.name} on ${first.running.node} holds solo; the other four wait: ${first.waiting[0]!.message}`);
  let v = (await volumes()).find((x) => x.name === 'solo');
  t.match(v.attachments, [{ node: first.running.node, state: 'in-use' }], `solo is attached to ${first.running.node} only`);
  t.equal(v.attachments.length, 1, 'one attachment');

  // Its holder goes: the volume is handed to one waiting task (perhaps on the other node).
  const holderService = first.running.name.split('.')[0]!;
  await lab.ok(['--lab', 'service', 'rm', holderService]);
  const other = holderService === 'race' ? 'race2' : 'race';
  const second = await eventually(`one task of ${other} running, the rest pending on the volume`, async (saw) => {
    const live = saw(await lab.live(other));
    const running = live.filter((x) => x.state === 'running');
    return running.length === 1 && live.filter((x) => x.state !== 'running').every((x) => x.state === 'pending') && running[0]!;
  }, 300_000, 1000);
  const holders = readFileSync(join(volumePaths(lab.node(second.node!).stateDir, DRIVER, csiId, second.id).target, 'holders'), 'utf8').trim().split('\n');
  t.same(holders, [first.running.name, second.name], `the volume's data names its two holders in turn: ${holders.join(', ')}`);

  await lab.ok(['--lab', 'service', 'rm', other]);
  await eventually('solo detached once both services are gone', async () => (await volumes()).find((x) => x.name === 'solo')?.attachments.length === 0, 120_000, 500);
  const { worst, samples } = sampler.stop();
  t.ok(samples > 0, `mounts sampled ${samples} times`);
  t.ok(worst.targets.length <= 1, `never published for two tasks at once (most at one moment: ${worst.targets.join(', ') || 'none'})`);
  t.ok(worst.staged.length <= 1, `never staged on two hosts at once (most at one moment: ${worst.staged.join(', ') || 'none'})`);
  await lab.ok(['--lab', 'volume', 'rm', 'solo'], 60_000);
  await eventually('solo and its image deleted', async () => !(await volumes()).some((x) => x.name === 'solo') && !poolVolumes().includes(csiId), 120_000, 500);
  console.log(`# volumes-lab: single-writer race ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

t.test('a class mount gives each slot its own volume, kept with the slot when it moves and across an update; service rm reclaims it', async (t) => {
  const t0 = Date.now();
  await lab.ok(['--lab', 'volume-class', 'create', 'fast', '--driver', DRIVER, '--reclaim', 'delete']);
  // Each slot writes who it is once, on its volume's first use; later tasks of the slot find it.
  const s = await lab.shoal(['--lab', 'service', 'create', '--name', 'db', '--replicas', '3', ...W, '--stop-grace-period', '1s', '--update-monitor', '1s',
    '--mount', 'type=volume,class=fast,size=32M,target=/data', LAB_IMAGE, 'sh', '-c', '[ -f /data/slot ] || { echo "slot $SHOAL_TASK_SLOT first run by $SHOAL_TASK_ID" > /data/slot; sync; }; exec sleep 1000000'], 300_000);
  t.equal(s.code, 0, `service create converges (${s.stderr.trim().split('\n').slice(-3).join(' | ')})`);
  const vols = async () => new Map((await volumes()).filter((x) => x.name.startsWith('db.')).map((x) => [x.name, x]));
    /** Each slot's running task reads its own volume; resolves to what each slot's file says. */
  const check = async (when: string) => {
    const live = await eventually(`db converged (${when})`, async (saw) => {
      const l = saw(await lab.live('db'));
      return l.length === 3 && l.every((x) => x.state === 'running') && l;
    }, 300_000, 1000);
    const vs = await vols();
    t.same([...vs.keys()].sort(), ['db.1-data', 'db.2-data', 'db.3-data'], `${when}: one volume per slot`);
    const out = new Map<number, string>();
    for (const task of live) {
      const v = vs.get(`db.${task.slot}-data`)!;
      t.match(v, { class: 'fast', attachments: [{ node: task.node, state: 'in-use', tasks: [`db.${task.slot}`] }] }, `${when}: db.${task.slot}-data is attached where db.${task.slot} runs (${task.node})`);
      out.set(task.slot, readOnVolume(lab, task, v.csiId, 'slot'));
    }
    return { live, files: out };
  };
  const before = await check('created');
  for (const [slot, f] of before.files) t.match(f, new RegExp(`^slot ${slot} first run by `), `slot ${slot}'s volume was first written by slot ${slot}`);
  const ids = [...(await vols()).values()].map((x) => x.csiId as string);
  t.equal(new Set(ids).size, 3, 'three distinct images in the pool');

  // Slot 2's node is drained: its task moves, and its volume with it.
  const from = before.live.find((x) => x.slot === 2)!.node!;
  const to = from === 'worker-1' ? 'worker-2' : 'worker-1';
  await lab.ok(['--lab', 'node', 'update', '--availability', 'drain', from]);
  const drained = await check(`${from} drained`);
  t.equal(drained.live.find((x) => x.slot === 2)!.node, to, `db.2 moved to ${to}`);
  t.same(drained.files, before.files, 'each slot reads the file its own first task wrote');
  await lab.ok(['--lab', 'node', 'update', '--availability', 'active', from]);

  // An update replaces every task; each slot's new task gets its slot's volume.
  const u = await lab.shoal(['--lab', 'service', 'update', '--env-add', 'ROLLED=1', 'db'], 300_000);
  t.equal(u.code, 0, `service update converges (${u.stderr.trim().split('\n').slice(-2).join(' | ')})`);
  const updated = await check('updated');
  t.ok(updated.live.every((x) => !drained.live.some((y) => y.id === x.id)), 'every task was replaced');
  t.same(updated.files, before.files, 'and each slot still reads its own file');

  await lab.ok(['--lab', 'service', 'rm', 'db']);
  await eventually('the class volumes reclaimed (reclaim delete): objects and images gone', async () => (await vols()).size === 0 && !ids.some((id) => poolVolumes().includes(id)), 180_000, 500);
  t.pass('db.1-data, db.2-data and db.3-data deleted with their images');
  t.equal((await lab.shoal(['--lab', 'volume-class', 'rm', 'fast'])).code, 0, 'the class is removed once unused');
  t.same([...csiMounts('worker-1'), ...csiMounts('worker-2')], [], 'no volume mount is left on the workers');
  console.log(`# volumes-lab: class mounts ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

t.test('shoald SIGKILLed between NodeStage and NodePublish, its volume taken away while it is down: back, the node stages it afresh and the task runs; nothing leaks', async (t) => {
  const t0 = Date.now();
  const host = 'worker-2';
  const hostId = (await nodes()).find((n) => n.hostname === host)!.id;
  // The built-in driver runs inside shoald: its crash point right after the staging mount kills
  // shoald there, before the agent hears back and asks for NodePublishVolume.
  t.equal((await lab.shoal(['lab', 'stop', host])).code, 0, `${host} stopped`);
  const armed = await lab.shoal(['lab', 'start', host], 180_000, { SHOAL_CSI_CRASH_AT: 'stage:after-mount' });
  t.equal(armed.code, 0, `${host} started with the crash point armed (${armed.stderr.trim()})`);
  await lab.ok(['--lab', 'volume', 'create', 'crashy', '--size', '32M'], 180_000);
  const csiId = (await volumes()).find((x) => x.name === 'crashy')!.csiId as string;
  const token = `kept-${process.pid}`;
  // A write that fails (a filesystem shut down under the task) fails the task.
  const c = await lab.shoal(['--lab', 'service', 'create', '--name', 'cr', '--detach', '--constraint', `node.hostname==${host}`, '--stop-grace-period', '1s',
    '--mount', 'type=volume,source=crashy,target=/data', LAB_IMAGE, 'sh', '-c', `echo ${token} >> /data/f && sync && exec sleep 1000000`], 120_000);
  t.equal(c.code, 0, `service create (${c.stderr.trim()})`);
  await eventually(`${host}'s shoald dead at the crash point`, async () => !isAlive(lab.node(host).proc), 180_000, 500);
  t.same(mountsOfVolume(csiId), { targets: [], staged: [host] }, `it died between the two calls: crashy staged on ${host}, published nowhere`);
  const first = (await lab.live('cr'))[0]!;

  // While it is down the managers give up on it: its task is orphaned and the volume detached
  // from it (the driver fences the node: it must never write there again).
  await eventually(`${host} down and crashy detached from it`, async (saw) => {
    const down = (await nodes()).find((n) => n.hostname === host)!.status === 'down';
    const v = saw((await volumes()).find((x) => x.name === 'crashy'));
    return down && !v.attachments.some((a: { node: string }) => a.node === host);
  }, 300_000, 1000);
  t.pass(`${host} is down and crashy no longer attached to it`);

  t.equal((await lab.shoal(['lab', 'start', host], 180_000)).code, 0, `${host} restarted (crash point not set)`);
  // Its task (the same one, if the managers kept it while the node was down; else its
  // replacement) runs there, on a fresh stage.
  const task = await eventually(`cr running on ${host}`, async (saw) => saw(await lab.live('cr')).find((x) => x.state === 'running' && x.node === host), 300_000, 1000);
  t.pass(`${task.name} runs on ${host}: ${task.id === first.id ? 'the task that was cut short, finished' : `a new task (${first.id} was replaced)`}`);
  const failed = (await lab.tasks('cr')).filter((x) => x.state === 'failed' || x.state === 'rejected');
  t.same(failed.map((x) => `${x.name} ${x.state}: ${x.error || x.message}`), [], 'no task failed on the way (the old stage was undone, not reused)');
  t.same(mountsOfVolume(csiId), { targets: [`${host}:${task.id}`], staged: [host] }, `staged and published once, for ${task.name} (${task.id})`);
  t.equal(loopsOf(hostId).length, 1, 'one loop device');
  t.equal(readOnVolume(lab, task, csiId, 'f'), token, 'the task wrote to the volume');

  await lab.ok(['--lab', 'service', 'rm', 'cr']);
  await eventually('crashy detached once the service is gone', async () => (await volumes()).find((x) => x.name === 'crashy')?.attachments.length === 0, 120_000, 500);
  t.same({ loops: loopsOf(hostId), mounts: csiMounts(host) }, { loops: [], mounts: [] }, `nothing of it is left on ${host}: no loop device, no mount`);
  t.equal((await lab.shoal(['--lab', 'volume', 'rm', 'crashy'], 60_000)).code, 0, 'volume rm');
  await eventually('crashy and its image deleted', async () => !(await volumes()).some((x) => x.name === 'crashy') && !poolVolumes().includes(csiId), 120_000, 500);
  console.log(`# volumes-lab: crash between stage and publish ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});
