// The object store's data model: typed objects, the transaction commands replicated through raft,
// their results, and the change events watchers receive. Everything here is plain data so that it
// encodes with msgpackr and applies identically on every manager.

export const KINDS = ['node', 'service', 'task', 'network', 'volume', 'volume-class', 'secret', 'config', 'cluster'] as const;
export type Kind = (typeof KINDS)[number];

export function isKind(k: unknown): k is Kind {
  return typeof k === 'string' && (KINDS as readonly string[]).includes(k);
}

export type Labels = Record<string, string>;

/**
 * One stored object. `version` is the raft index of the transaction that last wrote it, so a
 * reader can compare-and-set on it; `createdVersion` the one that created it. `serviceId` and
 * `nodeId` are the relations the orchestrator queries (a task's service and node, a volume's
 * node); they live outside the spec so the store can index them without knowing each spec.
 * Objects handed out by the store are shared: treat them as immutable.
 */
export interface StoreObject<Spec = unknown, Status = unknown> {
  kind: Kind;
  id: string;
  name: string;
  labels: Labels;
  version: number;
  createdVersion: number;
  serviceId?: string;
  nodeId?: string;
  spec: Spec;
  status: Status;
}

/** What a writer supplies; versions are assigned by the store at apply time. */
export interface ObjectInput<Spec = unknown, Status = unknown> {
  kind: Kind;
  id: string;
  name: string;
  labels?: Labels;
  serviceId?: string;
  nodeId?: string;
  spec: Spec;
  status?: Status;
}

/**
 * One operation of a transaction.
 * - create: fails if the id exists or the name is taken within the kind.
 * - update: replaces the object; fails if it is missing or (when given) its version differs.
 * - put: create-or-update; compares the version only when given (0 = "must not exist").
 * - delete: fails if missing or (when given) its version differs.
 * - status: patches a task's observed status in place of rewriting the whole object (what
 *   agents report: tens of bytes in the log, not the task's whole spec). See StatusPatch.
 */
export type TxnOp =
  | { op: 'create'; object: ObjectInput }
  | { op: 'update'; object: ObjectInput; expectVersion?: number }
  | { op: 'put'; object: ObjectInput; expectVersion?: number }
  | { op: 'delete'; kind: Kind; id: string; expectVersion?: number }
  | StatusPatch;

/**
 * A task's observed status, patched by the store itself, forward only (task-states.ts), so that
 * every manager applies it alike and no reader has to compare versions: it applies when the task
 * exists, is on `nodeId` (when given) and `status.state` is the task's state or a later one;
 * otherwise it is skipped (its result is null) and the rest of the transaction still applies (a
 * report about a task deleted or moved on meanwhile says nothing any more). The fields of
 * `status` replace the task's; `status.timestamps` is merged into the task's timestamps.
 */
export interface StatusPatch {
  op: 'status';
  kind: 'task';
  id: string;
  nodeId?: string;
  status: { state: string; timestamps?: Record<string, number>; [field: string]: unknown };
}

/** The command one raft entry carries. `reqId` lets the proposer match the applied result. */
export interface TxnCommand {
  reqId: string;
  ops: TxnOp[];
}

export interface TxnConflict {
  /** Index in `ops` of the operation whose check failed. */
  opIndex: number;
  code: 'exists' | 'name-taken' | 'not-found' | 'version-mismatch' | 'invalid';
  message: string;
}

export type TxnResult =
  | { ok: true; version: number; objects: (StoreObject | null)[] }
  | { ok: false; version: number; conflict: TxnConflict };

export type EventType = 'create' | 'update' | 'delete';

/** A change. For a delete, `object` is the object as it was just before. */
export interface StoreEvent {
  version: number;
  type: EventType;
  object: StoreObject;
  /**
   * For an update, the object as it was just before (what changed can be told without a copy of
   * the store; it is mostly the previous event's object, so the log holds little more).
   */
  prev?: StoreObject;
}

export interface WatchFilter {
  kinds?: Kind[];
  /** All of these labels must match (on the new object, or the old one for a delete). */
  labels?: Labels;
}

export class TooOldError extends Error {
  constructor(public readonly requested: number, public readonly oldest: number) {
    super(`watch from version ${requested} is too old, re-list: the event log starts after version ${oldest}; list the objects and watch from the version the list returns`);
    this.name = 'TooOldError';
  }
}

export class ConflictError extends Error {
  constructor(public readonly conflict: TxnConflict, public readonly version: number) {
    super(`transaction conflict at op ${conflict.opIndex} (${conflict.code}): ${conflict.message}`);
    this.name = 'ConflictError';
  }
}
