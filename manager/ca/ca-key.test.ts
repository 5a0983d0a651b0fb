// The CA key in the store: sealed under the data key from `init` on (never in clear in the cluster
// object, so never in the raft log, WAL, snapshots or backups), opened only with that key and for
// that cluster; a cluster from before (clear key) still reads and migrates without losing it.
import t from 'tap';
import { encodeSnapshot } from '../store/codec.js';
import { DataKey } from '../secrets/datakey.js';
import type { ClusterObject } from '../control/model.js';
import { newClusterObject } from './cluster-init.js';
import { migrateCAKey, rootCA } from './ca-key.js';
import { createRootCA } from './pki.js';
import { unseal } from './seal.js';

const asObject = (o: ReturnType<typeof newClusterObject>): ClusterObject => ({ ...o, labels: {}, version: 3, createdVersion: 1 }) as unknown as ClusterObject;

function pemBody(pem: string): string {
  return pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
}

t.test('a new cluster object holds the CA key sealed, never in clear', async (t) => {
  const ca = await createRootCA('cl1');
  const dk = DataKey.generate();
  const c = asObject(newClusterObject('cl1', ca, dk));
  t.equal(c.spec.ca.keyPem, undefined, 'no clear key');
  const bytes = Buffer.from(encodeSnapshot({ applied: 1, objects: [c as never] }));
  const der = Buffer.from(pemBody(ca.keyPem), 'base64');
  t.notOk(bytes.includes(der), 'the encoded store holds no DER of the key');
  t.notOk(bytes.includes(Buffer.from(pemBody(ca.keyPem).slice(0, 40))), 'nor its PEM body');
  t.equal(rootCA(c, () => dk).keyPem, ca.keyPem, 'the data key opens it');
  t.equal(unseal(rootCA(c, () => dk).keyPem, c.spec.tokens.worker.sealed).slice(0, 6), 'SHL-1-', 'and with it the join tokens');
  t.throws(() => rootCA(c, () => DataKey.generate()), /sealed with data key .* but this manager holds data key/, 'another data key: refused, naming both');
  t.throws(() => rootCA({ ...c, id: 'cl2' } as ClusterObject, () => dk), /does not authenticate/, 'bound to its cluster id');
  t.throws(() => rootCA(c, () => { throw new Error('no data key yet'); }), /no data key yet/, 'without the data key: the keeper\'s error');
});

t.test('a cluster from before (CA key in clear) reads as before and migrates', async (t) => {
  const ca = await createRootCA('old');
  const dk = DataKey.generate();
  const fresh = asObject(newClusterObject('old', ca, dk));
  const legacy = { ...fresh, spec: { ...fresh.spec, ca: { certPem: ca.certPem, keyPem: ca.keyPem } } } as ClusterObject;
  t.equal(rootCA(legacy, () => { throw new Error('not needed'); }).keyPem, ca.keyPem, 'the clear key is read without the data key');
  const spec = migrateCAKey(legacy, dk)!;
  t.ok(spec, 'a migration is due');
  t.equal(spec.ca.keyPem, undefined, 'the migrated spec holds no clear key');
  const migrated = { ...legacy, spec } as ClusterObject;
  t.equal(rootCA(migrated, () => dk).keyPem, ca.keyPem, 'and opens to the same key: nothing lost');
  t.same(spec.tokens, legacy.spec.tokens, 'tokens, gossip key and the rest are kept');
  t.equal(spec.gossipKey, legacy.spec.gossipKey);
  t.equal(migrateCAKey(migrated, dk), undefined, 'a sealed key needs no migration');
});
