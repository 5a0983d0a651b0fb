// A small promise client of the Store service, for manager components, tests and benchmarks.
import * as grpc from '@grpc/grpc-js';
import type { Kind, Labels } from '../store/types.js';
import { decodeValue, encodeValue, type WireObject } from './convert.js';
import { storeServiceCtor } from './service.js';

export interface ClientObject {
  kind: Kind;
  id: string;
  name: string;
  labels: Labels;
  version: number;
  createdVersion: number;
  serviceId?: string;
  nodeId?: string;
  spec: unknown;
  status: unknown;
}

export function fromWireObject(w: WireObject): ClientObject {
  return {
    kind: w.kind as Kind, id: w.id, name: w.name, labels: w.labels ?? {}, version: Number(w.version),
    createdVersion: Number(w.created_version), serviceId: w.service_id || undefined, nodeId: w.node_id || undefined,
    spec: decodeValue(w.spec, 'spec'), status: decodeValue(w.status, 'status'),
  };
}

export function toWireInput(o: { kind: Kind; id: string; name: string; labels?: Labels; serviceId?: string; nodeId?: string; spec: unknown; status?: unknown }) {
  return {
    kind: o.kind, id: o.id, name: o.name, labels: o.labels ?? {}, service_id: o.serviceId ?? '', node_id: o.nodeId ?? '',
    spec: encodeValue(o.spec), status: o.status === undefined ? Buffer.alloc(0) : encodeValue(o.status),
  };
}

export class StoreClient {
  readonly raw: grpc.Client & Record<string, Function>;

  constructor(readonly addr: string, opts: grpc.ChannelOptions = {}) {
    const C = storeServiceCtor();
    this.raw = new C(addr, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20, ...opts }) as any;
  }

  private unary<T>(method: string, req: unknown, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      this.raw[method]!(req, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
    });
  }

  async put(o: Parameters<typeof toWireInput>[0], expectVersion?: number, timeoutMs = 15_000): Promise<{ version: number }> {
    const r = await this.unary<{ version: number }>('Put', { object: toWireInput(o), check_version: expectVersion !== undefined, expect_version: expectVersion ?? 0 }, timeoutMs);
    return { version: Number(r.version) };
  }

  /** The raw Put with a prepared wire object (benchmarks: no per-call conversion). */
  putWire(object: unknown, timeoutMs = 15_000): Promise<{ version: number }> {
    return this.unary('Put', { object }, timeoutMs);
  }

  async status(timeoutMs = 5_000): Promise<{ id: number; leader: number; role: string; term: number; commit: number; applied: number }> {
    const r = await this.unary<Record<string, unknown>>('Status', {}, timeoutMs);
    return { id: Number(r.id), leader: Number(r.leader), role: String(r.role), term: Number(r.term), commit: Number(r.commit), applied: Number(r.applied) };
  }

  async get(kind: Kind, id: string, stale = false, timeoutMs = 15_000): Promise<{ object?: ClientObject; version: number }> {
    const r = await this.unary<{ found: boolean; object: WireObject; version: number }>('Get', { kind, id, consistency: stale ? 1 : 0 }, timeoutMs);
    return { object: r.found ? fromWireObject(r.object) : undefined, version: Number(r.version) };
  }

  async list(kind: Kind, q: { serviceId?: string; nodeId?: string; labels?: Labels; stale?: boolean } = {}, timeoutMs = 15_000): Promise<{ objects: ClientObject[]; version: number }> {
    const r = await this.unary<{ objects: WireObject[]; version: number }>('List', { kind, service_id: q.serviceId ?? '', node_id: q.nodeId ?? '', labels: q.labels ?? {}, consistency: q.stale ? 1 : 0 }, timeoutMs);
    return { objects: (r.objects ?? []).map(fromWireObject), version: Number(r.version) };
  }

  txn(ops: unknown[], timeoutMs = 15_000): Promise<{ version: number; objects: WireObject[] }> {
    return this.unary('Txn', { ops }, timeoutMs);
  }

  watch(req: { kinds?: Kind[]; labels?: Labels; fromVersion?: number }): grpc.ClientReadableStream<{ version: number; type: string; object: WireObject }> {
    return this.raw.Watch!({ kinds: req.kinds ?? [], labels: req.labels ?? {}, has_from_version: req.fromVersion !== undefined, from_version: req.fromVersion ?? 0 });
  }

  close(): void {
    this.raw.close();
  }
}
