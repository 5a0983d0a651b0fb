// Services through faults on a real lab (3 managers, 2 workers): a worker killed with SIGKILL
// (after the node-down grace its tasks run elsewhere; when it returns, its old containers are
// stopped), shoald restarted on a worker with tasks (back within the grace: the same containers;
// either way exactly one container per slot), and the leader killed right after a
// service create and right after a scale (the service converges to exactly N tasks, N containers)
// and in the middle of a rolling update (it finishes with exactly N tasks on the new spec); and
// the leader killed while a volume moves between workers (a drain): the new leader's volume
// controller finishes the move, the volume is never published or staged twice, its data intact.
import t, { type Test } from 'tap';
import { LAB_IMAGE, LAB_IMAGE_2 } from '../lab/registry.js';
import { Lab, converged, describeTasks, eventually } from './services-helpers.js';
import { csiMounts, loopsOf, poolOf, readOnVolume, sampleMounts, volumesOf } from './volumes-helpers.js';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const lab = new Lab(t, 'svcf');
const W = ['--constraint', 'node.role==worker'];
// A whole lab and many real containers: more than tap's default per-file limit on a loaded
// machine, but each wait inside has its own bound, so a stuck file ends well within CI's 20 minutes.
t.setTimeout(15 * 60_000);
const ALL = ['manager-1', 'manager-2', 'manager-3', 'worker-1', 'worker-2'];

t.before(async () => {
  const up = await lab.shoal(['lab', 'up', '--managers', '3', '--workers', '2', '--demo', '0'], 300_000);
  if (up.code !== 0) throw new Error(`lab up failed: ${up.stderr}\n${up.stdout}`);
});

async function serviceId(name: string): Promise<string> {
  return (JSON.parse(await lab.ok(['--lab', 'service', 'inspect', name, '--format', 'json'])) as { id: string }[])[0]!.id;
}

/**
 * Running containers of a service across every host, through each host's runtime (a host whose
 * runtime does not answer makes this throw: callers poll, so a busy host is asked again).
 */
async function containersEverywhere(sid: string): Promise<number> {
  return (await containersOf(sid)).length;
}

async function containersOf(sid: string): Promise<{ id: string; taskId: string; slot: number; node: string }[]> {
  return (await Promise.all(ALL.map((h) => lab.criContainers(h, sid)))).flat();
}

/** For eventually: true once `why` (what still differs) is undefined; else shows it. */
function settled(saw: (v: string) => string, why: string | undefined): boolean {
  if (why === undefined) return true;
  saw(why);
  return false;
}

/**
 * What "converged" means for the containers: exactly n running in the cluster, one per slot, each
 * the container of its slot's live task as the managers record it. Undefined if so, else what
 * differs (for the failure message).
 */
async function containersConverged(service: string, sid: string, n: number): Promise<string | undefined> {
  const [cs, tasks] = await Promise.all([containersOf(sid), lab.tasks(service)]);
  const live = tasks.filter((x) => x.desiredState === 'running');
  const say = () => `containers: ${cs.map((c) => `slot ${c.slot} ${c.id.slice(0, 12)}@${c.node}`).join(', ') || 'none'}; tasks: ${describeTasks(live)}`;
  if (!converged(tasks, n)) return `tasks not converged to ${n}; ${say()}`;
  if (cs.length !== n) return `${cs.length} containers, not ${n}; ${say()}`;
  if (new Set(cs.map((c) => c.slot)).size !== n) return `two containers for one slot; ${say()}`;
  for (const c of cs) {
    const tk = live.find((x) => x.slot === c.slot);
    if (!tk || tk.id !== c.taskId || tk.containerId !== c.id || tk.node !== c.node) return `container ${c.id.slice(0, 12)} on ${c.node} is not slot ${c.slot}'s live task's; ${say()}`;
  }
  return undefined;
}

/**
 * The leader, once it sees all three managers as voters that answer it. A manager restarted just
 * before (lab start returns when shoald runs, not when its raft has rejoined) may not answer yet:
 * killing the leader then takes two of three managers down, and no Raft system has a quorum
 * left. Each leader kill below waits for this first, so what it tests is a failover the cluster
 * must survive.
 */
async function leaderWithQuorum(t: Test): Promise<string> {
  const { leader, waitedMs } = await lab.leaderWithReachableVoters(3);
  t.comment(`services-faults: ${leader} leads, all 3 managers reachable voters (waited ${(waitedMs / 1000).toFixed(1)} s)`);
  return leader;
}

/** Where a subtest's time goes: each call comments the seconds since the previous one. */
function phases(t: Test): (what: string) => void {
  let last = Date.now();
  return (what) => {
    t.comment(`services-faults: ${what}: ${((Date.now() - last) / 1000).toFixed(1)} s`);
    last = Date.now();
  };
}

/** Managers this file has stopped and not yet started again. */
const down = new Set<string>();

/**
 * SIGKILLs a lab node; the subtest's teardown starts it again if the subtest ends (passes or
 * fails) before it does, so a failed subtest never leaves the next one without a quorum.
 */
async function kill(t: Test, node: string, why: string): Promise<void> {
  t.teardown(async () => {
    if (down.has(node)) await start(node);
  });
  t.equal((await lab.shoal(['lab', 'stop', node, '--signal', 'KILL'])).code, 0, `SIGKILL ${why}`);
  down.add(node);
}

async function start(node: string): Promise<number> {
  const code = (await lab.shoal(['lab', 'start', node])).code;
  if (code === 0) down.delete(node);
  return code;
}

t.test('a worker killed with SIGKILL: its tasks run elsewhere; back, its old containers stop', async (t) => {
  await lab.ok(['--lab', 'service', 'create', '--name', 'fo', '--replicas', '4', ...W, LAB_IMAGE, 'sleep', '1000000']);
  const sid = await serviceId('fo');
  const on1 = (await lab.live('fo')).filter((x) => x.node === 'worker-1');
  t.ok(on1.length > 0, `worker-1 runs ${on1.length} task(s)`);
  const oldContainers = (await lab.criContainers('worker-1', sid)).map((c) => c.id);
  t.equal((await lab.shoal(['lab', 'stop', 'worker-1', '--signal', 'KILL'])).code, 0, 'SIGKILL worker-1');
  const t0 = Date.now();
  await eventually('all 4 running on worker-2', async (saw) => {
    const live = saw(await lab.live('fo'));
    return converged(live, 4) && live.every((x) => x.node === 'worker-2');
  });
  t.comment(`services-faults: 4 tasks running on worker-2 ${((Date.now() - t0) / 1000).toFixed(1)} s after worker-1's SIGKILL (polled, the node-down grace included; not a timing assertion)`);
  const old = (await lab.tasks('fo')).filter((x) => on1.some((o) => o.id === x.id));
  t.ok(old.every((x) => x.state === 'orphaned' && x.desiredState === 'shutdown'), "the dead node's tasks are orphaned and no longer wanted");
  t.same(lab.runcRunning('worker-1').filter((c) => oldContainers.includes(c)).sort(), oldContainers.sort(), 'its containers still run on the dead node (as with Swarm: nothing there stops them)');

  t.equal((await lab.shoal(['lab', 'start', 'worker-1'])).code, 0, 'worker-1 back');
  await eventually("worker-1's old containers stopped", async () => lab.runcRunning('worker-1').filter((c) => oldContainers.includes(c)).length === 0 && (await lab.criContainers('worker-1', sid)).length === 0);
  t.pass("worker-1's agent stopped the containers of the tasks it lost");
  await eventually('exactly 4 containers, one per slot, each its live task\'s', async (saw) => settled(saw, await containersConverged('fo', sid, 4)));
  t.pass('exactly 4 containers of the service run in the cluster, one per slot, and 4 tasks');
  await lab.ok(['--lab', 'service', 'rm', 'fo']);
});

t.test('shoald restarted on a worker with tasks: the same containers, no duplicates', async (t) => {
  for (const sig of ['TERM', 'KILL']) {
    // A service per round, spread over both workers: a first round whose restart outlasted the
    // grace leaves nothing of its own service on worker-2.
    const rs = `rs${sig.toLowerCase()}`;
    await lab.ok(['--lab', 'service', 'create', '--name', rs, '--replicas', '4', ...W, LAB_IMAGE, 'sleep', '1000000']);
    const sid = await serviceId(rs);
    await eventually(`${rs} converged before the restart`, async (saw) => settled(saw, await containersConverged(rs, sid, 4)));
    const before = (await lab.criContainers('worker-2', sid)).map((c) => c.id).sort();
    const tasksBefore = (await lab.live(rs)).filter((x) => x.node === 'worker-2');
    t.ok(before.length > 0, `worker-2 runs ${before.length} container(s) of ${rs}`);
    t.equal((await lab.shoal(['lab', 'stop', 'worker-2', '--signal', sig])).code, 0, `stop worker-2's shoald with SIG${sig}`);
    t.same(lab.runcRunning('worker-2').filter((c) => before.includes(c)).sort(), before, 'its containers keep running while shoald is away');
    t.equal((await lab.shoal(['lab', 'start', 'worker-2'])).code, 0, 'start it again');
    await eventually('worker-2 ready again', async (saw) => saw(JSON.parse(await lab.ok(['--lab', 'node', 'ls', '--format', 'json']))).some((n: any) => n.hostname === 'worker-2' && n.status === 'ready'));
    // Whether or not the restart outlasted the managers' grace, the cluster converges to exactly
    // 4 containers, one per slot, each its live task's: never a duplicate, never an orphan.
    await eventually(`after SIG${sig}: exactly 4 containers, one per slot, each its live task's`, async (saw) => settled(saw, await containersConverged(rs, sid, 4)));
    t.pass(`after SIG${sig}: exactly 4 containers in the cluster, one per slot, each its live task's`);
    const all = await lab.tasks(rs);
    const kept = tasksBefore.filter((b) => all.some((x) => x.id === b.id && x.desiredState === 'running'));
    if (kept.length === tasksBefore.length) {
      // Back within the grace: nothing moved, and the agent adopted what ran.
      t.same((await lab.criContainers('worker-2', sid)).map((c) => c.id).sort(), before, `after SIG${sig}: back within the grace, worker-2's tasks kept, the same containers run, none added`);
    } else {
      // The restart outlasted the grace (a loaded machine): the tasks were replaced, and the
      // returning agent stopped the containers of those it lost.
      const moved = tasksBefore.filter((b) => !kept.includes(b));
      t.comment(`after SIG${sig}: worker-2's restart outlasted the node-down grace; ${moved.length} task(s) replaced: ${describeTasks(all.filter((x) => moved.some((m) => m.id === x.id)))}`);
      t.same(lab.runcRunning('worker-2').filter((c) => before.includes(c) && !kept.some((k) => k.containerId === c)), [], `after SIG${sig}: the containers of its replaced tasks were stopped on worker-2`);
    }
    await lab.ok(['--lab', 'service', 'rm', rs]);
  }
});

t.test('the leader killed during a create and during a scale: exactly N tasks and containers', async (t) => {
  const phase = phases(t);
  let old = await leaderWithQuorum(t);
  const c = await lab.shoal(['--lab', 'service', 'create', '--name', 'lk', '--replicas', '6', '--detach', LAB_IMAGE, 'sleep', '1000000']);
  t.equal(c.code, 0, 'create acknowledged (committed)');
  await kill(t, old, `the leader ${old} right away`);
  const sid = await serviceId('lk');
  phase('quorum wait, create and kill');
  await eventually('6 running tasks', async (saw) => converged(saw(await lab.tasks('lk')), 6));
  // The dead manager's own containers (if it ran any) stop once it is back: count after that.
  phase('6 running tasks');
  t.equal(await start(old), 0, `${old} back`);
  phase(`${old} started`);
  await eventually('6 containers, one per slot, each its live task\'s', async (saw) => settled(saw, await containersConverged('lk', sid, 6)));
  t.pass('converged to exactly 6 tasks and 6 containers after the leader died mid-orchestration');
  phase('6 containers');

  old = await leaderWithQuorum(t);
  const s = await lab.shoal(['--lab', 'service', 'scale', 'lk=11', '--detach']);
  t.equal(s.code, 0, 'scale acknowledged');
  await kill(t, old, `the leader ${old} right away`);
  phase('quorum wait, scale and kill');
  await eventually('11 running tasks', async (saw) => converged(saw(await lab.tasks('lk')), 11));
  phase('11 running tasks');
  t.equal(await start(old), 0, `${old} back`);
  phase(`${old} started`);
  await eventually('11 containers, one per slot, each its live task\'s', async (saw) => settled(saw, await containersConverged('lk', sid, 11)));
  phase('11 containers');
  const live = await lab.live('lk');
  t.same(live.map((x) => x.slot).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 'slots 1..11, each once');
  await lab.ok(['--lab', 'service', 'rm', 'lk']);
  await eventually('every container of lk stopped', async (saw) => saw(await containersEverywhere(sid)) === 0);
  phase('service rm, containers stopped');
});

t.test('the leader killed in the middle of a rolling update: it finishes, exactly N tasks on the new spec', async (t) => {
  await lab.ok(['--lab', 'service', 'create', '--name', 'lu', '--replicas', '6', '--update-parallelism', '1', '--update-monitor', '2s', LAB_IMAGE, 'sleep', '1000000']);
  const sid = await serviceId('lu');
  const u = await lab.shoal(['--lab', 'service', 'update', '--image', LAB_IMAGE_2, '--detach', 'lu']);
  t.equal(u.code, 0, 'update started');
  await eventually('a first task updated', async (saw) => saw(await lab.tasks('lu')).some((x) => (x as any).upToDate && x.state === 'running'));
  const old = await leaderWithQuorum(t);
  await kill(t, old, `the leader ${old} mid-update`);
  const done = await eventually('the update completed', async (saw) => {
    const s = JSON.parse(await lab.ok(['--lab', 'service', 'inspect', 'lu', '--format', 'json']))[0];
    saw({ updateStatus: s.updateStatus, tasks: describeTasks(await lab.live('lu')) });
    return s.updateStatus?.state === 'completed' && s;
  }, 240_000);
  t.match(done.updateStatus.message, /update completed/, 'the new leader finished the rollout');
  t.equal(await start(old), 0, `${old} back`);
  await eventually('6 tasks on the new image and 6 containers', async (saw) => {
    const live = (await lab.tasks('lu')).filter((x) => x.desiredState === 'running') as any[];
    const containers = await containersEverywhere(sid);
    saw({ containers, tasks: describeTasks(live) });
    return converged(live, 6) && live.every((x) => x.image === LAB_IMAGE_2 && x.upToDate) && containers === 6;
  }, 120_000);
  t.pass('exactly 6 tasks, all on the new spec, 6 containers');
  await lab.ok(['--lab', 'service', 'rm', 'lu']);
});

t.test('the leader killed while a volume moves between workers: the new leader finishes the move, one attachment, data intact', async (t) => {
  const t0 = Date.now();
  const c = await lab.shoal(['--lab', 'volume', 'create', 'hav', '--size', '32M'], 180_000);
  t.equal(c.code, 0, `volume create (${c.stderr.trim()})`);
  const csiId = (await volumesOf(lab)).find((x) => x.name === 'hav')!.csiId as string;
  const token = `moved-${process.pid}-${Date.now()}`;
  const s = await lab.shoal(['--lab', 'service', 'create', '--name', 'hv', '--replicas', '1', ...W, '--stop-grace-period', '1s', '--mount', 'type=volume,source=hav,target=/data',
    LAB_IMAGE, 'sh', '-c', `[ -f /data/f ] || { echo ${token} > /data/f; sync; }; exec sleep 1000000`], 300_000);
  t.equal(s.code, 0, `service create converges (${s.stderr.trim().split('\n').slice(-2).join(' | ')})`);
  const first = (await lab.live('hv'))[0]!;
  const from = first.node!;
  const to = from === 'worker-1' ? 'worker-2' : 'worker-1';
  const fromId = (JSON.parse(await lab.ok(['--lab', 'node', 'ls', '--format', 'json'])) as { id: string; hostname: string }[]).find((n) => n.hostname === from)!.id;
  const sampler = sampleMounts(lab, csiId);
  const old = await leaderWithQuorum(t);
  t.equal((await lab.shoal(['--lab', 'node', 'update', '--availability', 'drain', from])).code, 0, `drain ${from}: hv.1 and its volume must move to ${to}`);
  await kill(t, old, `the leader ${old} right away`);
  const moved = await eventually(`hv.1 running on ${to}`, async (saw) => saw(await lab.live('hv')).find((x) => x.node === to && x.state === 'running'), 300_000);
  t.equal(readOnVolume(lab, moved, csiId, 'f'), token, `the file written on ${from} is read on ${to}`);
  const v = (await volumesOf(lab)).find((x) => x.name === 'hav');
  t.match(v.attachments, [{ node: to, state: 'in-use', tasks: ['hv.1'] }], `hav is attached to ${to}`);
  t.equal(v.attachments.length, 1, 'and nowhere else');
  await eventually(`${from} let go of it: no loop device, no mount`, async () => loopsOf(lab, fromId).length === 0 && csiMounts(lab, from).length === 0, 120_000, 500);
  const { worst, samples } = sampler.stop();
  t.ok(worst.targets.length <= 1 && worst.staged.length <= 1, `over ${samples} looks at the mount table, never published for two tasks or staged on two hosts at once (worst: ${JSON.stringify(worst)})`);
  t.equal(await start(old), 0, `${old} back`);
  await lab.ok(['--lab', 'node', 'update', '--availability', 'active', from]);
  await lab.ok(['--lab', 'service', 'rm', 'hv']);
  await eventually('hav detached once the service is gone', async () => (await volumesOf(lab)).find((x) => x.name === 'hav')?.attachments.length === 0, 120_000, 500);
  t.equal((await lab.shoal(['--lab', 'volume', 'rm', 'hav'], 60_000)).code, 0, 'volume rm');
  const images = () => (existsSync(join(poolOf(lab), 'volumes')) ? readdirSync(join(poolOf(lab), 'volumes')) : []);
  await eventually('hav and its image deleted', async () => !(await volumesOf(lab)).some((x) => x.name === 'hav') && !images().includes(csiId), 120_000, 500);
  t.comment(`services-faults: volume moved across a leader failover ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});
