// A manager's reachability as a new leader reports it (node ls, cluster inspect, the quorum check
// of a demotion): three in-process managers on one raft group over real mTLS; the leader stops;
// from the moment another becomes leader, it must never show the stopped one reachable. (A new
// leader starts every peer's raft progress afresh, "recently active", so for up to an election
// timeout it claimed a manager that had just died was reachable.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort } from '../../node/ports.js';
import { writeDurable } from '../../node/state.js';
import { createKeyAndCSR, createRootCA, issueNodeCertificate } from '../ca/pki.js';
import type { TlsIdentity } from '../security/credentials.js';
import { Manager } from './manager.js';
import { raftIdOf } from './model.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-reach-${process.pid}-`));
const ca = await createRootCA('cl');
const names = ['ra', 'rb', 'rc'];
const ids = new Map<string, TlsIdentity>();
for (const n of names) {
  const { keyPem, csrPem } = await createKeyAndCSR();
  ids.set(n, { caPem: ca.certPem, certPem: (await issueNodeCertificate({ ca, csrPem, nodeId: n, role: 'manager', clusterId: 'cl' })).certPem, keyPem });
}
const ports = new Map<string, number>();
for (const n of names) ports.set(n, await freePort('127.0.0.1'));
const members = names.map((n) => [raftIdOf(n), { raft: `127.0.0.1:${ports.get(n)}`, api: '' }]);
const log = (m: string) => (process.env.SHOAL_TEST_LOG ? process.stderr.write(m + '\n') : undefined);

const mgrs = new Map<string, Manager>();
for (const n of names) {
  const stateDir = join(dir, n);
  writeDurable(join(stateDir, 'raft-members.json'), JSON.stringify(members));
  const mgr = new Manager({ stateDir, nodeId: n, clusterId: 'cl', raftListen: `127.0.0.1:${ports.get(n)}`, raftAdvertise: `127.0.0.1:${ports.get(n)}`, apiAddr: '', tls: () => ids.get(n)!, gossip: () => undefined, bootstrap: true, voters: names.map(raftIdOf), log });
  await mgr.start();
  mgrs.set(n, mgr);
}
t.teardown(async () => {
  for (const m of mgrs.values()) await m.stop().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a new leader never shows the manager that just died reachable', async (t) => {
  let leader: string | undefined;
  for (const end = Date.now() + 30_000; !leader && Date.now() < end; await sleep(50)) leader = names.find((n) => mgrs.get(n)!.raft.isLeader());
  t.ok(leader, `a leader: ${leader}`);
  const others = names.filter((n) => n !== leader);
  // Every manager has answered the leader: all reachable in its view.
  for (const end = Date.now() + 10_000; Date.now() < end; await sleep(50)) {
    if (others.every((n) => mgrs.get(leader!)!.reachability(raftIdOf(n)) === 'reachable')) break;
  }
  t.ok(others.every((n) => mgrs.get(leader!)!.reachability(raftIdOf(n)) === 'reachable'), 'before: the leader sees the others reachable');

  const dead = raftIdOf(leader!);
  await mgrs.get(leader!)!.stop();
  mgrs.delete(leader!);
  // Sample every few ms from the first moment either survivor leads, for 3 s.
  const claims: string[] = [];
  let since = 0;
  let samples = 0;
  let newLeader = '';
  for (const end = Date.now() + 30_000; Date.now() < end && (!since || Date.now() - since < 3000); await sleep(5)) {
    for (const n of others) {
      const m = mgrs.get(n)!;
      if (!m.raft.isLeader()) continue;
      since ||= Date.now();
      newLeader = n;
      samples++;
      const r = m.reachability(dead);
      if (r === 'reachable') claims.push(`${n} at +${Date.now() - since} ms`);
    }
  }
  t.ok(since > 0, `a new leader, ${newLeader}; ${samples} samples of its view`);
  t.same(claims, [], `it never showed the stopped ${leader} reachable`);
  const alive = others.find((n) => n !== newLeader)!;
  t.equal(mgrs.get(newLeader)!.reachability(raftIdOf(alive)), 'reachable', `and shows the live ${alive} reachable once it answered`);
});
