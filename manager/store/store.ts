// The object store as a deterministic state machine. Raft hands it committed entries in order;
// `applyEntry` turns each into a transaction applied atomically (all ops or none) with the entry's
// index as the new version, so every manager ends up with the same objects, versions and events.
// Reads are local; the replicated node decides when a read is allowed (ReadIndex or stale).
import { decodeCommand, decodeSnapshot, encodeSnapshot, type SnapshotBody } from './codec.js';
import { EventLog } from './event-log.js';
import { Tables } from './indices.js';
import {
  type Kind,
  type Labels,
  type ObjectInput,
  type StoreEvent,
  type StoreObject,
  type TxnConflict,
  type TxnOp,
  type TxnResult,
  type WatchFilter,
} from './types.js';
import { patchedStatus } from './status-patch.js';
import { validateOps } from './validate.js';

export interface StoreOptions {
  /** How many events watchers can resume from; default 100,000. */
  eventLogCapacity?: number;
}

export interface ListQuery {
  serviceId?: string;
  nodeId?: string;
  labels?: Labels;
}

export type WatchCallback = (events: StoreEvent[]) => void;

export interface Watcher {
  cancel(): void;
}

interface Subscriber {
  filter: WatchFilter;
  cb: WatchCallback;
  /** Called once if the watch can no longer be continued (a snapshot replaced the store). */
  onReset?: (err: Error) => void;
}

export function matchesFilter(f: WatchFilter, o: StoreObject): boolean {
  if (f.kinds && f.kinds.length > 0 && !f.kinds.includes(o.kind)) return false;
  if (f.labels) for (const [k, v] of Object.entries(f.labels)) if (o.labels[k] !== v) return false;
  return true;
}

function build(inp: ObjectInput, version: number, createdVersion: number): StoreObject {
  const o: StoreObject = {
    kind: inp.kind,
    id: inp.id,
    name: inp.name,
    labels: { ...(inp.labels ?? {}) },
    version,
    createdVersion,
    spec: inp.spec,
    status: inp.status ?? null,
  };
  if (inp.serviceId) o.serviceId = inp.serviceId;
  if (inp.nodeId) o.nodeId = inp.nodeId;
  return o;
}

/** True if `a` and `b` sit at the same places in every index (same name, service, node, labels). */
function sameIndexKeys(a: StoreObject, b: StoreObject): boolean {
  if (a.name !== b.name || a.serviceId !== b.serviceId || a.nodeId !== b.nodeId) return false;
  if (a.labels === b.labels) return true;
  const ka = Object.keys(a.labels);
  if (ka.length !== Object.keys(b.labels).length) return false;
  for (const k of ka) if (a.labels[k] !== b.labels[k]) return false;
  return true;
}

export class ObjectStore {
  private readonly tables = new Tables();
  private readonly log: EventLog;
  private readonly subs = new Set<Subscriber>();
  private appliedIndex = 0;

  constructor(opts: StoreOptions = {}) {
    this.log = new EventLog(opts.eventLogCapacity ?? 100_000);
  }

  /** The raft index of the last entry applied (the store's version). */
  get applied(): number {
    return this.appliedIndex;
  }

  get size(): number {
    return this.tables.count;
  }

  /** Objects per kind (for metrics). */
  countsByKind(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, t] of this.tables.byId) out[k] = t.size;
    return out;
  }

  /** Open watches (for metrics). */
  get watchCount(): number {
    return this.subs.size;
  }

  /** The oldest version a watch can resume from. */
  get oldestWatchVersion(): number {
    return this.log.oldestResumable;
  }

  get(kind: Kind, id: string): StoreObject | undefined {
    return this.tables.get(kind, id);
  }

  getByName(kind: Kind, name: string): StoreObject | undefined {
    const id = this.tables.idByName(kind, name);
    return id === undefined ? undefined : this.tables.get(kind, id);
  }

  list(kind: Kind, q: ListQuery = {}): StoreObject[] {
    return this.tables.query(kind, q);
  }

  /**
   * Advances the applied index over an entry that carries no store command (the leader's empty
   * entry, a membership change). Returns false if the index was already applied.
   */
  skip(index: number): boolean {
    if (index <= this.appliedIndex) return false;
    this.appliedIndex = index;
    return true;
  }

  /**
   * Applies one committed entry's data at raft index `index`. Returns the transaction's result
   * (also for a malformed command, which fails as `invalid` everywhere alike), or null if the
   * index was already applied.
   */
  applyEntry(index: number, data: Uint8Array): { reqId: string; result: TxnResult } | null {
    if (index <= this.appliedIndex) return null;
    if (data.length === 0) {
      this.appliedIndex = index;
      return null;
    }
    let reqId = '';
    let ops: unknown;
    try {
      const c = decodeCommand(data);
      reqId = c.reqId;
      ops = c.ops;
    } catch (e) {
      this.appliedIndex = index;
      return { reqId, result: { ok: false, version: index, conflict: { opIndex: 0, code: 'invalid', message: (e as Error).message } } };
    }
    return { reqId, result: this.applyTxn(index, ops as TxnOp[]) };
  }

  /** Applies a decoded transaction at `index`: all of its ops, or none with the first conflict. */
  applyTxn(index: number, ops: TxnOp[]): TxnResult {
    if (index <= this.appliedIndex) throw new Error(`store: index ${index} is not after the applied index ${this.appliedIndex}`);
    this.appliedIndex = index;
    const bad = validateOps(ops);
    if (bad) return { ok: false, version: index, conflict: { opIndex: bad[0], code: 'invalid', message: bad[1] } };

    // Stage the changes so a later failure leaves the store untouched; later ops see earlier ones.
    const staged = new Map<string, StoreObject | null>(); // kind/id -> new object or deleted
    const names = new Map<string, string | null>(); // kind\0name -> owner id or freed
    const key = (k: Kind, id: string) => k + '/' + id;
    const current = (k: Kind, id: string): StoreObject | undefined => {
      const s = staged.get(key(k, id));
      return s === null ? undefined : s ?? this.tables.get(k, id);
    };
    const nameOwner = (k: Kind, n: string): string | undefined => {
      const s = names.get(k + '\u0000' + n);
      return s === null ? undefined : s ?? this.tables.idByName(k, n);
    };
    const conflict = (opIndex: number, code: TxnConflict['code'], message: string): TxnResult => ({
      ok: false,
      version: index,
      conflict: { opIndex, code, message },
    });
    const results: (StoreObject | null)[] = [];
    const events: StoreEvent[] = [];

    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op.op === 'delete') {
        const old = current(op.kind, op.id);
        if (!old) return conflict(i, 'not-found', `${op.kind} ${op.id} does not exist`);
        if (op.expectVersion !== undefined && old.version !== op.expectVersion) {
          return conflict(i, 'version-mismatch', `${op.kind} ${op.id} is at version ${old.version}, not ${op.expectVersion}; re-read it and retry`);
        }
        staged.set(key(op.kind, op.id), null);
        names.set(op.kind + '\u0000' + old.name, null);
        events.push({ version: index, type: 'delete', object: old });
        results.push(null);
        continue;
      }
      if (op.op === 'status') {
        const old = current('task', op.id);
        const status = old ? patchedStatus(old, op) : undefined;
        if (!old || !status) {
          results.push(null);
          continue;
        }
        const obj: StoreObject = { ...old, version: index, status };
        staged.set(key('task', op.id), obj);
        events.push({ version: index, type: 'update', object: obj, prev: old });
        results.push(obj);
        continue;
      }
      const inp = op.object;
      const old = current(inp.kind, inp.id);
      let mode: 'create' | 'update';
      if (op.op === 'create') {
        if (old) return conflict(i, 'exists', `${inp.kind} ${inp.id} already exists (version ${old.version})`);
        mode = 'create';
      } else if (op.op === 'update') {
        if (!old) return conflict(i, 'not-found', `${inp.kind} ${inp.id} does not exist; create it first`);
        mode = 'update';
      } else {
        mode = old ? 'update' : 'create';
      }
      if (op.op !== 'create' && op.expectVersion !== undefined && (old?.version ?? 0) !== op.expectVersion) {
        return conflict(i, 'version-mismatch', `${inp.kind} ${inp.id} is at version ${old?.version ?? 0} (0 = absent), not ${op.expectVersion}; re-read it and retry`);
      }
      const owner = nameOwner(inp.kind, inp.name);
      if (owner !== undefined && owner !== inp.id) {
        return conflict(i, 'name-taken', `${inp.kind} name ${JSON.stringify(inp.name)} is already used by ${owner}`);
      }
      const obj = build(inp, index, old ? old.createdVersion : index);
      if (old && old.name !== inp.name) names.set(inp.kind + '\u0000' + old.name, null);
      names.set(inp.kind + '\u0000' + inp.name, inp.id);
      staged.set(key(inp.kind, inp.id), obj);
      events.push(old ? { version: index, type: mode, object: obj, prev: old } : { version: index, type: mode, object: obj });
      results.push(obj);
    }

    // Commit: first remove every touched object, then add the survivors, so renames and swaps
    // inside one transaction keep the indices exact. An object whose indexed fields (name,
    // service, node, labels) did not change is only swapped in its table: the common case (a
    // status written), and its index entries are already right.
    const added: StoreObject[] = [];
    for (const [k, o] of staged) {
      const slash = k.indexOf('/');
      const old = this.tables.get(k.slice(0, slash) as Kind, k.slice(slash + 1));
      if (old && o && sameIndexKeys(old, o)) this.tables.replace(o);
      else {
        if (old) this.tables.remove(old);
        if (o) added.push(o);
      }
    }
    for (const o of added) this.tables.add(o);
    for (const e of events) this.log.push(e);
    this.publish(events);
    return { ok: true, version: index, objects: results };
  }

  private publish(events: StoreEvent[]): void {
    if (this.subs.size === 0 || events.length === 0) return;
    for (const s of this.subs) {
      const mine = events.filter((e) => matchesFilter(s.filter, e.object));
      if (mine.length > 0) s.cb(mine);
    }
  }

  /**
   * Subscribes to changes after version `from` (default: now). Events still in the log are
   * replayed first, synchronously, then live events follow in order. Throws TooOldError if
   * `from` is older than the log holds: list the objects and watch from the list's version.
   */
  watch(filter: WatchFilter, cb: WatchCallback, from?: number, onReset?: (err: Error) => void): Watcher {
    if (from !== undefined) {
      const past = this.log.since(from).filter((e) => matchesFilter(filter, e.object));
      if (past.length > 0) cb(past);
    }
    const sub: Subscriber = { filter, cb, onReset };
    this.subs.add(sub);
    return { cancel: () => void this.subs.delete(sub) };
  }

  /** The whole store at the applied index, for a raft snapshot. */
  snapshot(): Uint8Array {
    return encodeSnapshot(this.snapshotView());
  }

  /**
   * The objects at the applied index, for encodeSnapshotAsync: a list of references (cheap),
   * which stays a consistent view while the store moves on because objects are never mutated.
   */
  snapshotView(): SnapshotBody {
    const objects: StoreObject[] = [];
    for (const t of this.tables.byId.values()) for (const o of t.values()) objects.push(o);
    return { applied: this.appliedIndex, objects };
  }

  /**
   * Replaces the whole store with a snapshot's contents. Events before it are gone: live
   * watchers are ended with TooOldError so they re-list.
   */
  restore(data: Uint8Array): void {
    const body = decodeSnapshot(data);
    this.tables.clear();
    for (const o of body.objects) this.tables.add(o);
    this.appliedIndex = body.applied;
    this.log.reset(body.applied);
    const subs = [...this.subs];
    this.subs.clear();
    for (const s of subs) s.onReset?.(new Error(`the store was replaced by a snapshot at version ${body.applied}: too old, re-list and watch from version ${body.applied}`));
  }
}
