// The joiner's side of `shoal join`: fetch the CA bundle without trusting the server, pin it by
// the digest in the token, generate the key here, send a CSR with the token over TLS to the now
// pinned manager, and poll until the certificate is issued.
import * as grpc from '@grpc/grpc-js';
import { createKeyAndCSR, verifyNodeCert, type Role } from '../manager/ca/pki.js';
import { caDigest, parseToken } from '../manager/ca/tokens.js';
import { caDef } from '../proto/services.js';
import { CHANNEL_OPTIONS, pinnedCredentials, unverifiedCredentials } from '../manager/security/credentials.js';
import type { Identity } from './state.js';

/** The joined identity, and the API addresses of the cluster's managers the issuing manager named. */
export type JoinResult = Identity & { managers: string[] };

type Client = grpc.Client & Record<string, (req: unknown, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: any) => void) => void>;

function client(addr: string, creds: grpc.ChannelCredentials): Client {
  const Ctor = grpc.makeGenericClientConstructor(caDef(), 'CA');
  return new Ctor(addr, creds, CHANNEL_OPTIONS) as Client;
}

function call<T>(c: Client, method: string, req: unknown, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => c[method]!(req, { deadline: Date.now() + timeoutMs }, (e, r) => (e ? reject(e) : resolve(r as T))));
}

export class JoinError extends Error {
  /** The gRPC status of the call that failed, when one did. */
  constructor(
    message: string,
    readonly code?: grpc.status,
  ) {
    super(message);
  }
}

/** `label` names the manager in errors when `addr` is not what the operator gave (a DHT tunnel). */
export async function fetchVerifiedCA(addr: string, token: string, label = addr): Promise<string> {
  const t = parseToken(token);
  const c = client(addr, unverifiedCredentials());
  try {
    const r = await call<{ ca_bundle: Buffer }>(c, 'GetCACertificate', {});
    const bundle = r.ca_bundle.toString('utf8');
    const actual = caDigest(bundle);
    if (actual !== t.digest) {
      throw new JoinError(`refusing to join ${label}: its CA bundle has digest ${actual}, but the token expects ${t.digest}; the address is not this cluster's manager (or someone is in between)`);
    }
    return bundle;
  } catch (e) {
    if (e instanceof JoinError) throw e;
    throw new JoinError(`cannot fetch the CA from ${label}: ${(e as grpc.ServiceError).details ?? (e as Error).message}`);
  } finally {
    c.close();
  }
}

export async function joinCluster(p: { addr: string; token: string; hostname: string; advertise: string; timeoutMs?: number; label?: string; caPem?: string }): Promise<JoinResult> {
  const label = p.label ?? p.addr;
  // A caller that already fetched and checked the CA through this address passes it on.
  const caPem = p.caPem ?? (await fetchVerifiedCA(p.addr, p.token, label));
  const { keyPem, csrPem } = await createKeyAndCSR();
  const c = client(p.addr, pinnedCredentials(caPem));
  try {
    let nodeId: string;
    let managers: string[];
    try {
      const r = await call<{ node_id: string; manager_addrs?: string[] }>(c, 'IssueNodeCertificate', { csr: Buffer.from(csrPem), token: p.token, hostname: p.hostname, addr: p.advertise });
      nodeId = r.node_id;
      managers = r.manager_addrs ?? [];
    } catch (e) {
      throw new JoinError(`the manager at ${label} refused the join: ${(e as grpc.ServiceError).details ?? (e as Error).message}`, (e as grpc.ServiceError).code);
    }
    const end = Date.now() + (p.timeoutMs ?? 60_000);
    let wait = 200;
    for (;;) {
      try {
        const st = await call<{ state: string; certificate: Buffer; role: string; cluster_id: string; error: string }>(c, 'NodeCertificateStatus', { node_id: nodeId });
        if (st.state === 'issued') {
          const certPem = st.certificate.toString('utf8');
          const info = verifyNodeCert(certPem, caPem, keyPem);
          if (info.cn !== nodeId) throw new JoinError(`the issued certificate names node ${info.cn}, not ${nodeId}`);
          return { nodeId, clusterId: info.o, role: info.ou as Role, caPem, certPem, keyPem, managers };
        }
        if (st.state === 'failed') throw new JoinError(`certificate issuance failed: ${st.error}`);
      } catch (e) {
        if (e instanceof JoinError) throw e;
        if ((e as grpc.ServiceError).code !== grpc.status.NOT_FOUND && (e as grpc.ServiceError).code !== grpc.status.UNAVAILABLE) throw new JoinError(`polling the certificate failed: ${(e as Error).message}`);
      }
      if (Date.now() > end) throw new JoinError(`the certificate for node ${nodeId} was not issued within ${p.timeoutMs ?? 60_000} ms`);
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 5_000);
    }
  } finally {
    c.close();
  }
}
