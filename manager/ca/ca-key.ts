// The CA's signing key as the replicated store keeps it: sealed under the secrets data key
// (secrets/datakey.ts), bound to the cluster id, so the raft log, the WAL, the snapshots and
// backups hold only ciphertext, and with autolock on a manager's disk alone cannot open it (the
// data key file is then sealed under the unlock key). Clusters from before this kept the key in
// clear (`keyPem`): they read as before until the leader re-seals it (migrateCAKey).
import type { ClusterObject, ClusterSpec } from '../control/model.js';
import type { DataKey } from '../secrets/datakey.js';
import type { RootCA } from './pki.js';

export function caKeyAad(clusterId: string): string {
  return `shoal ca key ${clusterId}`;
}

export function sealCAKey(dk: DataKey, clusterId: string, keyPem: string): string {
  return dk.seal(Buffer.from(keyPem, 'utf8'), caKeyAad(clusterId)).toString('base64');
}

/** The CA with its key opened; `dataKey` throws (UNAVAILABLE) where this manager lacks the key. */
export function rootCA(c: ClusterObject, dataKey: () => DataKey): RootCA {
  const ca = c.spec.ca;
  if (ca.keySealed) return { certPem: ca.certPem, keyPem: dataKey().open(Buffer.from(ca.keySealed, 'base64'), caKeyAad(c.id)).toString('utf8') };
  if (ca.keyPem) return { certPem: ca.certPem, keyPem: ca.keyPem };
  throw new Error(`cluster ${c.id} holds no CA key`);
}

/** The spec with a clear CA key sealed instead, or undefined when it is sealed already. */
export function migrateCAKey(c: ClusterObject, dk: DataKey): ClusterSpec | undefined {
  const ca = c.spec.ca;
  if (!ca.keyPem) return undefined;
  return { ...c.spec, ca: { certPem: ca.certPem, keySealed: sealCAKey(dk, c.id, ca.keyPem) } };
}
