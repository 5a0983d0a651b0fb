// What `shoal init` writes into the new raft group: the cluster object (CA, join tokens, gossip
// key) and the first manager's node object.
import { randomBytes } from 'node:crypto';
import type { ObjectInput } from '../store/types.js';
import type { ClusterSpec, NodeSpec, NodeStatus, TokenRecord } from '../control/model.js';
import { certInfo, type RootCA } from './pki.js';
import { seal } from './seal.js';
import { sealCAKey } from './ca-key.js';
import type { DataKey } from '../secrets/datakey.js';
import { hashSecret, makeToken, newSecret } from './tokens.js';

export function tokenRecord(ca: RootCA): { token: string; record: TokenRecord } {
  const secret = newSecret();
  const token = makeToken(ca.certPem, secret);
  return { token, record: { hash: hashSecret(secret), sealed: seal(ca.keyPem, token) } };
}

/** The CA key goes into the store sealed under the data key, never in clear. */
export function newClusterObject(clusterId: string, ca: RootCA, dataKey: DataKey, certSeconds?: number): ObjectInput {
  const spec: ClusterSpec = {
    ca: { certPem: ca.certPem, keySealed: sealCAKey(dataKey, clusterId, ca.keyPem) },
    tokens: { worker: tokenRecord(ca).record, manager: tokenRecord(ca).record },
    gossipKey: randomBytes(32).toString('base64'),
    certDays: 90,
    ...(certSeconds ? { certSeconds } : {}),
    removed: {},
  };
  return { kind: 'cluster', id: clusterId, name: 'default', spec, status: null };
}

export function newNodeObject(p: { nodeId: string; role: 'manager' | 'worker'; hostname: string; addr: string; certPem: string; raft?: { id: number; addr: string } }): ObjectInput {
  const info = certInfo(p.certPem);
  const spec: NodeSpec = { desiredRole: p.role, availability: 'active' };
  const status: NodeStatus = {
    role: p.role,
    state: 'unknown',
    message: '',
    hostname: p.hostname,
    addr: p.addr,
    gossipAddr: '',
    certSerial: info.serial,
    certNotAfter: info.notAfter,
    certPem: p.certPem,
    ...(p.raft ? { raft: p.raft } : {}),
  };
  return { kind: 'node', id: p.nodeId, name: p.nodeId, spec, status };
}
