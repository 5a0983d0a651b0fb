// Error kinds the CRI server maps to gRPC status codes.
export class NotFoundError extends Error {}
export class PreconditionError extends Error {}
export class InvalidArgumentError extends Error {}
export class DeadlineError extends Error {}
/** A CRI call or option shoal-runtime does not implement: the message names it (gRPC UNIMPLEMENTED). */
export class UnimplementedError extends Error {}
