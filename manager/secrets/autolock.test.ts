// A manager's data key file follows the cluster object: sealed under the cluster's unlock key while
// autolock is on (re-sealed when the key is rotated), in clear when it is off, and left alone until
// the manager holds the cluster object.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClusterObject } from '../control/model.js';
import { clusterUnlockKey, sealUnlockKey, syncDataKeyFile } from './autolock.js';
import { DataKey, keyPath, loadDataKey, readDataKeyFile } from './datakey.js';
import { UnlockKey } from './unlock-key.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-autolock-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const lines: string[] = [];
const log = (m: string) => void lines.push(m);

const cluster = (autolock?: ClusterObject['spec']['autolock']): ClusterObject => ({ kind: 'cluster', id: 'c1', name: 'default', labels: {}, version: 1, createdVersion: 1, spec: { ca: { certPem: '' }, tokens: {} as never, gossipKey: '', certDays: 90, removed: {}, ...(autolock ? { autolock } : {}) }, status: null }) as unknown as ClusterObject;

t.test('on, rotated, off', async (t) => {
  const dk = DataKey.generate();
  t.equal(syncDataKeyFile(dir, dk, undefined, log), undefined, 'no cluster object yet: nothing written');
  t.equal(readDataKeyFile(dir).state, 'absent');
  t.equal(syncDataKeyFile(dir, dk, cluster(), log), 'plain', 'autolock off: the key in clear');
  t.equal(syncDataKeyFile(dir, dk, cluster(), log), undefined, 'already so: not rewritten');

  const uk1 = UnlockKey.generate();
  const on = cluster(sealUnlockKey(dk, 'c1', uk1));
  t.same(clusterUnlockKey(on, dk)!.key, uk1.key, 'the cluster object gives the unlock key back to a holder of the data key');
  t.throws(() => clusterUnlockKey(on, DataKey.generate()), /sealed with data key/, 'and to no one else');
  t.equal(syncDataKeyFile(dir, dk, on, log), 'sealed', 'autolock on: sealed');
  const f = readDataKeyFile(dir);
  t.ok(f.state === 'locked' && f.unlockKeyId === uk1.id, 'under the cluster\'s unlock key');
  t.notOk(readFileSync(keyPath(dir)).includes(Buffer.from(dk.key.toString('base64'))), 'the data key is not in the file in clear');
  t.same(loadDataKey(dir, uk1)!.key, dk.key, 'the unlock key opens it');
  t.equal(syncDataKeyFile(dir, dk, on, log), undefined, 'already so: not rewritten');

  const uk2 = UnlockKey.generate();
  t.equal(syncDataKeyFile(dir, dk, cluster(sealUnlockKey(dk, 'c1', uk2)), log), 'sealed', 'rotated: sealed again');
  t.throws(() => loadDataKey(dir, uk1), /wrong unlock key/, 'the old key no longer opens it');
  t.same(loadDataKey(dir, uk2)!.key, dk.key, 'the new one does');

  t.equal(syncDataKeyFile(dir, dk, cluster(), log), 'plain', 'autolock off again: in clear');
  t.same(loadDataKey(dir)!.key, dk.key);
  t.notOk(lines.some((l) => l.includes(uk1.toString()) || l.includes(uk2.toString()) || l.includes(dk.key.toString('base64'))), 'no key is ever logged');
});
