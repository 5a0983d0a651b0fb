// Disaster recovery on a real cluster (shoald processes on loopback, a real registry, a real
// container on a worker): 3 managers lose 2 for good; the survivor, forced into a new cluster with
// --force-new-cluster, keeps its data, the service keeps running (the same container), new writes
// work and 2 new managers join. Then a backup taken before a `service rm` restores the service
// (`shoald --restore`); a corrupt backup is refused before anything changes.
import t from 'tap';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { startRegistry, pushImage } from '../runtime/testing/registry.js';
import { busyboxImage } from '../runtime/testing/test-image.js';
import { SHOALD, TestCluster, waitFor } from './cluster-harness.js';
import { removeTestDir } from './teardown.js';
import { removeCgroupTree } from '../lab/containers.js';

const c = new TestCluster();
const cg = `/shoal-recovery-${process.pid}`;
let stopRegistry: (() => Promise<void>) | undefined;
t.teardown(async () => {
  await c.destroy();
  await stopRegistry?.();
  removeCgroupTree(cg);
});
// Five daemons with their runtimes and a container on a loaded machine.
t.setTimeout(20 * 60_000);

let image = '';
let extra: (n: string) => string[] = () => [];
const ok = async (node: string, ...args: string[]) => {
  const r = await c.cli(node, ...args);
  if (r.code !== 0) throw new Error(`shoal ${args.join(' ')} on ${node}: ${r.stderr}`);
  return r.stdout;
};
const json = <T = any>(node: string, ...args: string[]) => c.json<T>(node, ...args);

t.test('a majority of managers lost for good: --force-new-cluster on the survivor', async (t) => {
  const reg = await startRegistry();
  stopRegistry = reg.stop;
  await pushImage(reg.host, 'busybox', '1', busyboxImage());
  image = `${reg.host}/busybox:1`;
  extra = (n) => ['--insecure-registry', reg.host, '--cgroup-parent', `${cg}/${n}`];
  for (const n of ['m1', 'm2', 'm3', 'w1']) await c.start(n, extra(n));
  await ok('m1', 'init');
  const mt = (await ok('m1', 'join-token', 'manager', '-q')).trim();
  const wt = (await ok('m1', 'join-token', 'worker', '-q')).trim();
  for (const n of ['m2', 'm3']) await ok(n, 'join', '--token', mt, c.addr('m1'));
  await ok('w1', 'join', '--token', wt, c.addr('m1'));
  await waitFor('3 voters and a ready worker', async () => {
    const rows = await json('m1', 'node', 'ls');
    return rows.length === 4 && rows.every((r: any) => r.status === 'ready') && rows.filter((r: any) => r.managerStatus?.voter).length === 3;
  }, 180_000);
  await ok('m1', 'service', 'create', '--name', 'web', '--replicas', '1', '--constraint', 'node.role==worker', '--timeout', '10m', image, 'sleep', '1000000');
  const before = (await json('m1', 'service', 'ps', 'web')).find((x: any) => x.desiredState === 'running');
  t.equal(before.state, 'running', 'the service runs on the worker');

  for (const n of ['m2', 'm3']) {
    await c.kill(n);
    await removeTestDir(c.state(n)); // lost for good: its disk with it
  }
  const stuck = await c.cli('m1', 'service', 'create', '--name', 'nope', '--detach', image);
  t.not(stuck.code, 0, `without a majority, writes fail: ${stuck.stderr.trim()}`);

  await c.kill('m1', 'SIGTERM');
  const raftBefore = readdirSync(c.state('m1'));
  await c.start('m1', [...extra('m1'), '--force-new-cluster']);
  const log = c.nodes.get('m1')!.log.join('');
  t.match(log, /--force-new-cluster: a new raft group with this manager as its only member, from the state at raft index \d+; the old raft data is kept in .*raft\.before-force-new-cluster-/, 'it says what it did and where the old data is');
  t.ok(raftBefore.includes('raft'), 'the old raft data existed');
  t.ok(readdirSync(c.state('m1')).some((f) => f.startsWith('raft.before-force-new-cluster-')), 'and is kept aside, not deleted');

  const rows = await waitFor('the cluster answers again', async () => {
    const r = await json('m1', 'node', 'ls');
    return r.find((x: any) => x.hostname === 'm1')?.managerStatus?.leader && r;
  }, 120_000);
  t.same(rows.filter((r: any) => r.managerStatus?.voter).map((r: any) => r.hostname), ['m1'], 'the survivor is the only voter');
  // The new leader turns the lost managers into workers once it leads (manager/recovery/adopt.ts),
  // a few writes after it first answers: wait for it rather than read the first answer.
  const lost = await waitFor('the lost managers turned into workers', async () => {
    const l = (await json('m1', 'node', 'ls')).filter((r: any) => r.hostname === 'm2' || r.hostname === 'm3');
    return l.length === 2 && l.every((r: any) => r.desiredRole === 'worker' && !r.managerStatus) && l;
  }, 120_000);
  t.equal(lost.length, 2, 'the lost managers are no longer raft members (they would come back as workers)');
  await waitFor('the worker back with the new cluster', async () => (await json('m1', 'node', 'ls')).find((r: any) => r.hostname === 'w1')?.status === 'ready', 120_000);
  const after = await waitFor('the service still running', async () => (await json('m1', 'service', 'ps', 'web')).find((x: any) => x.desiredState === 'running' && x.state === 'running'), 120_000);
  t.equal(after.containerId, before.containerId, 'the same container kept running through it all');
  const w = await c.cli('m1', 'service', 'create', '--name', 'after', '--replicas', '0', image);
  t.equal(w.code, 0, `new writes work: ${w.stderr}`);

  const mt2 = (await ok('m1', 'join-token', 'manager', '-q')).trim();
  for (const n of ['m4', 'm5']) {
    await c.start(n, extra(n));
    await ok(n, 'join', '--token', mt2, c.addr('m1'));
  }
  await waitFor('three voters again', async () => (await json('m1', 'node', 'ls')).filter((r: any) => r.managerStatus?.voter).length === 3, 180_000);
  t.pass('two new managers joined: three voters');
});

t.test('a backup taken before `service rm` restores the service; a corrupt backup is refused', async (t) => {
  await ok('m1', 'service', 'create', '--name', 'keep', '--replicas', '0', image);
  const file = join(c.dir, 'cluster.backup');
  const b = await c.cli('m1', 'cluster', 'backup', file);
  t.equal(b.code, 0, b.stderr);
  t.match(b.stdout, /Backup of cluster \S+ at raft index \d+ written to .*cluster\.backup/);
  await ok('m1', 'service', 'rm', 'keep');
  t.notOk((await json('m1', 'service', 'ls')).some((s: any) => s.name === 'keep'), 'removed');

  for (const n of ['m1', 'm4', 'm5']) await c.kill(n, 'SIGTERM');
  // A damaged copy first: refused before anything changes.
  const bad = join(c.dir, 'damaged.backup');
  const buf = readFileSync(file);
  writeFileSync(bad, buf.subarray(0, buf.length - 10));
  const refused = spawnSync(process.execPath, [SHOALD, '--state-dir', c.state('m1'), '--listen', `127.0.0.1:${c.nodes.get('m1')!.port}`, '--hostname', 'm1', '--dht=false', '--restore', bad], { encoding: 'utf8', timeout: 60_000 });
  t.equal(refused.status, 1, 'a truncated backup is refused');
  t.match(refused.stderr, /damaged\.backup is truncated or padded: its header says \d+ bytes of data, it holds \d+/);
  t.notOk(readdirSync(c.state('m1')).some((f) => f.startsWith('raft.before-restore')), 'and nothing was changed');

  await c.start('m1', [...extra('m1'), '--restore', file]);
  await waitFor('the restored cluster answers', async () => (await json('m1', 'node', 'ls')).find((r: any) => r.hostname === 'm1')?.managerStatus?.leader, 120_000);
  t.ok((await json('m1', 'service', 'ls')).some((s: any) => s.name === 'keep'), 'the service removed after the backup is back');
  t.equal((await c.cli('m1', 'service', 'create', '--name', 'later', '--replicas', '0', image)).code, 0, 'and the restored cluster takes writes');
});
