// A real cluster on loopback: shoald processes, the shoal CLI. 3 managers + 2 workers come up;
// the leader is killed (SIGKILL) and a new one takes over, the old one rejoins; a worker is
// promoted and a manager demoted; a demotion that would lose quorum is refused; a killed worker
// is marked down by gossip and comes back when restarted.
import t from 'tap';
import { call, controlClient } from '../cli/client.js';
import { TestCluster, waitFor } from './cluster-harness.js';

interface NodeRow {
  id: string;
  hostname: string;
  role: string;
  desiredRole: string;
  status: string;
  availability: string;
  addr: string;
  labels: Record<string, string>;
  managerStatus: null | { raftId: number; leader: boolean; reachability: string; voter: boolean };
}

const c = new TestCluster();
t.teardown(() => c.destroy());

const ls = (on: string) => c.json<NodeRow[]>(on, 'node', 'ls');

interface WireNode { hostname: string; manager_status: null | { leader: boolean; reachability: string } }

/**
 * Reads ListNodes on each of `on` (their local sockets) every 100 ms until each has named a leader
 * other than `dead` for 3 s (at most 60 s): how many such answers there were, and those that
 * showed `dead` reachable.
 */
async function watchReachability(on: string[], dead: string): Promise<{ answers: number; claims: string[] }> {
  const clients = on.map((h) => ({ h, c: controlClient({ stateDir: c.state(h) }), since: 0 }));
  const claims: string[] = [];
  let answers = 0;
  const end = Date.now() + 60_000;
  try {
    while (Date.now() < end && clients.some((x) => !x.since || Date.now() - x.since < 3000)) {
      await Promise.all(clients.map(async (x) => {
        const r = await call<{ nodes: WireNode[] }>(x.c, 'ListNodes', {}, 2000).catch(() => undefined);
        const leader = r?.nodes.find((n) => n.manager_status?.leader);
        if (!r || !leader || leader.hostname === dead) return;
        x.since ||= Date.now();
        answers++;
        const d = r.nodes.find((n) => n.hostname === dead);
        if (d?.manager_status?.reachability === 'reachable') claims.push(`${x.h} at +${Date.now() - x.since} ms: ${dead} reachable, ${leader.hostname} leader`);
      }));
      await new Promise((res) => setTimeout(res, 100));
    }
  } finally {
    for (const x of clients) x.c.close();
  }
  return { answers, claims };
}
const byHost = (rows: NodeRow[], h: string) => rows.find((r) => r.hostname === h)!;

t.test('3 managers and 2 workers join; node ls shows all five ready with their roles', async (t) => {
  for (const n of ['m1', 'm2', 'm3', 'w1', 'w2']) await c.start(n);
  const t0 = Date.now();
  const init = await c.cli('m1', 'init');
  t.equal(init.code, 0, init.stderr);
  t.match(init.stdout, new RegExp(`^    SHL-1-[0-9a-z]{50}-[0-9a-z]{25}$`, 'm'), 'init prints the worker token on a line of its own');
  t.match(init.stdout, new RegExp(`shoal join --token-file TOKEN_FILE 127\\.0\\.0\\.1:${c.nodes.get('m1')!.port}`), 'and the join command, with the token from a file, never on the command line');
  t.notMatch(init.stdout, /--token SHL/, 'never recommending --token on a command line');
  const mt = (await c.cli('m1', 'join-token', 'manager', '--quiet')).stdout.trim();
  const wt = (await c.cli('m1', 'join-token', 'worker', '--quiet')).stdout.trim();
  t.not(mt, wt, 'worker and manager tokens differ');
  t.equal(mt.split('-')[2], wt.split('-')[2], 'and share the CA digest');
  for (const n of ['m2', 'm3']) {
    const r = await c.cli(n, 'join', '--token', mt, c.addr('m1'));
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /as a manager/);
  }
  for (const n of ['w1', 'w2']) {
    const r = await c.cli(n, 'join', '--token', wt, c.addr(n === 'w1' ? 'm1' : 'm2'));
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /as a worker/);
  }
  const rows = await waitFor('all five nodes ready and all managers voters', async () => {
    const r = await ls('m2');
    if (r.length === 5 && r.every((x) => x.status === 'ready') && r.filter((x) => x.managerStatus?.voter).length === 3) return r;
    throw new Error(JSON.stringify(r.map((x) => [x.hostname, x.role, x.status, x.managerStatus?.voter])));
  });
  t.comment(`init + 4 joins until all five ready and three voters: ${Date.now() - t0} ms`);
  t.same(rows.map((r) => [r.hostname, r.role, r.availability]).sort(), [['m1', 'manager', 'active'], ['m2', 'manager', 'active'], ['m3', 'manager', 'active'], ['w1', 'worker', 'active'], ['w2', 'worker', 'active']]);
  t.equal(rows.filter((r) => r.managerStatus?.leader).length, 1, 'exactly one leader');
  t.equal(byHost(rows, 'w1').managerStatus, null, 'workers have no manager status');
  const table = await c.cli('m3', 'node', 'ls');
  t.match(table.stdout, /^ID\s+HOSTNAME\s+ROLE\s+STATUS\s+AVAILABILITY/m, 'table output by default');
  const ci = await c.json('m1', 'cluster', 'inspect');
  t.equal(ci.managers.length, 3);
  t.ok(ci.raft.commit > 0 && ci.raft.applied > 0, 'raft indexes shown');
  // Asked on a follower, cluster inspect is still the leader's view: only the leader tracks each
  // manager's progress (a follower's own view shows MATCH 0 for every manager).
  const leaderRow = rows.find((r) => r.managerStatus?.leader)!;
  const follower = rows.find((r) => r.managerStatus && !r.managerStatus.leader)!.hostname;
  const fci = await c.json(follower, 'cluster', 'inspect');
  t.equal(fci.answeredBy, leaderRow.id, `cluster inspect on the follower ${follower} is answered by the leader`);
  t.equal(fci.leader.hostname, leaderRow.hostname, 'and names the leader by hostname');
  t.ok(fci.managers.every((m: { match: number }) => m.match > 0), `every manager's MATCH is known: ${JSON.stringify(fci.managers.map((m: { hostname: string; match: number }) => [m.hostname, m.match]))}`);
  const text = await c.cli(follower, 'cluster', 'inspect');
  t.match(text.stdout, new RegExp(`^Leader: ${leaderRow.hostname} \\(${leaderRow.id}, raft \\d+\\)$`, 'm'), 'the table names the leader by hostname');
});

t.test('node update: availability and labels', async (t) => {
  const r = await c.cli('m2', 'node', 'update', '--availability', 'drain', '--label-add', 'zone=a', '--label-add', 'disk=ssd', 'w1');
  t.equal(r.code, 0, r.stderr);
  let w1 = byHost(await ls('m3'), 'w1');
  t.equal(w1.availability, 'drain');
  t.same(w1.labels, { zone: 'a', disk: 'ssd' });
  t.equal((await c.cli('m1', 'node', 'update', '--availability', 'active', '--label-rm', 'disk', 'w1')).code, 0);
  w1 = byHost(await ls('m1'), 'w1');
  t.equal(w1.availability, 'active');
  t.same(w1.labels, { zone: 'a' });
  const bad = await c.cli('m1', 'node', 'update', '--availability', 'sleeping', 'w1');
  t.equal(bad.code, 1);
  t.match(bad.stderr, /availability must be one of active, pause, drain/);
  const badRm = await c.cli('m1', 'node', 'update', '--label-rm', 'nope', 'w1');
  t.match(badRm.stderr, /has no label "nope"/);
  t.same(byHost(await ls('m1'), 'w1').labels, { zone: 'a' }, 'refused updates wrote nothing');
});

t.test('SIGKILL the leader: a new leader, node ls works, the old one rejoins', async (t) => {
  const rows = await ls('m1');
  const leader = rows.find((r) => r.managerStatus?.leader)!;
  const others = rows.filter((r) => r.managerStatus && !r.managerStatus.leader).map((r) => r.hostname);
  // Both survivors are asked for the node list every 100 ms from the kill on, until each has shown
  // a new leader for 3 s: no answer that names a new leader may show the dead one reachable (a new
  // leader's fresh progress for it, or a follower's gossip view, would for a few seconds).
  const watching = watchReachability(others, leader.hostname);
  await c.kill(leader.hostname);
  const t0 = Date.now();
  const after = await waitFor('a new leader', async () => {
    const r = await ls(others[0]!);
    const l = r.find((x) => x.managerStatus?.leader);
    return l && l.hostname !== leader.hostname && r;
  });
  t.comment(`new leader elected and answering node ls ${Date.now() - t0} ms after SIGKILL of ${leader.hostname}`);
  const seen = await watching;
  t.ok(seen.answers > 0, `${seen.answers} node lists naming a new leader were read on ${others.join(' and ')}`);
  t.same(seen.claims, [], `none of them showed the dead ${leader.hostname} reachable`);
  t.equal(after.length, 5, 'node ls through the new leader lists every node');
  await c.start(leader.hostname);
  await waitFor(`${leader.hostname} back as a reachable voter`, async () => {
    const r = byHost(await ls(others[1]!), leader.hostname);
    return r.status === 'ready' && r.managerStatus?.voter && r.managerStatus.reachability === 'reachable';
  });
  const fromOld = await waitFor('node ls on the restarted manager', async () => (await ls(leader.hostname)).length === 5);
  t.ok(fromOld, 'the restarted manager serves node ls again');
});

let asker = 'm1'; // a manager that stays up, to run the CLI on

t.test('promote a worker; demote the leader (it hands leadership over first)', async (t) => {
  const p = await c.cli('m1', 'node', 'promote', 'w1');
  t.equal(p.code, 0, p.stderr);
  await waitFor('w1 a voting manager', async () => {
    const r = byHost(await ls('m2'), 'w1');
    return r.role === 'manager' && r.managerStatus?.voter;
  });
  t.pass('w1 renewed its certificate as a manager and joined raft');
  t.equal((await ls('w1')).length, 5, 'the promoted node serves the control API on its socket');
  const rows = await ls('w1');
  const leader = rows.find((r) => r.managerStatus?.leader)!.hostname;
  asker = ['m1', 'm2', 'm3'].find((h) => h !== leader)!;
  // Asked on a follower: forwarded to the leader, which is the node being demoted.
  const d = await c.cli(asker, 'node', 'demote', leader);
  t.equal(d.code, 0, d.stderr);
  await waitFor(`${leader} a worker`, async () => {
    const r = byHost(await ls(asker), leader);
    return r.role === 'worker' && r.managerStatus === null;
  });
  const after = await ls(asker);
  const newLeader = after.find((r) => r.managerStatus?.leader);
  t.ok(newLeader && newLeader.hostname !== leader, `leadership moved to ${newLeader?.hostname}`);
  const ci = await c.json(asker, 'cluster', 'inspect');
  t.same(ci.managers.map((m: { hostname: string }) => m.hostname).sort(), ['m1', 'm2', 'm3', 'w1'].filter((h) => h !== leader).sort());
  const onWorker = await c.cli(leader, 'node', 'ls');
  t.equal(onWorker.code, 1);
  t.match(onWorker.stderr, /is a worker/, 'the demoted node no longer serves the control API');

  // Promoted again: a new membership with a fresh raft id (raft never re-admits a removed id);
  // promote answers once it is a voter.
  const oldRaftId = byHost(rows, leader).managerStatus!.raftId;
  const again = await c.cli(asker, 'node', 'promote', leader);
  t.equal(again.code, 0, again.stderr);
  await waitFor(`${leader} a voter again`, async () => byHost(await ls(asker), leader).managerStatus?.voter);
  const ci2 = await c.json(asker, 'cluster', 'inspect');
  const back = ci2.managers.find((m: { hostname: string }) => m.hostname === leader);
  t.ok(back?.voter, `${leader} is a voter again`);
  t.not(back?.raftId, oldRaftId, `under a new raft id (${oldRaftId} -> ${back?.raftId})`);
  t.equal(ci2.managers.filter((m: { voter: boolean }) => m.voter).length, 4, 'four voters: no fault tolerance lost');
  // Back to three managers for the next test.
  t.equal((await c.cli(asker, 'node', 'demote', leader)).code, 0);
  await waitFor(`${leader} a worker again`, async () => byHost(await ls(asker), leader).managerStatus === null);
});

t.test('a demotion that would lose quorum is refused', async (t) => {
  // Three managers remain (two of m1..m3, and w1). Kill the one that is not `asker`: two of
  // three remain; demoting w1 would leave one reachable manager out of two.
  const mgrs = (await ls(asker)).filter((r) => r.managerStatus).map((r) => r.hostname);
  const victim = mgrs.find((h) => h !== asker && h !== 'w1')!;
  await c.kill(victim);
  // Unreachable, and a leader in place (the victim may have been the leader: wait for the election).
  await waitFor(`${victim} unreachable and a leader elected`, async () => {
    const rows = await ls(asker);
    return byHost(rows, victim).managerStatus?.reachability === 'unreachable' && rows.some((r) => r.managerStatus?.leader && r.hostname !== victim);
  });
  const before = await ls(asker);
  const r = await c.cli(asker, 'node', 'demote', 'w1');
  t.equal(r.code, 1);
  t.match(r.stderr, /cannot demote w1 .*would lose quorum: 2 manager\(s\) would remain, 1 of them reachable, and raft needs 2/);
  const after = await ls(asker);
  t.same(after.map((x) => [x.id, x.role, x.desiredRole]), before.map((x) => [x.id, x.role, x.desiredRole]), 'nothing changed');
  await c.start(victim);
  await waitFor(`${victim} reachable again`, async () => byHost(await ls(asker), victim).managerStatus?.reachability === 'reachable');
});

t.test('kill -9 a worker: managers mark it down; back when restarted', async (t) => {
  await waitFor('w2 ready', async () => byHost(await ls(asker), 'w2').status === 'ready');
  await c.kill('w2');
  const t0 = Date.now();
  await waitFor('w2 down', async () => byHost(await ls(asker), 'w2').status === 'down', 60_000, 100);
  const ms = Date.now() - t0;
  t.comment(`worker death -> node down: ${ms} ms (gossip LAN preset)`);
  const row = byHost(await ls('w1'), 'w2');
  t.equal(row.status, 'down', 'another manager sees it down too');
  // Promoting a node that is down must not claim success nor cost fault tolerance: it says the
  // node is not in raft yet, the voters stay as they were, and the node joins raft when it returns.
  const voters = async () => (await c.json(asker, 'cluster', 'inspect')).managers.filter((m: { voter: boolean }) => m.voter).length;
  const before = await voters();
  const p = await c.cli(asker, 'node', 'promote', 'w2');
  t.equal(p.code, 0, p.stderr);
  t.match(p.stdout, /Node w2 \(\S+\) promoted to manager; it is not in raft yet \(is it running\?\): "shoal cluster inspect" shows when it becomes a voter/, 'promote of a down node says it is not in raft yet');
  t.equal(await voters(), before, 'the voters are unchanged while it is down');
  await c.start('w2');
  await waitFor('w2 ready again', async () => byHost(await ls(asker), 'w2').status === 'ready');
  t.pass('w2 is ready again');
  await waitFor('w2 a voter once it is back', async () => byHost(await ls(asker), 'w2').managerStatus?.voter === true, 120_000);
  t.equal(await voters(), before + 1, 'one voter more');
});
