// Error kinds the CRI server maps to gRPC status codes.
export class NotFoundError extends Error {}
export class PreconditionError extends Error {}
export class InvalidArgumentError extends Error {}
export class DeadlineError extends Error {}
