// What the raft transport needs to run under the cluster's mTLS (ready to be passed in once
// raft/transport accepts credentials): server credentials that require a CA-signed client
// certificate, the client side, and a per-stream check that the peer is a manager of this
// cluster that was neither removed nor demoted (the same authorizer as every other service).
import type * as grpc from '@grpc/grpc-js';
import { authorize, type TrustPolicy } from './authz.js';
import { CHANNEL_OPTIONS, clientCredentials, ServerTls, type TlsIdentity } from './credentials.js';
import { toStatus } from './errors.js';

export function raftServerCredentials(id: TlsIdentity): ServerTls {
  return new ServerTls(id, true);
}

export function raftChannel(id: TlsIdentity): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  return { credentials: clientCredentials(id), options: CHANNEL_OPTIONS };
}

/** Undefined if the peer of this raft stream is a current manager, else why it is refused. */
export function refuseRaftPeer(call: grpc.ServerReadableStream<unknown, unknown> | grpc.ServerUnaryCall<unknown, unknown>, policy: TrustPolicy): { code: grpc.status; details: string } | undefined {
  try {
    authorize(call as never, { roles: ['manager'] }, 'RaftTransport', { name: 'RaftTransport', policy });
    return undefined;
  } catch (e) {
    return toStatus(e);
  }
}
