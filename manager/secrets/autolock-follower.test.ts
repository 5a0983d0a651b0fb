// Autolock on one real manager (raft store on disk, single voter): a cluster from before sealed CA
// keys (its key in clear in the cluster object) is migrated by the leader without losing the key
// or the join tokens; then UpdateCluster / GetUnlockKey turn autolock on, rotate and off, and the
// manager's data key file follows each change through the store's watch.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../node/ports.js';
import { newClusterObject } from '../ca/cluster-init.js';
import { createKeyAndCSR, createRootCA, issueNodeCertificate } from '../ca/pki.js';
import { unseal } from '../ca/seal.js';
import { Manager } from '../control/manager.js';
import type { ClusterObject, ClusterSpec } from '../control/model.js';
import { AutolockFollower } from './autolock.js';
import { autolockTable } from './autolock-control.js';
import { DataKey, loadDataKey, readDataKeyFile, saveDataKey } from './datakey.js';
import { DataKeyKeeper } from './keeper.js';
import { UnlockKey } from './unlock-key.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-autolock-follower-${process.pid}-`));
const lines: string[] = [];
const log = (m: string) => void lines.push(m);
const ca = await createRootCA('cl');
const { keyPem, csrPem } = await createKeyAndCSR();
const id = { caPem: ca.certPem, certPem: (await issueNodeCertificate({ ca, csrPem, nodeId: 'ma', role: 'manager', clusterId: 'cl' })).certPem, keyPem };
const port = await freePort('127.0.0.1');
const mgr = new Manager({ stateDir: dir, nodeId: 'ma', clusterId: 'cl', raftListen: `127.0.0.1:${port}`, raftAdvertise: `127.0.0.1:${port}`, apiAddr: '', tls: () => id, gossip: () => undefined, bootstrap: true, log });
await mgr.start();
const dk = DataKey.generate();
saveDataKey(dir, dk);
const keeper = new DataKeyKeeper({ stateDir: dir, managers: () => [], tls: () => id, log });
keeper.start();
mgr.dataKey = () => keeper.key();
const follower = new AutolockFollower(mgr, { stateDir: dir, dataKey: () => keeper.peek(), log, everyMs: 60_000 });
t.teardown(async () => {
  follower.stop();
  keeper.stop();
  await mgr.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function waitFor<T>(what: string, f: () => T | undefined | false, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const ctx = { identity: { nodeId: 'ma', role: 'manager' as const, clusterId: 'cl', local: true }, metadata: undefined as never, peer: 'test' };
const api = autolockTable(mgr, keeper, log);
const call = (m: string, req: unknown) => api[m]!.unary!(req, ctx as never) as Promise<any>;

t.test('a clear CA key from an earlier version is sealed by the leader; nothing is lost', async (t) => {
  await mgr.waitLeader(15_000);
  const fresh = newClusterObject('cl', ca, dk);
  const spec = fresh.spec as ClusterSpec;
  const legacy = { ...fresh, spec: { ...spec, ca: { certPem: ca.certPem, keyPem: ca.keyPem } } };
  const workerToken = unseal(ca.keyPem, spec.tokens.worker.sealed);
  await mgr.raft.propose([{ op: 'create', object: legacy }]);
  t.equal(mgr.cluster()!.spec.ca.keyPem, ca.keyPem, 'the store starts with the key in clear (as an older cluster has it)');
  follower.start();
  const c = await waitFor('the CA key sealed', () => (mgr.cluster()?.spec.ca.keySealed ? mgr.cluster() : undefined));
  t.equal(c.spec.ca.keyPem, undefined, 'no clear key left in the cluster object');
  t.equal(mgr.rootCA(c).keyPem, ca.keyPem, 'the sealed key opens to the same CA key');
  t.equal(unseal(mgr.rootCA(c).keyPem, c.spec.tokens.worker.sealed), workerToken, 'the join tokens still open');
  t.equal(c.spec.gossipKey, spec.gossipKey, 'the rest of the cluster object is kept');
  t.ok(lines.some((l) => /the CA key was in clear in the store .* sealed under the data key now/.test(l)), 'the migration is logged');
});

t.test('autolock on, rotated, off: the data key file follows the cluster object', async (t) => {
  await t.rejects(call('GetUnlockKey', {}), /autolock is off, so there is no unlock key: turn it on with "shoal cluster update --autolock=true"/, 'no key while off');
  t.same(await call('UpdateCluster', {}), { autolock: false, unlock_key: '', changed: false }, 'no field: nothing changes');
  const on = await call('UpdateCluster', { autolock: true });
  t.equal(on.changed, true);
  const k1 = UnlockKey.parse(on.unlock_key);
  await waitFor('sealed under the first key', () => {
    const f = readDataKeyFile(dir);
    return f.state === 'locked' && f.unlockKeyId === k1.id;
  });
  t.same(loadDataKey(dir, k1)!.key, dk.key, 'the printed key opens the file');
  t.equal((await call('GetUnlockKey', {})).unlock_key, on.unlock_key, 'GetUnlockKey shows it');
  t.equal((await call('UpdateCluster', { autolock: true })).unlock_key, '', 'on again: no new key');
  const rot = await call('GetUnlockKey', { rotate: true });
  const k2 = UnlockKey.parse(rot.unlock_key);
  t.not(k2.id, k1.id);
  await waitFor('re-sealed under the rotated key', () => {
    const f = readDataKeyFile(dir);
    return f.state === 'locked' && f.unlockKeyId === k2.id;
  });
  t.throws(() => loadDataKey(dir, k1), /wrong unlock key/, 'the old key no longer opens it');
  const c = mgr.cluster() as ClusterObject;
  t.notOk(JSON.stringify(c.spec).includes(k2.key.toString('base64')) || JSON.stringify(c.spec).includes(rot.unlock_key), 'the store holds the unlock key only sealed');
  const off = await call('UpdateCluster', { autolock: false });
  t.same(off, { autolock: false, unlock_key: '', changed: true });
  await waitFor('unsealed again', () => readDataKeyFile(dir).state === 'plain');
  t.same(loadDataKey(dir)!.key, dk.key, 'the same data key, nothing lost');
  t.notOk(lines.some((l) => l.includes(on.unlock_key) || l.includes(rot.unlock_key)), 'no unlock key is logged');
});
