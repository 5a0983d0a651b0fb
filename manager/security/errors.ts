// Errors that carry a gRPC status, so handlers can throw and the wrapper answers with the code.
import * as grpc from '@grpc/grpc-js';

export class RpcError extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
  }
}

export const denied = (m: string) => new RpcError(grpc.status.PERMISSION_DENIED, m);
export const unauthenticated = (m: string) => new RpcError(grpc.status.UNAUTHENTICATED, m);
export const invalid = (m: string) => new RpcError(grpc.status.INVALID_ARGUMENT, m);
export const notFound = (m: string) => new RpcError(grpc.status.NOT_FOUND, m);
export const precondition = (m: string) => new RpcError(grpc.status.FAILED_PRECONDITION, m);
export const unavailable = (m: string) => new RpcError(grpc.status.UNAVAILABLE, m);
export const alreadyExists = (m: string) => new RpcError(grpc.status.ALREADY_EXISTS, m);
export const aborted = (m: string) => new RpcError(grpc.status.ABORTED, m);

/** The status to answer with for any thrown value. */
export function toStatus(e: unknown): { code: grpc.status; details: string } {
  const err = e as Error & { code?: unknown; details?: unknown };
  if (e instanceof RpcError) return { code: e.code, details: e.message };
  if (typeof err?.code === 'number' && typeof err.details === 'string') return { code: err.code, details: err.details }; // a forwarded call's error
  const name = err?.name ?? '';
  if (name === 'NotLeaderError' || name === 'ProposalDroppedError' || name === 'StoppedError' || name === 'ReadTimeoutError') return { code: grpc.status.UNAVAILABLE, details: err.message };
  if (name === 'ConflictError') return { code: grpc.status.ABORTED, details: err.message };
  if (name === 'UnknownOutcomeError') return { code: grpc.status.DEADLINE_EXCEEDED, details: err.message };
  return { code: grpc.status.INTERNAL, details: err?.message ?? String(e) };
}
