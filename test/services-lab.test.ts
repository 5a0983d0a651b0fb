// Services on a real lab (1 manager, 2 workers; real shoald, real shoal-runtime, real runc
// containers, the lab's own registry): a replicated service spread over the workers, scaled up
// and down, removed without a trace (the runtime's listing and runc's agree); a global service
// following a node that drains and a node that joins; a job run to completion; a pod with an init
// container and a sidecar that reaches the main container over localhost, with the downward API;
// memory limits in the container's cgroup and an OOM kill reported; bad input refused with nothing
// written; an image that cannot be pulled; a worker's certificate refused by every service RPC.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { LAB_IMAGE } from '../lab/registry.js';
import { Lab, converged, eventually, type TaskRow } from './services-helpers.js';

const lab = new Lab(t, 'svc');
const W = ['--constraint', 'node.role==worker'];
// A whole lab and many real containers: more than tap's default per-file limit on a loaded
// machine, but each wait inside has its own bound, so a stuck file ends well within CI's 20 minutes.
t.setTimeout(15 * 60_000);

t.before(async () => {
  const up = await lab.shoal(['lab', 'up', '--managers', '1', '--workers', '2', '--demo', '0'], 300_000);
  if (up.code !== 0) throw new Error(`lab up failed: ${up.stderr}\n${up.stdout}`);
});

// sleep as the container's PID 1 has no SIGTERM handler: the kernel drops the stop signal and each
// scale-down or rm would wait out the default 10 s grace. The grace itself is not tested here.
const QUICK_STOP = ['--stop-grace-period', '1s'];

async function serviceId(name: string): Promise<string> {
  return (JSON.parse(await lab.ok(['--lab', 'service', 'inspect', name, '--format', 'json'])) as { id: string }[])[0]!.id;
}

t.test('replicated: spread over the workers, scaled, removed without a trace', async (t) => {
  const r = await lab.shoal(['--lab', 'service', 'create', '--name', 'web', '--replicas', '6', ...W, ...QUICK_STOP, LAB_IMAGE, 'sleep', '1000000']);
  t.equal(r.code, 0, `service create exits 0 once converged (${r.stderr})`);
  t.match(r.stdout, /1\/6: running/, 'it shows each slot reaching running');
  t.match(r.stdout, /service web converged \(6\/6 running\)/, 'and ends with the verdict');
  const tasks = await lab.tasks('web');
  t.ok(converged(tasks, 6), 'six running tasks, one per slot');
  const per = (ts: TaskRow[], n: string) => ts.filter((x) => x.desiredState === 'running' && x.node === n).length;
  t.equal(per(tasks, 'worker-1'), 3, 'three on worker-1');
  t.equal(per(tasks, 'worker-2'), 3, 'three on worker-2');
  t.equal(per(tasks, 'manager-1'), 0, 'none on the manager (constraint)');
  const sid = await serviceId('web');
  t.equal((await lab.criRunning('worker-1', sid)).length + (await lab.criRunning('worker-2', sid)).length, 6, "the runtimes' own listings show six running containers");
  const cids = tasks.map((x) => x.containerId).filter(Boolean);
  t.equal(new Set(cids).size, 6, 'six distinct containers reported');
  for (const n of ['worker-1', 'worker-2']) {
    const running = lab.runcRunning(n);
    for (const x of tasks.filter((y) => y.node === n)) t.ok(running.includes(x.containerId!), `runc on ${n} runs ${x.name}'s container`);
  }

  const up = await lab.shoal(['--lab', 'service', 'scale', 'web=8']);
  t.equal(up.code, 0, 'scale up to 8');
  t.match(up.stdout, /service web converged \(8\/8 running\)/);
  const down = await lab.shoal(['--lab', 'service', 'scale', 'web=2']);
  t.equal(down.code, 0, 'scale down to 2');
  await eventually('6 containers stopped after the scale-down', async (saw) => saw((await lab.criRunning('worker-1', sid)).length + (await lab.criRunning('worker-2', sid)).length) === 2);
  t.ok(converged(await lab.tasks('web'), 2), 'two running tasks');
  t.equal(per(await lab.tasks('web'), 'worker-1'), 1, 'one on each worker after the scale-down (spread kept)');

  const rm = await lab.shoal(['--lab', 'service', 'rm', 'web']);
  t.equal(rm.code, 0, 'service rm');
  await eventually('every task of web gone from the store', async (saw) => saw((await lab.shoal(['--lab', 'task', 'ls', '--format', 'json'])).stdout.trim()) === '[]');
  for (const n of ['manager-1', 'worker-1', 'worker-2']) {
    t.same(await lab.criRunning(n, sid), [], `no container of web in ${n}'s runtime`);
    t.same(lab.runcRunning(n), [], `runc list on ${n}: nothing running`);
  }
});

t.test('global: one task per node; follows a drain and a node that joins', async (t) => {
  const r = await lab.shoal(['--lab', 'service', 'create', '--name', 'agent', '--mode', 'global', ...QUICK_STOP, LAB_IMAGE, 'sleep', '1000000']);
  t.equal(r.code, 0, `global service created and converged (${r.stderr})`);
  let live = await lab.live('agent');
  t.same(live.map((x) => x.node).sort(), ['manager-1', 'worker-1', 'worker-2'], 'one task on each node');
  t.ok(live.every((x) => x.state === 'running'));

  t.equal((await lab.shoal(['--lab', 'node', 'update', '--availability', 'drain', 'worker-2'])).code, 0, 'drain worker-2');
  await eventually('the task on worker-2 stopped', async (saw) => saw(await lab.tasks('agent')).some((x) => x.node === 'worker-2' && x.state === 'shutdown'));
  live = await lab.live('agent');
  t.same(live.map((x) => x.node).sort(), ['manager-1', 'worker-1'], 'no task wanted on the drained node');
  t.equal((await lab.shoal(['--lab', 'node', 'update', '--availability', 'active', 'worker-2'])).code, 0, 'worker-2 active again');
  await eventually('a new task running on worker-2', async (saw) => saw(await lab.live('agent')).some((x) => x.node === 'worker-2' && x.state === 'running'));

  // worker-2 leaves, is removed, and joins again as a new node: the service follows it.
  const oldId = (await lab.live('agent')).find((x) => x.node === 'worker-2')!.nodeId;
  t.equal((await lab.shoal(['lab', 'exec', 'worker-2', '--', 'shoal', 'leave'])).code, 0, 'worker-2 leaves the cluster');
  await eventually('worker-2 down', async (saw) => saw(JSON.parse(await lab.ok(['--lab', 'node', 'ls', '--format', 'json']))).some((n: any) => n.hostname === 'worker-2' && n.status === 'down'));
  t.equal((await lab.shoal(['--lab', 'node', 'rm', oldId!])).code, 0, 'node rm of the old worker-2');
  const token = (await lab.ok(['--lab', 'join-token', 'worker', '--quiet'])).trim();
  // The token goes in the environment, never on a command line.
  const j = await lab.shoal(['lab', 'exec', 'worker-2', '--', 'shoal', 'join', `${lab.node('manager-1').address}:4242`], 120_000, { SHOAL_JOIN_TOKEN: token });
  t.equal(j.code, 0, `worker-2 joins again (${j.stderr})`);
  await eventually('a task on the newly joined worker-2', async (saw) => saw(await lab.live('agent')).some((x) => x.node === 'worker-2' && x.nodeId !== oldId && x.state === 'running'));
  t.pass('the global service placed a task on the node that joined');
  t.equal((await lab.shoal(['--lab', 'service', 'rm', 'agent'])).code, 0);
});

t.test('replicated job: runs to completion, at most 2 at a time', async (t) => {
  const r = await lab.shoal(['--lab', 'service', 'create', '--name', 'batch', '--mode', 'replicated-job', '--completions', '4', '--max-concurrent', '2', LAB_IMAGE, 'sh', '-c', 'echo run $SHOAL_TASK_SLOT; sleep 1']);
  t.equal(r.code, 0, `job created and followed to its end (${r.stderr})`);
  t.match(r.stdout, /job batch completed \(4\/4\)/, 'the verdict says it completed');
  const tasks = await lab.tasks('batch');
  const done = tasks.filter((x) => x.state === 'complete');
  t.equal(done.length, 4, 'four tasks complete');
  t.same(done.map((x) => x.slot).sort(), [1, 2, 3, 4], 'one per completion');
  t.ok(done.every((x) => x.exitCode === 0), 'each exited 0');
  // Never more than two ran at once: their running intervals overlap at most pairwise.
  const spans = done.map((x) => [Date.parse(x.timestamps.running!), Date.parse(x.timestamps.complete!)] as [number, number]);
  for (const [s] of spans) t.ok(spans.filter(([a, b]) => a <= s && s < b).length <= 2, 'at most two running at any start');
  const logs = await lab.ok(['--lab', 'service', 'logs', 'batch']);
  for (const i of [1, 2, 3, 4]) t.match(logs, new RegExp(`run ${i}\\b`), `the log of run ${i} is there`);
  await lab.ok(['--lab', 'service', 'rm', 'batch']);
});

t.test('a pod: init container first, a sidecar over localhost, the downward API', async (t) => {
  const r = await lab.shoal(['--lab', 'service', 'create', '--name', 'pod', '--replicas', '1', ...W,
    '--init', `setup ${LAB_IMAGE} sh -c "echo init-ran; sleep 1"`,
    '--sidecar', `probe ${LAB_IMAGE} sh -c "while true; do wget -q -O - http://127.0.0.1:8080/ && echo sidecar-reached-main; sleep 1; done"`,
    LAB_IMAGE, 'sh', '-c', 'echo "main task=$SHOAL_TASK_NAME slot=$SHOAL_TASK_SLOT node=$SHOAL_NODE_HOSTNAME service=$SHOAL_SERVICE_NAME"; exec httpd -f -p 8080 -h /www']);
  t.equal(r.code, 0, `created and running (${r.stderr})`);
  const task = (await lab.live('pod'))[0]!;
  const logs = await eventually('the sidecar to reach main', async () => {
    const l = await lab.ok(['--lab', 'service', 'logs', 'pod', '--timestamps']);
    return l.includes('sidecar-reached-main') && l;
  });
  t.match(logs, /init-ran/, "the init container's output is in the logs");
  t.match(logs, /hello from a shoal task/, 'the sidecar fetched the page main serves on localhost');
  t.match(logs, new RegExp(`main task=pod\\.1 slot=1 node=${task.node} service=pod`), 'the downward API variables are set');
  const lines = logs.split('\n');
  const at = (s: string) => Date.parse(lines.find((l) => l.includes(s))!.split(' ')[0]!);
  t.ok(at('init-ran') < at('main task='), 'the init container ran before the main container started');
  await lab.ok(['--lab', 'service', 'rm', 'pod']);
});

t.test('limits reach the cgroup; an OOM kill is reported', async (t) => {
  await lab.ok(['--lab', 'service', 'create', '--name', 'lim', '--replicas', '1', ...W, '--limit-memory', '48M', '--reserve-memory', '16M', LAB_IMAGE, 'sleep', '1000000']);
  const task = (await lab.live('lim'))[0]!;
  const runcRoot = join(lab.node(task.node!).stateDir, 'runtime', 'runc');
  const st = JSON.parse(spawnSync('runc', ['--root', runcRoot, 'state', task.containerId!], { encoding: 'utf8' }).stdout) as { pid: number };
  const memLine = readFileSync(`/proc/${st.pid}/cgroup`, 'utf8').split('\n').find((l) => /:memory:/.test(l) || l.startsWith('0::'))!;
  const path = memLine.slice(memLine.indexOf(':', memLine.indexOf(':') + 1) + 1);
  const v1 = join('/sys/fs/cgroup/memory', path, 'memory.limit_in_bytes');
  const v2 = join('/sys/fs/cgroup', path, 'memory.max');
  let limit = '';
  try { limit = readFileSync(v1, 'utf8').trim(); } catch { limit = readFileSync(v2, 'utf8').trim(); }
  t.equal(Number(limit), 48 * 1024 * 1024, "the container's cgroup holds the 48 MiB limit");
  const node = JSON.parse(await lab.ok(['--lab', 'node', 'inspect', task.node!, '--format', 'json']))[0];
  t.equal(node.resources.reserved.memoryBytes, 16 * 1024 * 1024, 'node inspect shows the reservation');
  t.ok(node.resources.capacity.memoryBytes > 0 && node.resources.capacity.cpus > 0, 'and the node\'s capacity');
  t.match(node.runtime, /shoal-runtime/, 'and its runtime');
  await lab.ok(['--lab', 'service', 'rm', 'lim']);

  await lab.ok(['--lab', 'service', 'create', '--name', 'oom', '--replicas', '1', ...W, '--limit-memory', '16M', '--restart-condition', 'none', '--detach', LAB_IMAGE, 'sh', '-c', 'x=0123456789; while true; do x=$x$x; done']);
  const dead = await eventually('the OOM kill reported', async (saw) => saw(await lab.tasks('oom')).find((x) => x.state === 'failed'));
  t.equal(dead.exitCode, 137, 'exit 137');
  t.equal(dead.oomKilled, true, 'reported as OOM killed');
  const ps = await lab.ok(['--lab', 'service', 'ps', 'oom']);
  t.match(ps, /failed: exit 137 \(OOM killed\)/, '`service ps` says so');
  await lab.ok(['--lab', 'service', 'rm', 'oom']);
});

t.test('bad input: a clear error and nothing written', async (t) => {
  await lab.ok(['--lab', 'service', 'create', '--name', 'keep', '--replicas', '0', LAB_IMAGE, 'true']);
  const before = await lab.ok(['--lab', 'service', 'ls', '--format', 'json']);
  const tasksBefore = await lab.ok(['--lab', 'task', 'ls', '--format', 'json']);
  const cases: [string, string[], RegExp][] = [
    ['an invalid name', ['--name', 'Bad_Name', LAB_IMAGE], /service name "Bad_Name" is not valid/],
    ['replicas < 0', ['--name', 'neg', '--replicas', '-1', LAB_IMAGE], /--replicas must be a whole number/],
    ['an unknown mode', ['--name', 'mode', '--mode', 'sometimes', LAB_IMAGE], /mode "sometimes" is not known/],
    ['a constraint that does not parse', ['--name', 'cons', '--constraint', 'node.colour=red', LAB_IMAGE], /constraint "node.colour=red" does not parse/],
    ['an image reference that does not parse', ['--name', 'img', 'UPPER/Case::x'], /is not a valid image reference/],
    ['a duplicate name', ['--name', 'keep', LAB_IMAGE], /a service named "keep" exists already/],
    ['limits below reservations', ['--name', 'lim', '--reserve-memory', '64M', '--limit-memory', '32M', LAB_IMAGE], /reservations.memory .* is above limits.memory/],
  ];
  for (const [what, args, msg] of cases) {
    const r = await lab.shoal(['--lab', 'service', 'create', ...args]);
    t.not(r.code, 0, `${what}: refused`);
    t.match(r.stderr, msg, `${what}: ${r.stderr.trim()}`);
  }
  t.equal(await lab.ok(['--lab', 'service', 'ls', '--format', 'json']), before, 'no service written');
  // The tasks of a service an earlier test removed may still be going (removal is asynchronous),
  // so "nothing written" is: no task that was not there before.
  const ids = (json: string) => (JSON.parse(json) as TaskRow[]).map((x) => x.id);
  const tasksAfter = await lab.ok(['--lab', 'task', 'ls', '--format', 'json']);
  t.same(ids(tasksAfter).filter((id) => !ids(tasksBefore).includes(id)), [], 'no task written');
  const sc = await lab.shoal(['--lab', 'service', 'scale', 'nosuch=3']);
  t.equal(sc.code, 1, 'scaling an unknown service fails');
  t.match(sc.stderr, /no service "nosuch"/);
  await lab.ok(['--lab', 'service', 'rm', 'keep']);
});

t.test('an image that cannot be pulled: rejected with the registry\'s answer, retried without flooding', async (t) => {
  const image = `${LAB_IMAGE.split('/')[0]}/nosuch:1`;
  const r = await lab.shoal(['--lab', 'service', 'create', '--name', 'ghost', '--replicas', '1', '--restart-delay', '3s', '--timeout', '10s', image]);
  t.equal(r.code, 1, 'create does not converge and exits 1');
  t.match(r.stderr, /did not converge within 10 s/, 'saying so');
  t.match(r.stderr, /rejected/, 'with the rejection');
  const tasks = await lab.tasks('ghost');
  const rejected = tasks.filter((x) => x.state === 'rejected');
  t.ok(rejected.length >= 1, 'tasks are rejected');
  t.match(rejected[0]!.error, /not found|unknown|404|manifest/i, `the registry's answer is in ps: ${rejected[0]!.error}`);
  t.ok(tasks.length <= 5, `retried by the restart policy (3 s delay), not flooding: ${tasks.length} tasks in ~10 s`);
  await lab.ok(['--lab', 'service', 'rm', 'ghost']);
});

t.test("a worker's certificate cannot call any service RPC", async (t) => {
  const m = `${lab.node('manager-1').address}:4242`;
  for (const args of [['service', 'ls'], ['service', 'create', '--name', 'w', '--detach', LAB_IMAGE], ['service', 'ps', 'x'], ['task', 'ls'], ['service', 'logs', 'x'], ['service', 'rm', 'x'], ['service', 'scale', 'x=1']]) {
    const r = await lab.shoal(['lab', 'exec', 'worker-1', '--', 'shoal', '--host', m, ...args]);
    t.equal(r.code, 1, `worker: shoal ${args.join(' ')} refused`);
    t.match(r.stderr, /allowed for manager nodes only/, 'as manager-only');
  }
});
