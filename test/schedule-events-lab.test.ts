// Scheduled jobs and events on a real lab (3 managers, 1 worker; real containers), over three
// minutes of real cron ticks (five-field cron has no seconds, so a one-minute schedule it is):
// - `tick` (every minute, allow) runs once at each tick: M1, M2, M3, one task each;
// - `slow` (every minute, forbid, 30 s starting deadline, runs 100 s) skips M2: it came while run 1
//   still went, and could not start within 30 s of it; M3 runs;
// - the leader is SIGKILLed twice: between ticks (M1 + 20 s) and just before one (M3 - 1 s, so the
//   next leader must start M3 late): no run doubled, none lost;
// - `shoal events --follow`, run on the first leader's host, loses its manager at the first kill and
//   resumes on another: every event once, in order, the same as a manager's own log tells them.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAB_IMAGE } from '../lab/registry.js';
import { CLI_MAIN } from './lab-helpers.js';
import { Lab, eventually } from './services-helpers.js';

const lab = new Lab(t, 'cron');
t.setTimeout(30 * 60_000);
const dir = mkdtempSync(join(tmpdir(), `shoal-cron-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const MIN = 60_000;

t.before(async () => {
  const up = await lab.shoal(['lab', 'up', '--managers', '3', '--workers', '1', '--demo', '0'], 300_000);
  if (up.code !== 0) throw new Error(`lab up failed: ${up.stderr}\n${up.stdout}`);
});

async function leader(): Promise<string> {
  return eventually('a leader', async () => {
    const rows = JSON.parse(await lab.ok(['--lab', 'node', 'ls', '--format', 'json'])) as { hostname: string; status: string; managerStatus: { leader: boolean } | null }[];
    return rows.find((r) => r.managerStatus?.leader)?.hostname;
  }, 60_000);
}

async function schedule(name: string): Promise<any> {
  return (JSON.parse(await lab.ok(['--lab', 'service', 'inspect', name, '--format', 'json'])) as any[])[0].schedule;
}

const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
const iso = (ms: number) => new Date(ms).toISOString();

/** `shoal events --follow --format json` on a lab host, talking to that host's manager. */
function follower(host: string): { proc: ChildProcess; lines: () => any[]; stderr: () => string } {
  const n = lab.node(host);
  const proc = spawn('nsenter', [`--net=/run/netns/${n.netns}`, '--', process.execPath, CLI_MAIN, '--state-dir', n.stateDir, 'events', '--follow', '--format', 'json'], { env: lab.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  t.teardown(() => void proc.kill('SIGKILL'));
  return { proc, lines: () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l)), stderr: () => err };
}

async function killLeader(t: Test, why: string, known?: string): Promise<string> {
  const old = known ?? (await leader());
  // Straight from here (a `shoal lab stop` takes a CLI start, seconds on a busy machine).
  const pid = lab.node(old).proc!.pid;
  process.kill(pid, 'SIGKILL');
  await eventually(`${old} gone`, async () => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  }, 15_000, 50);
  t.pass(`SIGKILL the leader ${old} (${why})`);
  const next = await eventually('a new leader', async () => {
    const l = await leader().catch(() => undefined);
    return l && l !== old ? l : undefined;
  }, 60_000);
  t.comment(`${next} leads after ${old}`);
  return old;
}

t.test('runs at each tick through two leader kills; forbid skips a tick; events across a failover', async (t) => {
  const first = await leader();
  const ev = follower(first);
  await new Promise((r) => setTimeout(r, 3000));
  t.equal(ev.proc.exitCode, null, `events --follow runs on ${first} (${ev.stderr()})`);

  writeFileSync(join(dir, 'jobs.yaml'), `stack: cron
services:
  tick:
    image: ${LAB_IMAGE}
    command: [sh, -c, 'echo tick $SHOAL_TASK_NAME; sleep 5']
    mode: replicated-job
    constraints: [node.role==worker]
    schedule: "* * * * *"
  slow:
    image: ${LAB_IMAGE}
    command: [sleep, "100"]
    mode: replicated-job
    # On the worker: a task on a killed manager would be replaced (and its run last longer).
    constraints: [node.role==worker]
    schedule:
      cron: "* * * * *"
      concurrency: forbid
      startingDeadline: 30s
`);
  const created = Date.now();
  const ap = await lab.shoal(['--lab', 'apply', '-f', join(dir, 'jobs.yaml')]);
  t.equal(ap.code, 0, `applied (${ap.stderr})`);
  t.match(ap.stdout, /tick: scheduled "\* \* \* \* \*", next run /);
  const M1 = Math.ceil((created + 1) / MIN) * MIN;
  const M2 = M1 + MIN;
  const M3 = M2 + MIN;
  t.comment(`ticks: M1 ${iso(M1)}, M2 ${iso(M2)}, M3 ${iso(M3)}`);

  await eventually('run 1 of tick started', async () => (await schedule('tick')).runs.length > 0, 2 * MIN);
  const s1 = await schedule('tick');
  t.equal(s1.runs[0].scheduledAt, iso(M1), 'run 1 is for the first tick after the apply');

  // Kill 1: between ticks.
  await sleepUntil(M1 + 20_000);
  const killed1 = await killLeader(t, 'between ticks');
  t.equal((await lab.shoal(['lab', 'start', killed1])).code, 0, `${killed1} back`);

  // Kill 2: a second before M3; whoever leads next must start M3 itself, late. (The leader is
  // looked up first: a CLI call takes a while on a busy machine.)
  await sleepUntil(M3 - 15_000);
  const lead2 = await leader();
  await sleepUntil(M3 - 1500);
  const killed2 = await killLeader(t, 'a second before a tick', lead2);
  t.equal((await lab.shoal(['lab', 'start', killed2])).code, 0, `${killed2} back`);

  const tick = await eventually('tick run 3 to finish', async () => {
    const s = await schedule('tick');
    return s.runs.find((r: any) => r.run === 3 && r.result !== 'running') ? s : undefined;
  }, 3 * MIN);
  t.same(tick.runs.map((r: any) => [r.run, r.scheduledAt, r.result]), [[1, iso(M1), 'succeeded'], [2, iso(M2), 'succeeded'], [3, iso(M3), 'succeeded']], 'tick: one run per tick, M1, M2, M3, none twice, none lost');
  t.equal(tick.lastRun, 3, 'three runs started in all');
  const late = Date.parse(tick.runs[2].startedAt) - M3;
  t.comment(`tick run 3 started ${(late / 1000).toFixed(1)} s after its tick (a new leader's start; not a timing assertion)`);
  const tasks = (await lab.tasks('tick')) as any[];
  t.same(tasks.map((x) => x.run).sort(), [1, 2, 3], 'one task per run');
  t.ok(tasks.every((x) => x.state === 'complete' && x.exitCode === 0), 'each completed, exit 0');
  const logs = await lab.ok(['--lab', 'service', 'logs', 'tick']);
  t.equal(logs.split('\n').filter((l) => l.includes('tick tick.1')).length, 3, 'three runs wrote their line');

  const slow = await eventually('slow run 2 started', async () => {
    const s = await schedule('slow');
    return s.runs.some((r: any) => r.run === 2) ? s : undefined;
  }, 2 * MIN);
  t.same(slow.runs.map((r: any) => [r.run, r.scheduledAt]), [[1, iso(M1)], [2, iso(M3)]], 'slow: runs for M1 and M3');
  t.equal(slow.runs[0].result, 'succeeded', 'run 1 ran its 100 s to the end');
  t.equal(slow.skipped, 1, 'one tick skipped');
  t.equal(slow.lastSkip.scheduledAt, iso(M2), 'M2');
  t.match(slow.lastSkip.reason, /run 1 was still running \(concurrency policy forbid\); not started within its starting deadline of 30 s/, 'because run 1 still went (forbid) and its deadline passed');

  // After the failovers: a change the follower must still see.
  await lab.ok(['--lab', 'service', 'create', '--name', 'after', '--replicas', '0', LAB_IMAGE, 'true']);
  await eventually('the follower to see the service created after the failovers', async () => ev.lines().some((e) => e.type === 'service' && e.action === 'create' && e.name === 'after'), 60_000);
  ev.proc.kill('SIGTERM');

  const seen = ev.lines();
  t.match(ev.stderr(), new RegExp(`events: lost .*\\(.*\\); resuming after version \\d+`), `the follower lost its manager and resumed: ${ev.stderr().trim().split('\n')[0]}`);
  const key = (e: any) => `${e.version}/${e.seq}`;
  let ordered = true;
  for (let i = 1; i < seen.length; i++) {
    const a = seen[i - 1];
    const b = seen[i];
    if (!(b.version > a.version || (b.version === a.version && b.seq > a.seq))) ordered = false;
  }
  t.ok(ordered, `${seen.length} events, each once, in order`);
  const starts = seen.filter((e) => e.action === 'run-start' && e.name === 'tick' && Date.parse(e.attributes.scheduled) <= M3).map((e) => e.attributes.scheduled);
  t.same(starts, [iso(M1), iso(M2), iso(M3)], "tick's run starts for M1, M2, M3 told once each");
  t.ok(seen.some((e) => e.action === 'run-skip' && e.name === 'slow' && e.attributes.scheduled === iso(M2)), "slow's skipped tick told");
  t.ok(seen.filter((e) => e.type === 'node' && e.action === 'leader').length >= 2, 'both elections told');
  // Back before the node-down grace ran out it was only unknown; past it, down.
  t.ok(seen.some((e) => e.type === 'node' && (e.action === 'unknown' || e.action === 'down') && e.name === killed1), `${killed1}'s loss told`);
  t.ok(seen.some((e) => e.type === 'task' && e.action === 'complete'), 'task state changes told');

  // The same stretch as a manager's own log tells it: nothing lost across the reconnects.
  const all = (await lab.ok(['--lab', 'events', '--format', 'json'])).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const lo = seen[0].version;
  const hi = seen.at(-1).version;
  const strip = (e: any) => `${key(e)} ${e.type} ${e.action} ${e.message}`;
  t.same(seen.map(strip), all.filter((e) => e.version >= lo && e.version <= hi && !(e.version === lo && e.seq < seen[0].seq)).map(strip), 'the follower saw exactly what the log holds, across the failover');

  const filtered = (await lab.ok(['--lab', 'events', '--filter', 'type=node', '--format', 'json'])).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  t.ok(filtered.length > 0 && filtered.every((e) => e.type === 'node'), '--filter type=node: node events only');
  const since = (await lab.ok(['--lab', 'events', '--since', '30s'])).trim().split('\n');
  t.ok(since.every((l) => Date.parse(l.split(' ')[0]!) >= Date.now() - 60_000), '--since 30s: recent events only');
  await lab.ok(['--lab', 'service', 'rm', 'tick', 'slow', 'after']);
});
