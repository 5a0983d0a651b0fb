// The one place where every RPC of every shoal service is authorized. A service is registered as
// a table: method -> the roles allowed to call it (or 'bootstrap' for the three join calls) and
// its handler. `secureService` refuses to start if any method of the .proto lacks an entry, reads
// the verified peer certificate of each call, refuses unknown and removed nodes, other clusters'
// certificates and missing certificates, and checks the caller's role. A call forwarded by a
// follower carries the original caller's identity in metadata, trusted only when the forwarding
// peer itself presents a manager certificate. Methods marked `leader` are forwarded to the leader.
import * as grpc from '@grpc/grpc-js';
import { certInfo, type Role } from '../ca/pki.js';
import { denied, RpcError, toStatus, unauthenticated, unavailable } from './errors.js';

type AnyCall = grpc.ServerUnaryCall<any, any> | grpc.ServerWritableStream<any, any>;

export interface Identity {
  nodeId: string;
  role: Role;
  clusterId: string;
  /** The local Unix socket (root on this manager host). */
  local?: boolean;
  /** Forwarded by this manager (node id) on the caller's behalf. */
  forwardedBy?: string;
  /** For a forwarded call: the original caller's address as the forwarding manager saw it. */
  peer?: string;
}

export interface CallContext {
  /** Undefined only for bootstrap methods called without a certificate. */
  identity?: Identity;
  metadata: grpc.Metadata;
  peer: string;
}

export type UnaryHandler = (req: any, ctx: CallContext) => Promise<any>;
export type StreamHandler = (call: grpc.ServerWritableStream<any, any>, ctx: CallContext) => Promise<void>;

export interface MethodSpec {
  roles: Role[] | 'bootstrap';
  /** Run on the raft leader: a follower forwards the call there with the caller's identity. */
  leader?: boolean;
  unary?: UnaryHandler;
  stream?: StreamHandler;
}

/** What the authorizer needs to know about the cluster (backed by the replicated store on managers). */
export interface TrustPolicy {
  clusterId(): string | undefined;
  /** Why this node's certificates are refused (removed, unknown), or undefined if it may call. */
  refuse(nodeId: string): string | undefined;
  /**
   * The role a caller holding a certificate for `role` may act as: a demoted node keeps a
   * manager certificate until it renews, but acts as a worker from the moment it is demoted.
   */
  effectiveRole?(nodeId: string, role: Role): Role;
}

export interface Forwarder {
  /** True when this manager should serve leader-only calls itself. */
  isLeader(): boolean;
  /** Calls the same method on the leader with the caller's identity (and address) in metadata. */
  forward(service: grpc.ServiceDefinition, method: string, req: unknown, id: Identity, peer?: string): Promise<unknown>;
}

export const FWD_NODE = 'shoal-fwd-node';
export const FWD_ROLE = 'shoal-fwd-role';
export const FWD_CLUSTER = 'shoal-fwd-cluster';
export const FWD_PEER = 'shoal-fwd-peer';

export interface SecureOptions {
  name: string;
  policy: TrustPolicy;
  forwarder?: Forwarder;
  /** Fixed identity for every call (the local Unix socket): no certificate to read. */
  localIdentity?: () => Identity;
}

/**
 * Identities of the certificates seen lately, by their DER bytes (base64): parsing a certificate
 * on every call cost more than the call itself for the agents' frequent small ones (heartbeats,
 * status batches). The TLS layer has verified the certificate before any call reaches here, so
 * the cache only saves the parse; a certificate's subject never changes. Bounded: the oldest
 * entry goes first.
 */
const identities = new Map<string, Identity | string>();
const IDENTITY_CACHE = 4096;

function peerIdentity(call: AnyCall): Identity | undefined {
  const ac = call.getAuthContext();
  const raw = ac?.sslPeerCertificate?.raw;
  if (!raw) return undefined; // none presented, or not signed by the cluster CA / expired (TLS refused it)
  const b64 = raw.toString('base64');
  let id = identities.get(b64);
  if (id === undefined) {
    const i = certInfo(`-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`);
    id = i.ou !== 'manager' && i.ou !== 'worker' ? `the client certificate has no shoal role (OU=${i.ou})` : Object.freeze({ nodeId: i.cn, role: i.ou, clusterId: i.o });
    if (identities.size >= IDENTITY_CACHE) identities.delete(identities.keys().next().value!);
    identities.set(b64, id);
  }
  if (typeof id === 'string') throw denied(id);
  return id;
}

function checkIdentity(id: Identity, o: SecureOptions, what: string): Identity {
  const cid = o.policy.clusterId();
  if (cid && id.clusterId !== cid) throw denied(`${what} belongs to cluster ${id.clusterId}, not to this cluster ${cid}`);
  const why = o.policy.refuse(id.nodeId);
  if (why) throw denied(`${what} (node ${id.nodeId}) is refused: ${why}`);
  const role = o.policy.effectiveRole?.(id.nodeId, id.role) ?? id.role;
  return role === id.role ? id : { ...id, role };
}

/** Resolves and checks the caller of one call against the method's roles. */
export function authorize(call: AnyCall, spec: MethodSpec, method: string, o: SecureOptions): Identity | undefined {
  if (o.localIdentity) return o.localIdentity();
  const peer = peerIdentity(call);
  if (spec.roles === 'bootstrap') return peer;
  if (!peer) throw unauthenticated(`${method} needs a client certificate signed by this cluster's CA (none was presented, or it is expired or from another CA); join the cluster first`);
  const checked = checkIdentity(peer, o, 'the client certificate');
  const md = call.metadata;
  const fwdNode = md.get(FWD_NODE)[0];
  let id = checked;
  if (fwdNode !== undefined) {
    if (checked.role !== 'manager') throw denied(`${method}: a forwarded identity is only trusted from a manager certificate; node ${peer.nodeId} is a ${checked.role}`);
    const role = String(md.get(FWD_ROLE)[0] ?? '');
    if (role !== 'manager' && role !== 'worker') throw denied(`${method}: forwarded role ${JSON.stringify(role)} is not manager or worker`);
    id = { nodeId: String(fwdNode), role, clusterId: String(md.get(FWD_CLUSTER)[0] ?? ''), forwardedBy: peer.nodeId };
    const fwdPeer = md.get(FWD_PEER)[0];
    id = { ...checkIdentity(id, o, 'the forwarded caller'), forwardedBy: peer.nodeId, ...(fwdPeer !== undefined ? { peer: String(fwdPeer) } : {}) };
  }
  if (!spec.roles.includes(id.role)) {
    throw denied(`${method} is allowed for ${spec.roles.join(' or ')} nodes only; the caller ${id.nodeId} is a ${id.role}`);
  }
  return id;
}

function fail(e: unknown): grpc.ServiceError {
  const s = toStatus(e);
  return Object.assign(new Error(s.details), { code: s.code, details: s.details, metadata: new grpc.Metadata() }) as grpc.ServiceError;
}

/** Builds the grpc-js implementation of `service` from the table, enforcing roles on every call. */
export function secureService(service: grpc.ServiceDefinition, table: Record<string, MethodSpec>, o: SecureOptions): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [method, def] of Object.entries(service)) {
    const spec = table[method];
    if (!spec) throw new Error(`${o.name}.${method} has no authorization entry: every RPC must declare the roles allowed to call it`);
    const full = `${o.name}.${method}`;
    if (def.responseStream) {
      if (!spec.stream) throw new Error(`${full} is a server stream but has no stream handler`);
      impl[method] = (call: grpc.ServerWritableStream<any, any>) => {
        let ctx: CallContext;
        try {
          ctx = { identity: authorize(call, spec, full, o), metadata: call.metadata, peer: call.getPeer() };
        } catch (e) {
          call.emit('error', fail(e));
          return;
        }
        spec.stream!(call, ctx).catch((e) => call.emit('error', fail(e)));
      };
    } else {
      if (!spec.unary) throw new Error(`${full} is unary but has no unary handler`);
      impl[method] = (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
        let ctx: CallContext;
        try {
          ctx = { identity: authorize(call, spec, full, o), metadata: call.metadata, peer: call.getPeer() };
        } catch (e) {
          cb(fail(e), null);
          return;
        }
        let p: Promise<unknown>;
        if (spec.leader && o.forwarder && !o.forwarder.isLeader()) {
          if (!ctx.identity) p = Promise.reject(unavailable(`${full} must run on the leader`));
          else p = o.forwarder.forward(service, method, call.request, ctx.identity, ctx.identity.peer ?? ctx.peer);
        } else {
          p = spec.unary!(call.request, ctx);
        }
        p.then((r) => cb(null, r), (e) => cb(fail(e), null));
      };
    }
  }
  return impl;
}

export { RpcError };
