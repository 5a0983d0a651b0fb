// Changing services without downtime, on a real lab (1 manager, 2 workers, real containers):
// a rolling update of 6 replicas with parallelism 2 never drops below 4 ready tasks (sampled)
// and ends with the new image everywhere; start-first keeps all 6 ready; an update whose
// container exits at once is rolled back automatically (failure action rollback) or paused with
// the reason (pause); history after three updates lists four revisions and rollback
// --to-revision 1 restores the first spec; a liveness probe that starts failing restarts the
// task; a readiness probe that never passes holds the update.
import t from 'tap';
import { LAB_IMAGE, LAB_IMAGE_2 } from '../lab/registry.js';
import { Lab, converged, eventually, type TaskRow } from './services-helpers.js';

const lab = new Lab(t, 'svcu');
// A whole lab and many real containers: more than tap's default per-file limit on a loaded
// machine, but each wait inside has its own bound, so a stuck file ends well within CI's 20 minutes.
t.setTimeout(15 * 60_000);

t.before(async () => {
  const up = await lab.shoal(['lab', 'up', '--managers', '1', '--workers', '2', '--demo', '0'], 300_000);
  if (up.code !== 0) throw new Error(`lab up failed: ${up.stderr}\n${up.stdout}`);
});

interface Row extends TaskRow {
  image: string;
  ready: boolean | null;
  upToDate: boolean;
  health: string | null;
  healthMessage: string | null;
}

const rows = async (s: string) => (await lab.tasks(s)) as Row[];
const readyNow = (ts: Row[]) => ts.filter((x) => x.desiredState === 'running' && x.state === 'running' && x.ready !== false).length;
const HTTPD = ['sh', '-c', 'exec httpd -f -p 80 -h /www'];
// Probe timeouts generous: the test machine may be loaded, and a slow probe is not a failure here.
const READY = ['--readiness', 'http:80/', '--readiness-period', '1s', '--readiness-timeout', '5s'];
// The CLI waits for a rollout (its own --timeout). A rollout here takes seconds, a minute or two
// on a machine loaded 20-30 deep; one that has not ended in 4 minutes is stuck (as when every
// readiness probe failed), and the test must say so then, not after 15 minutes per update.
const WAIT = ['--timeout', '4m'];
// busybox httpd and sleep run as the container's PID 1 with no SIGTERM handler, so the kernel
// drops the stop signal and every stop waited out the default 10 s grace before SIGKILL (three
// 10 s waits per rollout). What is tested is the order of stops and starts, not the grace.
const QUICK_STOP = ['--stop-grace-period', '1s'];

/** Calls `f` with the service's tasks every ~half second while `run` goes on. */
async function everySample(service: string, run: Promise<unknown>, f: (r: Row[]) => void): Promise<void> {
  let done = false;
  void run.finally(() => (done = true));
  while (!done) {
    try {
      f(await rows(service));
    } catch {
      /* a sample lost to a busy manager: the next one counts */
    }
    await new Promise((r) => setTimeout(r, 400));
  }
}

/** A sample's tasks, to say why when a bound is missed (states, readiness, image). */
const describe = (r: Row[]): string => r.map((x) => `${x.name} ${x.desiredState}/${x.state} ready=${x.ready} ${x.image.split('/').pop()} on ${x.node}${x.ready === false && x.healthMessage ? ` (${x.healthMessage})` : ''}`).join('; ');

/** Samples the ready count while `run` goes on; returns the lowest seen. */
async function sampleDuring(service: string, run: Promise<unknown>): Promise<{ min: number; samples: number; lowest: string }> {
  let min = Infinity;
  let samples = 0;
  let lowest = '';
  await everySample(service, run, (r) => {
    const n = readyNow(r);
    if (n < min) lowest = describe(r);
    min = Math.min(min, n);
    samples++;
  });
  return { min, samples, lowest };
}

t.test('rolling update, stop-first, parallelism 2: never fewer than 4 ready; new image everywhere', async (t) => {
  const c = await lab.shoal(['--lab', 'service', 'create', ...WAIT, ...QUICK_STOP, '--name', 'ru', '--replicas', '6', '--update-parallelism', '2', '--update-monitor', '1s', ...READY, LAB_IMAGE, ...HTTPD]);
  t.equal(c.code, 0, `created (${c.stderr})`);
  await eventually('6 ready', async (saw) => readyNow(saw(await rows('ru'))) === 6);
  const upd = lab.shoal(['--lab', 'service', 'update', ...WAIT, '--image', LAB_IMAGE_2, 'ru']);
  const { min, samples, lowest } = await sampleDuring('ru', upd);
  const r = await upd;
  t.equal(r.code, 0, `update exits 0 (${r.stderr})`);
  t.match(r.stdout, /updated, running, ready/, 'it shows slots updated and ready');
  t.match(r.stdout, /service ru converged \(update completed, revision 2\)/, 'and the verdict');
  t.ok(samples > 0, `${samples} samples taken`);
  t.ok(min >= 4, `never fewer than 4 ready tasks (lowest seen: ${min}: ${lowest})`);
  const live = (await rows('ru')).filter((x) => x.desiredState === 'running');
  t.ok(converged(live, 6), 'six running tasks');
  t.ok(live.every((x) => x.image === LAB_IMAGE_2 && x.upToDate), 'all on the new image');
});

/**
 * What start-first promises, sampled while `run` goes on: no old task of a slot is told to stop
 * before a new task of that slot was seen ready, and six tasks run throughout. (Readiness of the
 * untouched old tasks is probed too, and at load 20 on 2 cores their probes have failed for a
 * while on their own: reported, not the updater's doing.)
 */
async function sampleStartFirst(service: string, image: string, run: Promise<unknown>): Promise<{ early: string[]; minRunning: number; minReady: number; lowest: string }> {
  const seenReady = new Set<string>();
  const early = new Set<string>();
  let minRunning = Infinity;
  let minReady = Infinity;
  let lowest = '';
  await everySample(service, run, (r) => {
    for (const x of r) if (x.image === image && x.desiredState === 'running' && x.state === 'running' && x.ready === true) seenReady.add(x.name);
    for (const x of r) {
      if (x.image !== image && x.desiredState !== 'running' && !seenReady.has(x.name)) early.add(`${x.name} (${x.desiredState}/${x.state})`);
    }
    const running = r.filter((x) => x.desiredState === 'running' && x.state === 'running').length;
    if (running < minRunning) lowest = describe(r);
    minRunning = Math.min(minRunning, running);
    minReady = Math.min(minReady, readyNow(r));
  });
  return { early: [...early], minRunning, minReady, lowest };
}

t.test('start-first: no old task stops before its replacement is ready; 6 run throughout', async (t) => {
  const upd = lab.shoal(['--lab', 'service', 'update', ...WAIT, '--image', LAB_IMAGE, '--update-order', 'start-first', '--update-parallelism', '2', 'ru']);
  const { early, minRunning, minReady, lowest } = await sampleStartFirst('ru', LAB_IMAGE, upd);
  t.equal((await upd).code, 0, 'update exits 0');
  t.same(early, [], 'no old task was told to stop before a new task of its slot was ready');
  t.ok(minRunning >= 6, `never fewer than 6 tasks running (lowest seen: ${minRunning}: ${lowest})`);
  t.comment(`fewest ready tasks seen during the start-first update: ${minReady}`);
  const live = (await rows('ru')).filter((x) => x.desiredState === 'running');
  t.ok(converged(live, 6) && live.every((x) => x.image === LAB_IMAGE), 'six running, all back on version 1');
});

t.test('a broken update: rollback brings the old spec back; pause stops and says why', async (t) => {
  const bad = await lab.shoal(['--lab', 'service', 'update', ...WAIT, '--image', LAB_IMAGE_2, '--args', 'sh -c "exit 3"', '--update-failure-action', 'rollback', 'ru']);
  t.equal(bad.code, 1, 'the update fails');
  t.match(bad.stdout, /update failed, rolling back/, 'it says it rolls back');
  t.match(bad.stderr, /the update failed and was rolled back/);
  const svc = JSON.parse(await lab.ok(['--lab', 'service', 'inspect', 'ru', '--format', 'json']))[0];
  t.equal(svc.updateStatus.state, 'rollback_completed', 'inspect shows the automatic rollback');
  t.match(svc.updateStatus.message, /rollback completed/);
  const live = (await rows('ru')).filter((x) => x.desiredState === 'running');
  t.ok(converged(live, 6), 'six running again');
  t.ok(live.every((x) => x.image === LAB_IMAGE && x.upToDate), 'all on the old spec');

  const paused = await lab.shoal(['--lab', 'service', 'update', ...WAIT, '--args', 'sh -c "exit 4"', '--update-failure-action', 'pause', 'ru']);
  t.equal(paused.code, 1, 'the update fails');
  t.match(paused.stderr, /update paused: .*failed.*exit 4/, `it says it paused and why: ${paused.stderr.trim()}`);
  const p = JSON.parse(await lab.ok(['--lab', 'service', 'inspect', 'ru', '--format', 'json']))[0];
  t.equal(p.updateStatus.state, 'paused', 'inspect shows the pause');
  const still = (await rows('ru')).filter((x) => x.desiredState === 'running' && !x.upToDate && x.state === 'running');
  t.ok(still.length >= 4, `the rollout stopped: ${still.length} tasks still run the old spec`);
});

t.test('history and rollback --to-revision', async (t) => {
  await lab.ok(['--lab', 'service', 'create', ...QUICK_STOP, '--name', 'hist', '--replicas', '2', '--update-monitor', '0s', LAB_IMAGE, 'sleep', '1000000']);
  for (const v of ['1', '2', '3']) await lab.ok(['--lab', 'service', 'update', ...WAIT, '--env-add', `V=${v}`, 'hist']);
  const h = JSON.parse(await lab.ok(['--lab', 'service', 'history', 'hist', '--format', 'json'])) as { revision: number; change: string; current: boolean }[];
  t.same(h.map((x) => x.revision), [1, 2, 3, 4], 'four revisions after three updates');
  t.ok(h[3]!.current, 'the last one is current');
  t.match(h[3]!.change, /V=3/, 'each says what changed');
  const rb = await lab.shoal(['--lab', 'service', 'rollback', ...WAIT, 'hist', '--to-revision', '1']);
  t.equal(rb.code, 0, `rollback to revision 1 (${rb.stderr})`);
  const svc = JSON.parse(await lab.ok(['--lab', 'service', 'inspect', 'hist', '--format', 'json']))[0];
  t.same(svc.spec.main.env, [], 'the first spec is back (no V)');
  t.equal(svc.revision, 5, 'as a new revision');
  const live = (await rows('hist')).filter((x) => x.desiredState === 'running');
  t.ok(converged(live, 2) && live.every((x) => x.upToDate), 'its tasks run it');
  const none = await lab.shoal(['--lab', 'service', 'rollback', 'hist', '--to-revision', '99']);
  t.equal(none.code, 1);
  t.match(none.stderr, /has no revision 99; kept revisions: 1, 2, 3, 4, 5/);
  await lab.ok(['--lab', 'service', 'rm', 'hist']);
});

t.test('probes: a failing liveness probe restarts the task; a readiness probe that never passes holds the update', async (t) => {
  await lab.ok(['--lab', 'service', 'create', ...QUICK_STOP, '--name', 'live', '--replicas', '1', '--restart-delay', '1s', '--liveness', 'exec:test -f /tmp/alive', '--liveness-period', '1s', '--liveness-failures', '2', LAB_IMAGE, 'sh', '-c', 'touch /tmp/alive; sleep 3; rm /tmp/alive; exec sleep 1000000']);
  const dead = await eventually('the unhealthy task replaced', async (saw) => saw(await rows('live')).find((x) => x.state === 'failed'));
  t.match(dead.error, /unhealthy: liveness probe failed 2 time\(s\)/, `the reason is the probe: ${dead.error}`);
  t.equal(dead.health, 'unhealthy');
  await eventually('a new task running in its slot', async (saw) => saw(await rows('live')).some((x) => x.desiredState === 'running' && x.state === 'running' && x.id !== dead.id));
  await lab.ok(['--lab', 'service', 'rm', 'live']);

  // A fresh service of its own, so nothing of the earlier rollouts is in the way.
  await lab.ok(['--lab', 'service', 'create', ...WAIT, ...QUICK_STOP, '--name', 'rd', '--replicas', '3', ...READY, LAB_IMAGE, ...HTTPD]);
  const up = await lab.shoal(['--lab', 'service', 'update', '--readiness', 'http:81/', '--readiness-period', '1s', '--update-monitor', '1s', '--update-parallelism', '1', '--timeout', '30s', 'rd']);
  t.equal(up.code, 1, 'the update does not finish');
  t.match(up.stdout, /updated, running, not ready/, 'the new task runs but is not ready');
  t.match(up.stderr, /did not finish within 30 s/);
  const ts = await rows('rd');
  const fresh = ts.filter((x) => x.desiredState === 'running' && x.upToDate);
  t.equal(fresh.length, 1, 'only the first batch (parallelism 1) was started: the update is held');
  t.equal(fresh[0]!.ready, false, 'its task is not ready');
  await lab.ok(['--lab', 'service', 'rm', 'rd']);
  await lab.ok(['--lab', 'service', 'rm', 'ru']);
});
