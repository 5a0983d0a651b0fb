// A CSI call's failure: a gRPC status code from the spec's error tables and a message that says
// what was wrong and what to do. The server turns it into the gRPC status; anything else thrown
// becomes INTERNAL with its message.
import * as grpc from '@grpc/grpc-js';

export class CsiError extends Error {
  constructor(readonly code: grpc.status, message: string) { super(message); }
}

export const invalid = (msg: string) => new CsiError(grpc.status.INVALID_ARGUMENT, msg);
export const notFound = (msg: string) => new CsiError(grpc.status.NOT_FOUND, msg);
export const alreadyExists = (msg: string) => new CsiError(grpc.status.ALREADY_EXISTS, msg);
export const precondition = (msg: string) => new CsiError(grpc.status.FAILED_PRECONDITION, msg);
export const exhausted = (msg: string) => new CsiError(grpc.status.RESOURCE_EXHAUSTED, msg);
export const outOfRange = (msg: string) => new CsiError(grpc.status.OUT_OF_RANGE, msg);
export const aborted = (msg: string) => new CsiError(grpc.status.ABORTED, msg);
export const unavailable = (msg: string) => new CsiError(grpc.status.UNAVAILABLE, msg);
