// gRPC transport for raft messages between managers (proto/raft/transport.proto). It serves the
// receiving side (batches and chunked snapshots, handed to `onMessage`) and keeps one Peer per
// other member for the sending side. Security: the owner passes credentials. Without them it is
// plaintext, only for loopback (the transport tests, manager/store-main.ts); shoald passes mTLS
// server credentials that require a CA-signed client certificate, client credentials built anew
// for each peer client (after a renewal `updateCredentials()` makes every peer reconnect with the
// current ones), and `authorize`, asked at the start of every incoming call and again at least
// once a second on a long-lived stream, so a peer removed or demoted meanwhile is cut off.
import * as grpc from '@grpc/grpc-js';
import { GuardedServer, type GuardLimits } from '../../proto/guarded-server.js';
import { loadProto } from '../../proto/load.js';
import type { Message, NodeId } from '../types.js';
import { decodeMessage, WIRE_FORMAT } from './codec.js';
import { CHANNEL_OPTIONS, Peer, type PeerChannel, type PeerOptions } from './peer.js';

export interface TransportOptions extends Partial<PeerOptions> {
  id: NodeId;
  /** host:port to listen on, e.g. 127.0.0.1:0 */
  listen: string;
  /** Handed every raft message that arrives for this node (snapshots complete). */
  onMessage(m: Message): void;
  onUnreachable?(id: NodeId): void;
  onSnapshotStatus?(id: NodeId, ok: boolean): void;
  log?(msg: string): void;
  /** Largest snapshot accepted, bytes; default 4 GiB. */
  maxSnapshotBytes?: number;
  /** Server side (e.g. mTLS requiring a client certificate); default insecure (loopback only). */
  serverCredentials?: grpc.ServerCredentials;
  /** Client side, called whenever a peer's client is (re)created so a renewed certificate is used. */
  channelCredentials?: () => grpc.ChannelCredentials;
  /** Merged over the transport's own channel options (e.g. the TLS target name). */
  channelOptions?: grpc.ChannelOptions;
  /** Overrides of the listener's bounds (RAFT_LISTENER_LIMITS). */
  listenerLimits?: Partial<GuardLimits>;
  /** Undefined if the caller of this incoming call may talk raft to us, else the status to refuse it with. */
  authorize?(call: grpc.ServerReadableStream<unknown, unknown>): { code: grpc.status; details: string } | undefined;
}

/**
 * Bounds of the raft listener (proto/guarded-server.ts). Its peers are the other managers: each
 * holds one connection to us (two while a renewed certificate replaces it), and under mTLS a
 * client without a certificate of the cluster's CA fails the TLS handshake. So: few connections
 * per host, a handshake (and first call) within 5 s, and the receive budget only ever used by a
 * call that is not a stream of an authenticated peer (none in this service).
 */
export const RAFT_LISTENER_LIMITS: Partial<GuardLimits> = {
  maxConnections: 256,
  maxConnectionsPerHost: 16,
  maxUnauthenticated: 64,
  maxUnauthenticatedPerHost: 8,
  firstCallMs: 5_000,
  unauthenticatedMs: 10_000,
  maxCallsPerUnauthenticated: 2,
  maxMessageBytes: 64 << 20,
  receiveBudgetBytes: 128 << 20,
  unauthenticatedBudgetBytes: 64 << 20,
  unauthenticatedBudgetPerHostBytes: 64 << 20,
};

/** How often a long-lived incoming stream is authorized again (membership and roles change). */
const REAUTHORIZE_MS = 1000;

const DEFAULT_PEER: PeerOptions = {
  sendTimeoutMs: 2000,
  backoffMinMs: 100,
  backoffMaxMs: 5000,
  maxQueue: 4096,
  maxBatchBytes: 4 << 20,
  snapshotChunkBytes: 512 << 10,
  snapshotStallMs: 10_000,
};

interface BatchMsg { format: number; from: number; to: number; messages: Buffer[] }
interface ChunkMsg { format: number; from: number; to: number; header: Buffer; offset: number; total: number; data: Buffer }

let ctorCache: grpc.ServiceClientConstructor | undefined;
function serviceCtor(): grpc.ServiceClientConstructor {
  if (!ctorCache) {
    const pkg = loadProto('raft/transport.proto') as any;
    ctorCache = pkg.shoal.raft.v1.RaftTransport as grpc.ServiceClientConstructor;
  }
  return ctorCache;
}

export class RaftTransport {
  private server?: GuardedServer;
  private readonly peers = new Map<NodeId, Peer>();
  private readonly opts: PeerOptions;
  private readonly channel: PeerChannel;
  readonly received = { batches: 0, messages: 0, snapshots: 0, refused: 0, unauthorized: 0 };
  port = 0;

  constructor(private readonly o: TransportOptions) {
    this.opts = { ...DEFAULT_PEER, ...Object.fromEntries(Object.entries(o).filter(([k]) => k in DEFAULT_PEER)) } as PeerOptions;
    this.channel = {
      credentials: () => o.channelCredentials?.() ?? grpc.credentials.createInsecure(),
      options: { ...CHANNEL_OPTIONS, ...o.channelOptions },
    };
  }

  private log(msg: string): void {
    this.o.log?.(msg);
  }

  async start(): Promise<number> {
    // The guard's own listener sets TCP_NODELAY on what it accepts (see nodelay.ts for why).
    const server = new GuardedServer({
      name: `raft listener (node ${this.o.id})`,
      auth: this.o.serverCredentials ? 'client-cert' : 'any-call',
      limits: { ...RAFT_LISTENER_LIMITS, ...this.o.listenerLimits },
      options: {
        'grpc.keepalive_permit_without_calls': 1,
        'grpc.http2.min_ping_interval_without_data_ms': 1000,
      } as grpc.ServerOptions,
      ...(this.o.log ? { log: this.o.log } : {}),
    });
    server.addService(serviceCtor().service, {
      Stream: (call: grpc.ServerReadableStream<BatchMsg, unknown>, cb: grpc.sendUnaryData<unknown>) => this.serveStream(call, cb),
      SendSnapshot: (call: grpc.ServerReadableStream<ChunkMsg, unknown>, cb: grpc.sendUnaryData<unknown>) => this.serveSnapshot(call, cb),
    });
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(this.o.listen, this.o.serverCredentials ?? grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(new Error(`raft transport cannot listen on ${this.o.listen}: ${err.message}`)) : resolve(port))),
    );
    this.server = server;
    return this.port;
  }

  private refuse(what: string): void {
    this.received.refused++;
    this.log(`raft transport: refused ${what}`);
  }

  /** The refusal for this call's peer, counted and logged, or undefined if it may proceed. */
  private unauthorized(call: grpc.ServerReadableStream<any, unknown>, what: string): grpc.ServiceError | undefined {
    if (!this.o.authorize) return undefined;
    let r: { code: grpc.status; details: string } | undefined;
    try {
      r = this.o.authorize(call);
    } catch (e) {
      r = { code: grpc.status.INTERNAL, details: `authorizing the raft peer failed: ${(e as Error).message}` };
    }
    if (!r) return undefined;
    this.received.refused++;
    this.received.unauthorized++;
    this.log(`raft transport: refused ${what} from ${call.getPeer()}: ${r.details}`);
    return Object.assign(new Error(r.details), { code: r.code, details: r.details, metadata: new grpc.Metadata() }) as grpc.ServiceError;
  }

  private serveStream(call: grpc.ServerReadableStream<BatchMsg, unknown>, cb: grpc.sendUnaryData<unknown>): void {
    const denied = this.unauthorized(call, 'a raft stream');
    if (denied) {
      cb(denied);
      return;
    }
    let authorizedAt = Date.now();
    let done = false;
    // Headers tell the sender the stream is really open (see Peer.open).
    call.sendMetadata(new grpc.Metadata());
    const finish = (err: grpc.ServiceError | null) => {
      if (done) return;
      done = true;
      cb(err, err ? undefined : {});
    };
    call.on('data', (b: BatchMsg) => {
      if (done) return;
      if (this.o.authorize && Date.now() - authorizedAt >= REAUTHORIZE_MS) {
        const d = this.unauthorized(call, 'a raft stream (authorized again)');
        if (d) return finish(d);
        authorizedAt = Date.now();
      }
      if (b.format !== WIRE_FORMAT) {
        this.refuse(`a batch in wire format ${b.format} from ${b.from} (this manager speaks ${WIRE_FORMAT})`);
        finish({ code: grpc.status.FAILED_PRECONDITION, details: `wire format ${b.format} is not supported; this manager speaks ${WIRE_FORMAT}` } as grpc.ServiceError);
        return;
      }
      if (b.to !== this.o.id) {
        this.refuse(`a batch for node ${b.to} from ${b.from}: this is node ${this.o.id}`);
        finish({ code: grpc.status.FAILED_PRECONDITION, details: `this is raft node ${this.o.id}, not ${b.to}; check the peer list` } as grpc.ServiceError);
        return;
      }
      this.received.batches++;
      for (const raw of b.messages) {
        let m: Message;
        try {
          m = decodeMessage(raw);
        } catch (e) {
          this.refuse(`a malformed message from ${b.from}: ${(e as Error).message}`);
          continue;
        }
        this.received.messages++;
        this.o.onMessage(m);
      }
    });
    call.on('end', () => finish(null));
    call.on('error', () => finish(null));
  }

  private serveSnapshot(call: grpc.ServerReadableStream<ChunkMsg, unknown>, cb: grpc.sendUnaryData<unknown>): void {
    const denied = this.unauthorized(call, 'a snapshot');
    if (denied) {
      cb(denied);
      return;
    }
    const max = this.o.maxSnapshotBytes ?? 4 * 2 ** 30;
    let header: Message | undefined;
    let buf: Buffer | undefined;
    let got = 0;
    let failed = '';
    let done = false;
    const answer = (accepted: boolean, error: string) => {
      if (done) return;
      done = true;
      cb(null, { accepted, error });
    };
    call.on('data', (c: ChunkMsg) => {
      if (failed) return;
      try {
        if (c.format !== WIRE_FORMAT) throw new Error(`wire format ${c.format} is not supported; this manager speaks ${WIRE_FORMAT}`);
        if (c.to !== this.o.id) throw new Error(`this is raft node ${this.o.id}, not ${c.to}`);
        if (!buf) {
          if (c.offset !== 0 || c.header.length === 0) throw new Error('the first snapshot chunk must start at offset 0 and carry the header');
          if (c.total > max) throw new Error(`snapshot of ${c.total} bytes exceeds the limit of ${max}`);
          header = decodeMessage(c.header);
          if (!header.snapshot) throw new Error('snapshot header carries no snapshot meta');
          buf = Buffer.allocUnsafe(c.total);
        }
        if (c.offset !== got || c.total !== buf.length || got + c.data.length > buf.length) throw new Error(`snapshot chunk at offset ${c.offset} (+${c.data.length}) does not follow ${got} of ${buf.length}`);
        c.data.copy(buf, got);
        got += c.data.length;
      } catch (e) {
        failed = (e as Error).message;
        this.refuse(`a snapshot from ${c.from}: ${failed}`);
      }
    });
    call.on('end', () => {
      if (failed) return answer(false, failed);
      if (!header || !buf || got !== buf.length) return answer(false, `snapshot incomplete: ${got} of ${buf?.length ?? '?'} bytes`);
      header.snapshot!.data = buf;
      this.received.snapshots++;
      try {
        this.o.onMessage(header);
      } catch (e) {
        return answer(false, (e as Error).message);
      }
      answer(true, '');
    });
    call.on('error', () => answer(false, 'stream broke'));
  }

  /** Adds or re-addresses a peer. */
  addPeer(id: NodeId, addr: string): void {
    const old = this.peers.get(id);
    if (old && old.addr === addr) return;
    old?.close();
    this.peers.set(id, new Peer(id, this.o.id, addr, serviceCtor() as never, this.opts, this.channel, {
      unreachable: (p) => this.o.onUnreachable?.(p),
      snapshotStatus: (p, ok) => this.o.onSnapshotStatus?.(p, ok),
      log: (m) => this.log(m),
    }));
  }

  /**
   * New client credentials (after a certificate renewal or a role change): every peer drops its
   * connection and reconnects with what `channelCredentials` returns now. Queued messages stay
   * queued; a batch in flight may be lost (raft retransmits).
   */
  updateCredentials(): void {
    for (const p of this.peers.values()) p.renewClient();
  }

  removePeer(id: NodeId): void {
    this.peers.get(id)?.close();
    this.peers.delete(id);
  }

  peer(id: NodeId): Peer | undefined {
    return this.peers.get(id);
  }

  /** Sends each message to its `to`; messages for unknown peers are dropped (and reported). */
  send(msgs: Message[]): void {
    for (const m of msgs) {
      const p = this.peers.get(m.to);
      if (p) p.send(m);
      else {
        this.log(`raft transport: no address for node ${m.to}; dropping a message`);
        this.o.onUnreachable?.(m.to);
      }
    }
  }

  async stop(): Promise<void> {
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
    const s = this.server;
    this.server = undefined;
    if (s) s.forceShutdown();
  }
}

export { CHANNEL_OPTIONS };
