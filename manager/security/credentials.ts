// TLS credentials for shoal's gRPC endpoints. Servers ask every client for a certificate but do
// not require one (the three bootstrap calls have none); whether a call may proceed is decided per
// RPC by the authorizer from the verified peer certificate. Clients pin the cluster CA and check
// that the server is a manager (every manager certificate carries the `shoal-manager` name).
import type { SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { MANAGER_SAN } from '../ca/names.js';

export interface TlsIdentity {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** "Verify the client certificate if given" (Go's VerifyClientCertIfGiven), with hot certificate swap. */
export class ServerTls extends grpc.ServerCredentials {
  /** `requireClientCert`: refuse the TLS handshake without a CA-signed client certificate (raft). */
  constructor(id: TlsIdentity, requireClientCert = false) {
    super({ requestCert: true, rejectUnauthorized: requireClientCert }, ServerTls.ctx(id));
  }

  private static ctx(id: TlsIdentity): SecureContextOptions {
    return { ca: Buffer.from(id.caPem), cert: Buffer.from(id.certPem), key: Buffer.from(id.keyPem), minVersion: 'TLSv1.2' } as SecureContextOptions;
  }

  /** New certificate after renewal or a role change: new connections use it. */
  update(id: TlsIdentity): void {
    this.updateSecureContextOptions(ServerTls.ctx(id));
  }

  override _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.ssl_target_name_override': MANAGER_SAN,
  'grpc.default_authority': MANAGER_SAN,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_reconnect_backoff_ms': 2_000,
  'grpc.initial_reconnect_backoff_ms': 200,
};

/** mTLS to a manager: CA pinned, the server must hold a manager certificate; ours is presented. */
export function clientCredentials(id: TlsIdentity): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(id.caPem), Buffer.from(id.keyPem), Buffer.from(id.certPem));
}

/** TLS with the CA pinned but no client certificate (the join's CSR call). */
export function pinnedCredentials(caPem: string): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(caPem));
}

/**
 * TLS without verifying the server: only for fetching the CA bundle, which the caller then checks
 * against the digest in its join token before trusting anything.
 */
export function unverifiedCredentials(): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined });
}
