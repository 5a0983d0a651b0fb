// The CA service on every manager: the bootstrap calls (CA bundle, CSR + token, certificate
// status) and renewal. Any manager can issue: the CA key lives in the replicated cluster object.
import { randomBytes } from 'node:crypto';
import type { MethodSpec } from '../security/authz.js';
import { denied, invalid, notFound, unavailable } from '../security/errors.js';
import { nodeInput, type ClusterObject } from '../control/model.js';
import { updateNode, type Manager } from '../control/manager.js';
import { newNodeObject } from './cluster-init.js';
import { BadCSRError, issueNodeCertificate, type Role } from './pki.js';
import { BadTokenError, caDigest, parseToken, secretMatches } from './tokens.js';

function newNodeId(): string {
  return BigInt('0x' + randomBytes(16).toString('hex')).toString(36).padStart(25, '0');
}

function str(b: unknown): string {
  return Buffer.isBuffer(b) ? b.toString('utf8') : String(b ?? '');
}

export function caTable(mgr: Manager, log: (m: string) => void): Record<string, MethodSpec> {
  const cluster = (): ClusterObject => {
    const c = mgr.cluster();
    if (!c) throw unavailable('this manager has not loaded the cluster yet; retry');
    return c;
  };
  const sign = async (csr: string, nodeId: string, role: Role) => {
    const c = cluster();
    try {
      return await issueNodeCertificate({ ca: mgr.rootCA(c), csrPem: csr, nodeId, role, clusterId: c.id, days: c.spec.certDays, seconds: c.spec.certSeconds });
    } catch (e) {
      if (e instanceof BadCSRError) throw invalid(e.message);
      throw e;
    }
  };
  return {
    GetCACertificate: {
      roles: 'bootstrap',
      unary: async () => ({ ca_bundle: Buffer.from(cluster().spec.ca.certPem) }),
    },
    IssueNodeCertificate: {
      roles: 'bootstrap',
      unary: async (req: { csr: Buffer; token: string; hostname: string; addr: string }) => {
        const c = cluster();
        let t;
        try {
          t = parseToken(req.token ?? '');
        } catch (e) {
          if (e instanceof BadTokenError) throw invalid(e.message);
          throw e;
        }
        const ours = caDigest(c.spec.ca.certPem);
        if (t.digest !== ours) throw denied(`the join token was made for another CA (digest ${t.digest}); this cluster's CA digest is ${ours}: get a token from this cluster with "shoal join-token"`);
        let role: Role | undefined;
        if (secretMatches(t.secret, c.spec.tokens.manager.hash)) role = 'manager';
        else if (secretMatches(t.secret, c.spec.tokens.worker.hash)) role = 'worker';
        if (!role) throw denied('the join token\'s secret is not valid for this cluster (wrong or rotated token): get the current one with "shoal join-token worker|manager" on a manager');
        const hostname = String(req.hostname ?? '').slice(0, 253);
        if (!hostname) throw invalid('IssueNodeCertificate needs the joiner\'s hostname');
        const nodeId = newNodeId();
        const cert = await sign(str(req.csr), nodeId, role);
        await mgr.raft.propose([{ op: 'create', object: newNodeObject({ nodeId, role, hostname, addr: String(req.addr ?? ''), certPem: cert.certPem }) }]);
        log(`ca: issued a ${role} certificate to new node ${nodeId} (${hostname})`);
        const managerAddrs = mgr.nodes().filter((n) => n.status.raft && n.status.role === 'manager' && n.status.addr).map((n) => n.status.addr);
        return { node_id: nodeId, manager_addrs: managerAddrs };
      },
    },
    NodeCertificateStatus: {
      roles: 'bootstrap',
      unary: async (req: { node_id: string }) => {
        await mgr.raft.linearizableRead();
        const n = mgr.node(String(req.node_id ?? ''));
        if (!n) throw notFound(`node ${req.node_id} has no certificate request here`);
        if (!n.status.certPem) return { state: 'pending' };
        return { state: 'issued', certificate: Buffer.from(n.status.certPem), role: n.status.role, cluster_id: cluster().id };
      },
    },
    RenewNodeCertificate: {
      roles: ['manager', 'worker'],
      unary: async (req: { csr: Buffer }, ctx) => {
        const id = ctx.identity!;
        const n = mgr.node(id.nodeId);
        if (!n) throw denied(`node ${id.nodeId} is not a member of this cluster`);
        // The role comes from the node object: this is how promote/demote reach the node.
        const role = n.spec.desiredRole;
        // A node may only become a manager-role certificate holder after raft removal on demote,
        // which the control API orders; here we just issue what the node object says.
        const cert = await sign(str(req.csr), n.id, role);
        await updateNode(mgr, n.id, (fresh) => nodeInput(fresh, { status: { role, certPem: cert.certPem, certSerial: cert.serial, certNotAfter: cert.notAfter, ...(role === 'worker' ? { raft: undefined } : {}) } }));
        log(`ca: renewed node ${n.id}'s certificate as ${role}`);
        return { certificate: Buffer.from(cert.certPem), role };
      },
    },
  };
}
