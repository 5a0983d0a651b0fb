// Converts between the Store service's wire objects (proto/store/store.proto, spec and status as
// msgpack bytes) and the store's objects.
import { Packr } from 'msgpackr';
import type { ObjectInput, StoreObject, TxnOp } from '../store/types.js';

const packr = new Packr({ useRecords: false, moreTypes: false });

export interface WireObject {
  kind: string;
  id: string;
  name: string;
  labels: Record<string, string>;
  version: number;
  created_version: number;
  service_id: string;
  node_id: string;
  spec: Uint8Array;
  status: Uint8Array;
}

export interface WireOp {
  type: number; // 0 create, 1 update, 2 put, 3 delete
  object?: WireObject | null;
  kind: string;
  id: string;
  check_version: boolean;
  expect_version: number;
}

export function encodeValue(v: unknown): Uint8Array {
  return packr.pack(v);
}

export function decodeValue(b: Uint8Array | undefined, what: string): unknown {
  if (!b || b.length === 0) return null;
  try {
    return packr.unpack(b);
  } catch (e) {
    throw new BadRequest(`${what} is not valid msgpack: ${(e as Error).message}`);
  }
}

export class BadRequest extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'BadRequest';
  }
}

export function toWire(o: StoreObject): WireObject {
  return {
    kind: o.kind,
    id: o.id,
    name: o.name,
    labels: o.labels,
    version: o.version,
    created_version: o.createdVersion,
    service_id: o.serviceId ?? '',
    node_id: o.nodeId ?? '',
    spec: encodeValue(o.spec),
    status: encodeValue(o.status),
  };
}

export function fromWire(w: WireObject | null | undefined): ObjectInput {
  if (!w) throw new BadRequest('the operation needs an object');
  const o: ObjectInput = {
    kind: w.kind as ObjectInput['kind'],
    id: w.id,
    name: w.name,
    labels: { ...(w.labels ?? {}) },
    spec: decodeValue(w.spec, 'spec'),
    status: decodeValue(w.status, 'status'),
  };
  if (w.service_id) o.serviceId = w.service_id;
  if (w.node_id) o.nodeId = w.node_id;
  return o;
}

export function opFromWire(w: WireOp): TxnOp {
  // Leave expectVersion out entirely when unchecked, so the replicated command stays minimal.
  const ev = w.check_version ? { expectVersion: Number(w.expect_version) } : {};
  switch (w.type) {
    case 0:
      return { op: 'create', object: fromWire(w.object) };
    case 1:
      return { op: 'update', object: fromWire(w.object), ...ev };
    case 2:
      return { op: 'put', object: fromWire(w.object), ...ev };
    case 3:
      return { op: 'delete', kind: w.kind as ObjectInput['kind'], id: w.id, ...ev };
    default:
      throw new BadRequest(`unknown op type ${w.type}; use CREATE, UPDATE, PUT or DELETE`);
  }
}
