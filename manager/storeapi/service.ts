// The manager-only gRPC Store service (proto/store/store.proto) over a ReplicatedNode. Writes go
// through raft; on a follower the raft core forwards the proposal to the leader over the raft
// stream (batched with replication traffic, no extra RPC per write). Reads wait
// for a ReadIndex round unless the caller asks for a stale read. Watches stream the local
// replica's events (identical on every manager).
// Security: plaintext and unauthenticated for now; store-main binds it to loopback only until the
// mTLS/roles issue puts it behind manager certificates.
import * as grpc from '@grpc/grpc-js';
import { loadProto } from '../../proto/load.js';
import { enableNoDelay } from '../../raft/transport/nodelay.js';
import { NotLeaderError, ProposalDroppedError, ReadTimeoutError, StoppedError, UnknownOutcomeError } from '../raftnode/errors.js';
import type { ReplicatedNode } from '../raftnode/node.js';
import { ConflictError, isKind, TooOldError, type Kind, type StoreEvent, type TxnOp, type TxnResult } from '../store/types.js';
import { BadRequest, fromWire, opFromWire, toWire, type WireObject, type WireOp } from './convert.js';

const MAX_WATCH_BACKLOG = 100_000;

let ctor: grpc.ServiceClientConstructor | undefined;
export function storeServiceCtor(): grpc.ServiceClientConstructor {
  if (!ctor) ctor = (loadProto('store/store.proto') as any).shoal.store.v1.Store as grpc.ServiceClientConstructor;
  return ctor;
}

function statusOf(e: unknown): { code: grpc.status; details: string } {
  const err = e as Error & { code?: number; details?: string };
  if (e instanceof ConflictError) return { code: e.conflict.code === 'invalid' ? grpc.status.INVALID_ARGUMENT : grpc.status.ABORTED, details: e.message };
  if (e instanceof BadRequest) return { code: grpc.status.INVALID_ARGUMENT, details: e.message };
  if (e instanceof NotLeaderError || e instanceof ProposalDroppedError || e instanceof ReadTimeoutError || e instanceof StoppedError) return { code: grpc.status.UNAVAILABLE, details: err.message };
  if (e instanceof UnknownOutcomeError) return { code: grpc.status.DEADLINE_EXCEEDED, details: e.message };
  if (e instanceof TooOldError) return { code: grpc.status.OUT_OF_RANGE, details: e.message };
  if (typeof err.code === 'number' && typeof err.details === 'string') return { code: err.code, details: err.details }; // forwarded
  return { code: grpc.status.INTERNAL, details: err?.message ?? String(e) };
}

function fail(cb: grpc.sendUnaryData<unknown>, e: unknown): void {
  const s = statusOf(e);
  cb({ code: s.code, details: s.details } as grpc.ServiceError, null);
}

function kindOf(k: string): Kind {
  if (!isKind(k)) throw new BadRequest(`kind ${JSON.stringify(k)} is not one of node, service, task, network, volume, volume-class, secret, config, cluster`);
  return k;
}

export class StoreService {
  private server?: grpc.Server;
  port = 0;

  constructor(private readonly node: ReplicatedNode) {}

  async start(listen: string): Promise<number> {
    // Channelz stays on: with 'grpc.enable_channelz': 0, grpc-js 1.14's server took a different
    // session path under which a restarted raft peer never reconnected (manager/raftnode tests).
    const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 });
    enableNoDelay(server);
    server.addService(storeServiceCtor().service, {
      Status: (_call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
        const st = this.node.status();
        cb(null, { id: this.node.id, leader: st.lead, role: st.role, term: st.term, commit: st.commit, applied: this.node.store.applied });
      },
      Get: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => void this.get(call.request).then((r) => cb(null, r), (e) => fail(cb, e)),
      List: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => void this.list(call.request).then((r) => cb(null, r), (e) => fail(cb, e)),
      Put: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => void this.write('Put', call, cb),
      Txn: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => void this.write('Txn', call, cb),
      Watch: (call: grpc.ServerWritableStream<any, any>) => this.watch(call),
    });
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(new Error(`Store service cannot listen on ${listen}: ${err.message}`)) : resolve(port))),
    );
    this.server = server;
    return this.port;
  }

  private async readPoint(consistency: number): Promise<void> {
    if (consistency !== 1) await this.node.linearizableRead();
  }

  private async get(req: { kind: string; id: string; name: string; consistency: number }) {
    const kind = kindOf(req.kind);
    if (!req.id && !req.name) throw new BadRequest('Get needs an id or a name');
    await this.readPoint(req.consistency);
    const s = this.node.store;
    const o = req.id ? s.get(kind, req.id) : s.getByName(kind, req.name);
    return { found: !!o, object: o ? toWire(o) : null, version: s.applied };
  }

  private async list(req: { kind: string; service_id: string; node_id: string; labels: Record<string, string>; consistency: number }) {
    const kind = kindOf(req.kind);
    await this.readPoint(req.consistency);
    const s = this.node.store;
    const q: { serviceId?: string; nodeId?: string; labels?: Record<string, string> } = {};
    if (req.service_id) q.serviceId = req.service_id;
    if (req.node_id) q.nodeId = req.node_id;
    if (req.labels && Object.keys(req.labels).length > 0) q.labels = req.labels;
    return { objects: s.list(kind, q).map(toWire), version: s.applied };
  }

  private toOps(method: 'Put' | 'Txn', req: any): TxnOp[] {
    if (method === 'Put') {
      const ev = req.check_version ? { expectVersion: Number(req.expect_version) } : {};
      return [{ op: 'put', object: fromWire(req.object as WireObject), ...ev }];
    }
    return ((req.ops ?? []) as WireOp[]).map(opFromWire);
  }

  private reply(method: 'Put' | 'Txn', r: TxnResult & { ok: true }) {
    // Put answers with the version only: echoing the object back would cost an encode per write.
    if (method === 'Put') return { version: r.version };
    return { version: r.version, objects: r.objects.map((o) => (o ? toWire(o) : null)) };
  }

  private async write(method: 'Put' | 'Txn', call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>): Promise<void> {
    try {
      // On a follower raft forwards the proposal to the leader (see ReplicatedNode.propose).
      const ops = this.toOps(method, call.request);
      cb(null, this.reply(method, await this.node.propose(ops)));
    } catch (e) {
      fail(cb, e);
    }
  }

  private watch(call: grpc.ServerWritableStream<any, any>): void {
    const req = call.request as { kinds: string[]; labels: Record<string, string>; has_from_version: boolean; from_version: number };
    let done = false;
    const end = (e?: unknown) => {
      if (done) return;
      done = true;
      w?.cancel();
      // grpc-js turns an 'error' on a server stream into the call's final status.
      if (e) call.emit('error', { code: statusOf(e).code, details: statusOf(e).details });
      else call.end();
    };
    let w: { cancel(): void } | undefined;
    try {
      const kinds = (req.kinds ?? []).map(kindOf);
      const send = (evs: StoreEvent[]) => {
        if (done) return;
        for (const e of evs) call.write({ version: e.version, type: e.type, object: toWire(e.object) });
        // A watcher that cannot keep up is cut off rather than allowed to grow without bound.
        if (call.writableLength > MAX_WATCH_BACKLOG) end(new TooOldError(0, this.node.store.applied));
      };
      w = this.node.store.watch(
        { kinds, labels: req.labels && Object.keys(req.labels).length > 0 ? req.labels : undefined },
        send,
        req.has_from_version ? Number(req.from_version) : undefined,
        () => end(new TooOldError(0, this.node.store.applied)),
      );
    } catch (e) {
      end(e);
      return;
    }
    call.on('cancelled', () => end());
    call.on('error', () => end());
  }

  async stop(): Promise<void> {
    this.server?.forceShutdown();
    this.server = undefined;
  }
}
