// Errors carry the CNI error code (spec 1.0.0 "Error codes"; 50 is 1.1's "plugin not
// available") the runtime will see through shoal-cni, and map to a gRPC status.
import * as grpc from '@grpc/grpc-js';

export const CNI = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  NOT_AVAILABLE: 50,
  /** shoal's own (100+ is the plugin's range): the kernel refused a change. */
  DATAPATH_FAILURE: 100,
  /** shoal's own: the cluster state update is not valid or not for this version. */
  STATE_REJECTED: 101,
} as const;

export class PluginError extends Error {
  constructor(readonly cniCode: number, msg: string, readonly grpcCode: grpc.status = grpcFor(cniCode)) {
    super(msg);
  }
}

function grpcFor(code: number): grpc.status {
  switch (code) {
    case CNI.UNKNOWN_CONTAINER: return grpc.status.NOT_FOUND;
    case CNI.INVALID_ENV: case CNI.DECODE_FAILURE: case CNI.INVALID_CONFIG: case CNI.UNSUPPORTED_FIELD: case CNI.INCOMPATIBLE_VERSION: return grpc.status.INVALID_ARGUMENT;
    case CNI.TRY_AGAIN_LATER: case CNI.NOT_AVAILABLE: return grpc.status.UNAVAILABLE;
    default: return grpc.status.INTERNAL;
  }
}
