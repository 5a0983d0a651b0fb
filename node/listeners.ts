// The bounds of shoald's two gRPC listeners (proto/guarded-server.ts has the mechanism and the
// defaults; raft's are in raft/transport, the CRI runtime's in runtime/cri-server.ts).
import type * as grpc from '@grpc/grpc-js';
import { GuardedServer, type GuardLimits } from '../proto/guarded-server.js';

/**
 * The manager's mTLS API (CA, control, dispatcher, logs). Members hold one or two connections
 * each (an agent's session and a CLI), so 64 per host leaves room for a NAT'd office of CLIs;
 * 4096 in all for the largest pools. A joining node has no certificate yet: it fetches the CA,
 * sends its CSR and polls for the certificate within a minute on one or two connections, so a
 * host gets 8 connections without a certificate, each closed at 60 s, each with 4 calls at
 * once, and all such calls share 16 MiB of request buffer (8 MiB per host). Requests are small
 * (specs, CSRs, status batches): 4 MiB each.
 */
export const API_LISTENER_LIMITS: Partial<GuardLimits> = {
  maxConnections: 4096,
  maxConnectionsPerHost: 64,
  maxUnauthenticated: 256,
  maxUnauthenticatedPerHost: 8,
  firstCallMs: 10_000,
  unauthenticatedMs: 60_000,
  maxCallsPerUnauthenticated: 4,
  maxMessageBytes: 4 << 20,
  receiveBudgetBytes: 64 << 20,
  unauthenticatedBudgetBytes: 16 << 20,
  unauthenticatedBudgetPerHostBytes: 8 << 20,
};

export function apiServer(log: (m: string) => void, limits: Partial<GuardLimits> = {}): GuardedServer {
  return new GuardedServer({
    name: 'control API',
    auth: 'client-cert',
    limits: { ...API_LISTENER_LIMITS, ...limits },
    options: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_permit_without_calls': 1 } as grpc.ServerOptions,
    log,
  });
}

/**
 * The node's local Unix socket: root only (0600), used by the CLI on this host, one connection
 * per command. 64 connections, requests of at most 4 MiB sharing 16 MiB.
 */
export const LOCAL_LISTENER_LIMITS: Partial<GuardLimits> = {
  maxConnections: 64,
  maxMessageBytes: 4 << 20,
  receiveBudgetBytes: 16 << 20,
};

export function localServer(log: (m: string) => void): GuardedServer {
  return new GuardedServer({ name: 'local socket', auth: 'any-call', limits: LOCAL_LISTENER_LIMITS, log });
}
