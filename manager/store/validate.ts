// Checks that a transaction is well formed before it is proposed (so junk never reaches the log)
// and again when it is applied (so a bad entry fails identically on every manager).
import { isTaskState } from './task-states.js';
import { isKind, type ObjectInput, type StatusPatch, type TxnOp } from './types.js';

const MAX_OPS = 1000;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.\-/:]{0,252}$/;

function checkObject(o: unknown): string | null {
  if (!o || typeof o !== 'object') return 'object is missing';
  const x = o as Partial<ObjectInput>;
  if (!isKind(x.kind)) return `kind ${JSON.stringify(x.kind)} is not one of node, service, task, network, volume, volume-class, secret, config, cluster`;
  if (typeof x.id !== 'string' || x.id.length === 0 || x.id.length > 128) return 'id must be a non-empty string of at most 128 characters';
  if (typeof x.name !== 'string' || !NAME_RE.test(x.name)) return `name ${JSON.stringify(x.name)} must be 1-253 characters of letters, digits and _.-/: starting with a letter or digit`;
  if (x.labels !== undefined) {
    if (!x.labels || typeof x.labels !== 'object' || Array.isArray(x.labels)) return 'labels must be a map of strings';
    for (const [k, v] of Object.entries(x.labels)) {
      if (k.length === 0 || k.includes('=')) return `label key ${JSON.stringify(k)} must be non-empty and contain no '='`;
      if (typeof v !== 'string') return `label ${k} must have a string value`;
    }
  }
  if (x.serviceId !== undefined && typeof x.serviceId !== 'string') return 'serviceId must be a string';
  if (x.nodeId !== undefined && typeof x.nodeId !== 'string') return 'nodeId must be a string';
  if (x.spec === undefined) return 'spec is missing (use null for an empty spec)';
  return null;
}

function checkStatusPatch(op: StatusPatch): string | null {
  if (op.kind !== 'task') return `a status patch applies to tasks only, not to kind ${JSON.stringify(op.kind)}`;
  if (typeof op.id !== 'string' || op.id.length === 0 || op.id.length > 128) return 'a status patch needs the task id (a non-empty string of at most 128 characters)';
  if (op.nodeId !== undefined && typeof op.nodeId !== 'string') return 'nodeId must be a string';
  const s = op.status;
  if (!s || typeof s !== 'object' || Array.isArray(s)) return 'a status patch needs a status object';
  if (!isTaskState(s.state)) return `task state ${JSON.stringify(s.state)} is not one of the task states`;
  if (s.timestamps !== undefined) {
    if (!s.timestamps || typeof s.timestamps !== 'object' || Array.isArray(s.timestamps)) return 'status timestamps must be a map of task state to time';
    for (const [k, v] of Object.entries(s.timestamps)) {
      if (!isTaskState(k)) return `status timestamp for ${JSON.stringify(k)}: not a task state`;
      if (typeof v !== 'number' || !Number.isFinite(v)) return `status timestamp for ${k} must be a number (ms since the epoch)`;
    }
  }
  return null;
}

/** Returns null when the ops are well formed, else [index of the bad op, what is wrong]. */
export function validateOps(ops: unknown): [number, string] | null {
  if (!Array.isArray(ops) || ops.length === 0) return [0, 'a transaction needs at least one operation'];
  if (ops.length > MAX_OPS) return [MAX_OPS, `a transaction may hold at most ${MAX_OPS} operations; split it`];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as TxnOp;
    if (!op || typeof op !== 'object') return [i, 'operation is not an object'];
    if ('expectVersion' in op && op.expectVersion !== undefined && (!Number.isInteger(op.expectVersion) || op.expectVersion < 0)) {
      return [i, 'expectVersion must be a non-negative integer'];
    }
    switch (op.op) {
      case 'create':
      case 'update':
      case 'put': {
        const e = checkObject(op.object);
        if (e) return [i, e];
        break;
      }
      case 'status': {
        const e = checkStatusPatch(op);
        if (e) return [i, e];
        break;
      }
      case 'delete':
        if (!isKind(op.kind)) return [i, `kind ${JSON.stringify(op.kind)} is not a known kind`];
        if (typeof op.id !== 'string' || op.id.length === 0) return [i, 'delete needs an id'];
        break;
      default:
        return [i, `unknown operation ${JSON.stringify((op as { op?: unknown }).op)}; use create, update, put, delete or status`];
    }
  }
  return null;
}
