// Real shoald processes: three managers with 60 s certificates keep raft running past the expiry
// of their first certificates. A follower killed then restarted must catch up through new raft
// connections in both directions, which TLS accepts only with the renewed certificates: the
// leader's peer client towards it must have been rebuilt after each renewal (Manager.updateTls).
import t from 'tap';
import { TestCluster, waitFor } from '../../test/cluster-harness.js';

interface Row {
  hostname: string;
  certSerial: string;
  certNotAfter: string | null;
  status: string;
  labels: Record<string, string>;
  managerStatus: null | { leader: boolean; voter: boolean; reachability: string };
}

const c = new TestCluster();
t.teardown(() => c.destroy());
const ls = (on: string) => c.json<Row[]>(on, 'node', 'ls');

t.test('raft between managers survives certificate renewal and the first certificates expiring', async (t) => {
  for (const n of ['r1', 'r2', 'r3']) await c.start(n);
  // 60 s, not less: on a loaded machine a join has taken over 10 s and a restart over 20 s; a
  // certificate that expires before its node is up again tests the load, not the renewal.
  const init = await c.cli('r1', 'init', '--cert-expiry', '60s');
  t.equal(init.code, 0, init.stderr);
  const mt = (await c.cli('r1', 'join-token', 'manager', '--quiet')).stdout.trim();
  for (const n of ['r2', 'r3']) {
    const j = await c.cli(n, 'join', '--token', mt, c.addr('r1'));
    t.equal(j.code, 0, `${n} joins: ${j.stderr}`);
  }
  const first = await waitFor('three ready voters', async () => {
    const r = await ls('r1');
    return r.length === 3 && r.every((x) => x.status === 'ready' && x.managerStatus?.voter) && r;
  }, 120_000);
  const serial0 = new Map(first.map((r) => [r.hostname, r.certSerial]));
  const expiry0 = Math.max(...first.map((r) => Date.parse(r.certNotAfter ?? '')));
  t.ok(expiry0 > Date.now(), 'first certificates still valid');
  await waitFor('every manager renewed and the first certificates expired', async () => {
    const r = await ls('r1');
    return Date.now() > expiry0 + 1000 && r.every((x) => x.certSerial !== serial0.get(x.hostname));
  }, 180_000, 500);
  t.pass('all three renewed; the first certificates have expired');

  const rows = await ls('r1');
  const leader = rows.find((r) => r.managerStatus?.leader)!.hostname;
  const follower = rows.find((r) => !r.managerStatus?.leader)!.hostname;
  await c.kill(follower);
  const w = await c.cli(leader, 'node', 'update', '--label-add', 'renewed=yes', leader);
  t.equal(w.code, 0, `a write commits on the two remaining managers: ${w.stderr}`);
  await c.start(follower);
  const seen = await waitFor(`${follower} restarted and caught up`, async () => {
    const r = await ls(follower);
    return r.find((x) => x.hostname === leader)?.labels.renewed === 'yes' && r;
  }, 120_000);
  t.ok(seen, `the restarted ${follower} sees the write made while it was down`);
  await waitFor(`${follower} a reachable voter again`, async () => {
    const x = (await ls(leader)).find((r) => r.hostname === follower);
    return x?.status === 'ready' && x.managerStatus?.voter && x.managerStatus.reachability === 'reachable';
  });
  t.pass(`${follower} reachable from the leader again`);
});
