// Prometheus metrics of a real cluster (shoald processes on loopback, a real registry, real
// containers on a worker): every family an operator watches is on each node's /metrics page in a
// format Prometheus accepts, and the figures move with what the cluster does: a service created,
// its image pulled, its tasks running, a worker killed.
import t from 'tap';
import { startRegistry, pushImage } from '../runtime/testing/registry.js';
import { busyboxImage } from '../runtime/testing/test-image.js';
import { TestCluster, waitFor } from './cluster-harness.js';
import { removeCgroupTree } from '../lab/containers.js';
import { parsePrometheusText, sumOf, type Family } from './prom-parse.js';

const c = new TestCluster();
const cg = `/shoal-metrics-${process.pid}`;
let stopRegistry: (() => Promise<void>) | undefined;
t.teardown(async () => {
  await c.destroy();
  await stopRegistry?.();
  removeCgroupTree(cg);
});
t.setTimeout(10 * 60_000);

const ok = async (node: string, ...args: string[]) => {
  const r = await c.cli(node, ...args);
  if (r.code !== 0) throw new Error(`shoal ${args.join(' ')} on ${node}: ${r.stderr}`);
  return r.stdout;
};
const scrape = async (node: string): Promise<Map<string, Family>> => parsePrometheusText(await c.metrics(node));

const MANAGER_FAMILIES = [
  'shoal_raft_term', 'shoal_raft_commit_index', 'shoal_raft_applied_index', 'shoal_raft_is_leader', 'shoal_raft_leader_changes_total',
  'shoal_raft_proposals_total', 'shoal_raft_wal_save_seconds', 'shoal_raft_snapshot_duration_seconds', 'shoal_store_objects', 'shoal_store_watches',
  'shoal_reconcile_passes_total', 'shoal_reconcile_duration_seconds', 'shoal_leader_changes_committed_total', 'shoal_dispatcher_sessions',
  'shoal_dispatcher_heartbeats_missed_total', 'shoal_scheduler_pending_tasks',
];
const NODE_FAMILIES = [
  'shoal_gossip_members', 'shoal_gossip_probe_rtt_seconds', 'shoal_gossip_suspicions_total', 'shoal_cri_call_duration_seconds',
  'shoal_image_pull_duration_seconds', 'shoal_image_pull_bytes_total', 'shoal_agent_tasks', 'shoal_process_resident_memory_bytes', 'shoal_process_cpu_seconds_total',
];

t.test('a manager and a worker: every family present, and the figures follow the cluster', async (t) => {
  const reg = await startRegistry();
  stopRegistry = reg.stop;
  await pushImage(reg.host, 'busybox', '1', busyboxImage());
  const image = `${reg.host}/busybox:1`;
  const extra = (n: string) => ['--insecure-registry', reg.host, '--cgroup-parent', `${cg}/${n}`];
  for (const n of ['m1', 'w1']) await c.start(n, extra(n));
  t.match(c.nodes.get('m1')!.metricsAddr, /^127\.0\.0\.1:\d+$/, 'the ready line says where metrics are served');
  const r404 = await fetch(`http://${c.nodes.get('m1')!.metricsAddr}/nope`);
  t.equal(r404.status, 404, 'only /metrics is served');

  await ok('m1', 'init');
  const wt = (await ok('m1', 'join-token', 'worker', '-q')).trim();
  await ok('w1', 'join', '--token', wt, c.addr('m1'));
  await waitFor('the worker ready', async () => (await c.json('m1', 'node', 'ls')).every((r: any) => r.status === 'ready') && (await c.json('m1', 'node', 'ls')).length === 2, 120_000);

  const m0 = await scrape('m1');
  for (const f of [...MANAGER_FAMILIES, ...NODE_FAMILIES]) t.ok(m0.has(f), `manager serves ${f}`);
  const w0 = await scrape('w1');
  for (const f of NODE_FAMILIES) t.ok(w0.has(f), `worker serves ${f}`);
  t.notOk(w0.has('shoal_raft_commit_index') && sumOf(w0, 'shoal_raft_commit_index') > 0, 'a worker reports no raft index of its own');
  t.equal(sumOf(m0, 'shoal_raft_is_leader'), 1, 'the only manager leads');
  t.equal(sumOf(m0, 'shoal_dispatcher_sessions'), 2, 'two agent sessions (the manager runs an agent too)');
  t.equal(sumOf(m0, 'shoal_gossip_members', { state: 'alive' }), 2, 'two gossip members alive');
  t.ok(sumOf(m0, 'shoal_gossip_probe_rtt_seconds', {}, 'shoal_gossip_probe_rtt_seconds_count') > 0, 'gossip probes timed');
  t.ok(sumOf(m0, 'shoal_raft_wal_save_seconds', {}, 'shoal_raft_wal_save_seconds_count') > 0, 'WAL writes timed');

  await ok('m1', 'service', 'create', '--name', 'web', '--replicas', '2', '--constraint', 'node.role==worker', '--timeout', '5m', image, 'sleep', '1000000');
  const m1 = await scrape('m1');
  t.ok(sumOf(m1, 'shoal_raft_commit_index') > sumOf(m0, 'shoal_raft_commit_index'), 'the commit index moved');
  t.equal(sumOf(m1, 'shoal_raft_applied_index'), sumOf(m1, 'shoal_raft_commit_index'), 'and the store applied it');
  t.equal(sumOf(m1, 'shoal_store_objects', { kind: 'service' }), 1, 'one service in the store');
  t.ok(sumOf(m1, 'shoal_store_objects', { kind: 'task' }) >= 2, 'its tasks in the store');
  t.ok(sumOf(m1, 'shoal_reconcile_passes_total') > sumOf(m0, 'shoal_reconcile_passes_total'), 'reconcile passes counted');
  t.ok(sumOf(m1, 'shoal_leader_changes_committed_total') >= 2 + sumOf(m0, 'shoal_leader_changes_committed_total'), 'the leader committed its decisions (two tasks at least)');
  t.ok(sumOf(m1, 'shoal_raft_proposals_total', { result: 'committed' }) > sumOf(m0, 'shoal_raft_proposals_total', { result: 'committed' }), 'proposals counted by result');
  t.equal(sumOf(m1, 'shoal_scheduler_pending_tasks'), 0, 'nothing left pending');

  const w1 = await waitFor('the worker reporting two running tasks', async () => {
    const f = await scrape('w1');
    return sumOf(f, 'shoal_agent_tasks', { state: 'running' }) === 2 ? f : undefined;
  }, 60_000);
  t.pass('the worker reports two running tasks');
  t.equal(sumOf(w1, 'shoal_image_pull_duration_seconds', {}, 'shoal_image_pull_duration_seconds_count'), 1, 'one image pull, timed');
  t.ok(sumOf(w1, 'shoal_image_pull_bytes_total') > 100_000, `its bytes counted (${sumOf(w1, 'shoal_image_pull_bytes_total')})`);
  t.ok(sumOf(w1, 'shoal_cri_call_duration_seconds', { method: 'RunPodSandbox', result: 'ok' }, 'shoal_cri_call_duration_seconds_count') >= 2, 'CRI calls timed by method and result');
  t.ok(sumOf(w1, 'shoal_cri_call_duration_seconds', { method: 'StartContainer', result: 'ok' }, 'shoal_cri_call_duration_seconds_count') >= 2);

  // The same key figures without Prometheus.
  const ci = await c.json('m1', 'cluster', 'inspect');
  t.equal(ci.services, 1, 'cluster inspect: one service');
  t.equal(ci.tasks.running, 2, 'cluster inspect: two tasks running');
  t.equal(ci.members.alive, 2, 'cluster inspect: two nodes alive in gossip');
  t.equal(ci.managers[0].lag, 0, 'cluster inspect: the only manager has no lag');
  const table = await ok('m1', 'cluster', 'inspect');
  t.match(table, /Services: 1, tasks: running 2/, 'and in the table');
  const [wi] = await c.json('m1', 'node', 'inspect', 'w1');
  t.equal(wi.tasks.running, 2, 'node inspect: its tasks by state');
  t.equal(wi.gossip, 'alive', 'node inspect: its gossip state');

  // A worker hangs (stopped, its connections still open): gossip suspects it, and the dispatcher
  // ends its session when its heartbeats stop (a closed connection would end it at once instead).
  c.nodes.get('w1')!.proc!.kill('SIGSTOP');
  const m2 = await waitFor('the manager noticing the hung worker', async () => {
    const f = await scrape('m1');
    return sumOf(f, 'shoal_gossip_suspicions_total') > 0 && sumOf(f, 'shoal_dispatcher_heartbeats_missed_total') >= 1 ? f : undefined;
  }, 120_000);
  t.ok(sumOf(m2, 'shoal_gossip_suspicions_total') > 0, 'gossip suspected it');
  t.equal(sumOf(m2, 'shoal_dispatcher_heartbeats_missed_total'), 1, 'one session ended for missed heartbeats');
  t.equal(sumOf(m2, 'shoal_dispatcher_sessions'), 1, 'one session left');
  t.equal(sumOf(m2, 'shoal_gossip_members', { state: 'alive' }), 1, 'one member alive');
  const wid = (await c.json('m1', 'node', 'inspect', 'w1'))[0].id;
  const ended = c.nodes.get('m1')!.log.join('').split('\n').filter((l) => l.includes('dispatcher: session') && l.includes('ended')).join('\n');
  t.match(ended, new RegExp(`WARN  \\[m1\\] dispatcher: session \\S+ of node ${wid} ended: no heartbeat for \\d+ ms  nodeId=${wid}`), `the log line names the node in a field (JSON on shoald's pipe): ${ended}`);
  t.not((await c.json('m1', 'cluster', 'inspect')).members.alive, 2, 'cluster inspect: the worker no longer alive');
  await c.kill('w1');
});
