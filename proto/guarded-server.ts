// A grpc.Server that bounds what a client can make it hold before and while it proves who it is.
// Every shoal gRPC listener is one of these: the raft transport, the manager's mTLS API (CA,
// control, dispatcher, logs), the node's local socket and the CRI runtime's socket.
//
// grpc-js on its own accepts any number of connections, keeps a TLS handshake open for two
// minutes, allows unlimited streams per connection and buffers each stream's request message
// (up to the receive limit) as it arrives, so held connections and half-sent messages grow a
// server without bound. Here the server listens itself and hands each accepted socket to grpc-js
// (`createConnectionInjector`), so it can:
//   - cap connections: in all, per source host, and (TCP) those not yet authenticated; when a
//     cap in all is reached, the connection idle longest (no call in flight) is closed to make
//     room, so held connections push out only each other, never a client that is calling;
//   - close a connection that starts no call within `firstCallMs` (a held socket, a stalled TLS
//     handshake) or, for `auth: 'client-cert'`, makes no call with a verified client
//     certificate within `unauthenticatedMs` (the bootstrap calls of a join need only seconds);
//   - cap the calls in flight on a connection not yet authenticated;
//   - let a request message be read only within a receive budget: each call reading its request
//     reserves `maxMessageBytes`; while the budget is spent, further calls wait (their HTTP/2
//     stream paused, so flow control keeps the client to one window, 64 KiB) up to `waitMs`, at
//     most `maxWaiting` of them; a request not complete `readMs` after its read began is cut
//     (a slow sender). Unauthenticated calls have their own, smaller share of the budget and a
//     per-host part of it, so an unauthenticated host cannot starve members. Client- and
//     bidi-streaming calls of authenticated clients (raft streams, log publishing) read freely:
//     their peers are members;
//   - stop a call that ends before its whole request arrived (refused, timed out waiting, over
//     the message limit) from sending the rest: grpc-js answers such a call with its status but
//     then reads and discards what the client goes on sending, so each refused 4 MiB request
//     passed all of its bytes through the server as garbage, hundreds of MiB in a flood, held
//     until the next GC; its stream is reset (NO_ERROR, after the status, as HTTP/2 8.1 allows);
//   - count everything it refuses and log it, rate-limited.
// Unix sockets have no source address: there the per-host and authentication rules do not apply
// (their callers are root on the host anyway); the rest does.
import http2 from 'node:http2';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';

export interface GuardLimits {
  /** Connections open at once; more are closed as they are accepted. */
  maxConnections: number;
  /** Of those, from one source address (TCP). */
  maxConnectionsPerHost: number;
  /** Connections that have not yet made an authenticated call (TCP), in all and per host. */
  maxUnauthenticated: number;
  maxUnauthenticatedPerHost: number;
  /** A TCP connection must start a call within this (covers the TLS handshake). */
  firstCallMs: number;
  /** With `auth: 'client-cert'`: a connection must make a call with a verified client
   * certificate within this, else it is closed (a join's bootstrap calls take seconds). */
  unauthenticatedMs: number;
  /** Calls in flight on one connection that is not authenticated. */
  maxCallsPerUnauthenticated: number;
  /** grpc.max_receive_message_length. */
  maxMessageBytes: number;
  /** Request bytes being received at once: reading calls x maxMessageBytes stays within this. */
  receiveBudgetBytes: number;
  /** Part of the budget unauthenticated calls may use, and the part one host's may use. */
  unauthenticatedBudgetBytes: number;
  unauthenticatedBudgetPerHostBytes: number;
  /** A request message must be complete this long after its read began. */
  readMs: number;
  /** A call waits at most this long for its turn to read. */
  waitMs: number;
  /** Calls waiting for their turn to read, at most; when full, the connection with the most
   * waiting calls gives up its newest for a connection with fewer. */
  maxWaiting: number;
  /** HTTP/2 streams (calls) open at once on one connection. */
  maxConcurrentStreams: number;
  /** A connection without calls is closed after this. */
  idleMs: number;
  /** Per-host caps do not apply to loopback clients (they run on this machine, like a Unix
   * socket's; the tests and benchmarks run whole clusters on 127.0.0.1). */
  exemptLoopback: boolean;
}

export const DEFAULT_GUARD_LIMITS: GuardLimits = {
  maxConnections: 4096,
  maxConnectionsPerHost: 64,
  maxUnauthenticated: 256,
  maxUnauthenticatedPerHost: 8,
  firstCallMs: 10_000,
  unauthenticatedMs: 60_000,
  maxCallsPerUnauthenticated: 4,
  maxMessageBytes: 4 << 20,
  receiveBudgetBytes: 64 << 20,
  unauthenticatedBudgetBytes: 16 << 20,
  unauthenticatedBudgetPerHostBytes: 8 << 20,
  readMs: 5_000,
  waitMs: 15_000,
  maxWaiting: 256,
  maxConcurrentStreams: 128,
  idleMs: 5 * 60_000,
  exemptLoopback: true,
};

export interface GuardOptions {
  /** Named in logs and errors: "control API", "raft transport", "local socket", "CRI". */
  name: string;
  /** 'client-cert': a call is authenticated when TLS verified a client certificate (the mTLS
   * listeners). 'any-call': every call is (Unix sockets, whose permissions are the check, and
   * the plaintext loopback transport of tests). */
  auth: 'client-cert' | 'any-call';
  limits?: Partial<GuardLimits>;
  log?: (msg: string) => void;
  /** More grpc.Server options (e.g. keepalive), merged over the guard's. */
  options?: grpc.ServerOptions;
}

export type GuardDrop =
  | 'connections' | 'connectionsPerHost' | 'unauthenticated' | 'unauthenticatedPerHost'
  | 'evicted' | 'noCall' | 'notAuthenticated' | 'callsPerUnauthenticated' | 'waiting' | 'waitTimeout' | 'readTimeout';

export interface GuardStats {
  accepted: number;
  open: number;
  openMax: number;
  unauthenticatedOpen: number;
  /** Calls reading their request now, and bytes reserved for them. */
  reading: number;
  reservedBytes: number;
  reservedBytesMax: number;
  waiting: number;
  dropped: Record<GuardDrop, number>;
}

interface Conn {
  sock: net.Socket;
  key: string;
  host: string;
  authenticated: boolean;
  called: boolean;
  calls: number;
  /** Calls of this connection reading their request now, and waiting to. */
  reads: number;
  waiting: number;
  /** When a call of this connection was last given its turn to read (a sequence number). */
  lastTurn: number;
  /** When it connected, or a call of it last began or ended (ms): the idlest is evicted first. */
  lastActive: number;
  timers: NodeJS.Timeout[];
}

interface Waiter {
  grant(): void;
  refuse(why: string): void;
  conn: Conn | undefined;
  unauth: boolean;
  timer?: NodeJS.Timeout;
}

const RESOURCE_EXHAUSTED = grpc.status.RESOURCE_EXHAUSTED;

export class GuardedServer extends grpc.Server {
  readonly stats: GuardStats = {
    accepted: 0, open: 0, openMax: 0, unauthenticatedOpen: 0, reading: 0, reservedBytes: 0, reservedBytesMax: 0, waiting: 0,
    dropped: { connections: 0, connectionsPerHost: 0, unauthenticated: 0, unauthenticatedPerHost: 0, evicted: 0, noCall: 0, notAuthenticated: 0, callsPerUnauthenticated: 0, waiting: 0, waitTimeout: 0, readTimeout: 0 },
  };
  readonly limits: GuardLimits;
  private readonly conns = new Map<string, Conn>();
  private readonly perHost = new Map<string, number>();
  private readonly unauthPerHost = new Map<string, number>();
  private readonly unauthReservedPerHost = new Map<string, number>();
  private unauthReserved = 0;
  private unixSeq = 0;
  private turns = 0;
  /** Whether grpc-js's base call showed its HTTP/2 stream (see resetStream); set by the first call. */
  streamsResettable: boolean | undefined;
  private readonly queue: Waiter[] = [];
  private readonly listeners: net.Server[] = [];
  private readonly injectors: grpc.ConnectionInjector[] = [];
  private readonly dropLog: RateLimitedLog;

  constructor(private readonly g: GuardOptions) {
    const limits = { ...DEFAULT_GUARD_LIMITS, ...g.limits };
    const self: { guard?: GuardedServer } = {};
    super({
      'grpc.max_receive_message_length': limits.maxMessageBytes,
      'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
      'grpc.max_connection_idle_ms': limits.idleMs,
      ...g.options,
      interceptors: [(method, call) => self.guard!.intercept(method, call), ...(g.options?.interceptors ?? [])],
    });
    self.guard = this;
    this.limits = limits;
    this.dropLog = new RateLimitedLog(g.name, g.log);
  }

  /**
   * Listens on `host:port` (port 0 picks one), `[v6]:port` or `unix:PATH` / `unix:///PATH` and
   * serves with `creds`; as grpc.Server's, but through the guard.
   */
  override bindAsync(port: string, creds: grpc.ServerCredentials, callback: (error: Error | null, port: number) => void): void {
    this.listen(port, creds).then((p) => callback(null, p), (e: Error) => callback(e, -1));
  }

  async listen(address: string, creds: grpc.ServerCredentials): Promise<number> {
    const injector = this.createConnectionInjector(creds);
    const unix = /^unix:(\/\/)?/.exec(address);
    const srv = net.createServer({ noDelay: true }, (sock) => this.accept(sock, injector, !!unix));
    srv.on('error', () => {}); // after listening: accept errors (EMFILE) only
    const opts: net.ListenOptions = unix ? { path: address.slice(unix[0].length) } : splitHostPort(address);
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(opts, () => {
        srv.off('error', reject);
        resolve();
      });
    }).catch((e: Error) => {
      injector.destroy();
      throw new Error(`${this.g.name}: cannot listen on ${address}: ${e.message}`);
    });
    this.listeners.push(srv);
    this.injectors.push(injector);
    const a = srv.address();
    return typeof a === 'object' && a ? a.port : 1;
  }

  override tryShutdown(callback: (error?: Error) => void): void {
    this.closeListeners();
    super.tryShutdown(callback);
  }

  override forceShutdown(): void {
    this.closeListeners();
    for (const c of this.conns.values()) c.sock.destroy();
    super.forceShutdown();
  }

  private closeListeners(): void {
    for (const l of this.listeners.splice(0)) l.close();
    for (const i of this.injectors.splice(0)) i.destroy();
    for (const c of this.conns.values()) c.timers.forEach(clearTimeout);
    for (const w of this.queue.splice(0)) clearTimeout(w.timer);
  }

  // ---- connections ----

  private drop(what: GuardDrop, detail: string): void {
    this.stats.dropped[what]++;
    this.dropLog.note(what, detail);
  }

  private accept(sock: net.Socket, injector: grpc.ConnectionInjector, unix: boolean): void {
    sock.on('error', () => {});
    const L = this.limits;
    const host = unix ? 'local' : normHost(sock.remoteAddress ?? '?');
    const from = unix ? 'a local client' : `${host}:${sock.remotePort ?? 0}`;
    if (this.stats.open >= L.maxConnections && !this.evictIdle(() => true, `${this.stats.open} connections open (limit ${L.maxConnections})`)) {
      this.drop('connections', `connection from ${from} refused: ${this.stats.open} open (limit ${L.maxConnections}), none of them idle`);
      return void sock.destroy();
    }
    let c: Conn;
    if (unix) {
      // A Unix socket has no peer address; a number of our own in remotePort (grpc-js reports it
      // in the call's connection info, and shows no peer address either way) tells its calls apart.
      const n = ++this.unixSeq;
      Object.defineProperty(sock, 'remotePort', { value: n });
      c = { sock, key: connKey(undefined, n), host, authenticated: true, called: false, calls: 0, reads: 0, waiting: 0, lastTurn: 0, lastActive: Date.now(), timers: [] };
    } else {
      const local = L.exemptLoopback && isLoopback(host);
      const onHost = local ? 0 : this.perHost.get(host) ?? 0;
      if (onHost >= L.maxConnectionsPerHost) {
        this.drop('connectionsPerHost', `connection from ${from} refused: ${onHost} open from ${host} (limit ${L.maxConnectionsPerHost} per host)`);
        return void sock.destroy();
      }
      const unauthOnHost = local ? 0 : this.unauthPerHost.get(host) ?? 0;
      if (unauthOnHost >= L.maxUnauthenticatedPerHost) {
        this.drop('unauthenticatedPerHost', `connection from ${from} refused: ${unauthOnHost} connections from ${host} have not authenticated yet (limit ${L.maxUnauthenticatedPerHost} per host)`);
        return void sock.destroy();
      }
      if (this.stats.unauthenticatedOpen >= L.maxUnauthenticated && !this.evictIdle((x) => !x.authenticated, `${this.stats.unauthenticatedOpen} connections have not authenticated yet (limit ${L.maxUnauthenticated})`)) {
        this.drop('unauthenticated', `connection from ${from} refused: ${this.stats.unauthenticatedOpen} connections have not authenticated yet (limit ${L.maxUnauthenticated}), none of them idle`);
        return void sock.destroy();
      }
      c = { sock, key: connKey(sock.remoteAddress, sock.remotePort), host, authenticated: false, called: false, calls: 0, reads: 0, waiting: 0, lastTurn: 0, lastActive: Date.now(), timers: [] };
      bump(this.perHost, host, 1);
      bump(this.unauthPerHost, host, 1);
      this.stats.unauthenticatedOpen++;
    }
    this.conns.set(c.key, c);
    this.track(sock);
    c.timers.push(setTimeout(() => {
      if (c.called) return;
      this.drop('noCall', `closed ${from}: no call within ${L.firstCallMs} ms of connecting (a held connection${unix ? '' : ' or a stalled TLS handshake'})`);
      sock.destroy();
    }, L.firstCallMs));
    if (!c.authenticated && this.g.auth === 'client-cert') {
      c.timers.push(setTimeout(() => {
        if (c.authenticated) return;
        this.drop('notAuthenticated', `closed ${from}: no call with a client certificate within ${L.unauthenticatedMs} ms of connecting`);
        sock.destroy();
      }, L.unauthenticatedMs));
    }
    sock.once('close', () => this.forget(c));
    if (!unix) return injector.injectConnection(sock);
    // A Unix socket's connection reaches grpc-js only once its client has sent something (an
    // HTTP/2 client speaks first: its preface). A held connection that sends nothing then costs
    // a socket, not an HTTP/2 session: grpc-js's session and nghttp2's are freed only when V8
    // collects the session's wrapper, so the local socket's flood of held connections (tens of
    // thousands a minute, each closed to make room) grew RSS by 60-80 MiB of such garbage.
    // Node's HTTP/2 session takes the bytes already read into the socket's buffer. (TLS
    // listeners hand the socket over at once: a TLS socket reads the handle itself.)
    sock.once('readable', () => {
      if (!sock.destroyed) injector.injectConnection(sock);
    });
  }

  /**
   * Makes room for a new connection by closing one without a call in flight among those `which`
   * selects; false if there is none. First one that has sent nothing at all, then one that has
   * made no call yet, then one that has called; the idlest of its kind. A flood of held
   * connections then only pushes out its own: a real client sends its HTTP/2 preface (or TLS
   * hello) as it connects, before its first call reaches the guard, so under a flood it is not
   * closed while its call is on its way, however fast new connections arrive.
   */
  private evictIdle(which: (c: Conn) => boolean, why: string): boolean {
    const kind = (c: Conn): number => (c.called ? 2 : c.sock.bytesRead > 0 ? 1 : 0);
    let idlest: Conn | undefined;
    for (const c of this.conns.values()) {
      if (c.calls > 0 || !which(c) || c.sock.destroyed) continue;
      if (!idlest || kind(c) < kind(idlest) || (kind(c) === kind(idlest) && c.lastActive < idlest.lastActive)) idlest = c;
    }
    if (!idlest) return false;
    this.drop('evicted', `closed ${idlest.host === 'local' ? 'a local client' : idlest.host}'s connection idle for ${Date.now() - idlest.lastActive} ms to make room: ${why}`);
    idlest.sock.destroy();
    // Its close handler updates the counts asynchronously; do it now for the new connection.
    this.forget(idlest);
    return true;
  }

  private forget(c: Conn): void {
    if (this.conns.get(c.key) !== c) return;
    this.conns.delete(c.key);
    c.timers.forEach(clearTimeout);
    this.stats.open--;
    if (c.host === 'local') return;
    bump(this.perHost, c.host, -1);
    if (!c.authenticated) {
      bump(this.unauthPerHost, c.host, -1);
      this.stats.unauthenticatedOpen--;
    }
  }

  private track(_sock: net.Socket): void {
    this.stats.accepted++;
    this.stats.open++;
    if (this.stats.open > this.stats.openMax) this.stats.openMax = this.stats.open;
  }

  private authenticate(c: Conn): void {
    if (c.authenticated) return;
    c.authenticated = true;
    bump(this.unauthPerHost, c.host, -1);
    this.stats.unauthenticatedOpen--;
  }

  // ---- calls ----

  private intercept(method: grpc.ServerMethodDefinition<unknown, unknown>, call: grpc.ServerInterceptingCallInterface): grpc.ServerInterceptingCall {
    this.streamsResettable ??= typeof (call as unknown as { stream?: { close?: unknown } }).stream?.close === 'function';
    const info = call.getConnectionInfo();
    const c = this.conns.get(connKey(info.remoteAddress, info.remotePort));
    const authenticated = this.g.auth === 'any-call' || !!call.getAuthContext()?.sslPeerCertificate;
    if (c) {
      c.called = true;
      c.lastActive = Date.now();
      if (authenticated) this.authenticate(c);
    }
    const unauth = !!c && !c.authenticated;
    const from = info.remoteAddress ? `${normHost(info.remoteAddress)}:${info.remotePort}` : 'the local socket';
    const gated = !method.requestStream || unauth;
    return new GuardedCall(call, this, { unauth, conn: c, gated, what: `${method.path} from ${from}`, reset: (code) => resetStream(call, c, code) });
  }

  /** Asks for a turn to read one request message; `grant` runs once it may read. */
  requestRead(w: Waiter, what: string): void {
    // No queued waiter fits (readDone grants every one that does), so one that fits now goes
    // first: an authenticated call never waits behind unauthenticated ones held to their share.
    if (this.fits(w)) return this.grant(w);
    if (this.queue.length >= this.limits.maxWaiting) {
      // Full: the connection with the most waiting calls gives up its newest, if it has more
      // than this one's would then have; else this call is refused.
      let worst: Waiter | undefined;
      for (const q of this.queue) if (!worst || (q.conn?.waiting ?? 0) >= (worst.conn?.waiting ?? 0)) worst = q;
      if (!worst || (worst.conn?.waiting ?? 0) <= (w.conn?.waiting ?? 0) + 1) {
        this.drop('waiting', `refused ${what}: ${this.queue.length} calls are waiting to read their requests (limit ${this.limits.maxWaiting})`);
        return w.refuse(`${this.g.name} is busy: ${this.queue.length} calls are waiting to send their requests; retry later`);
      }
      this.unqueue(worst);
      this.drop('waiting', `refused a waiting call of a connection with ${(worst.conn?.waiting ?? 0) + 1} waiting, for ${what}`);
      worst.refuse(`${this.g.name} is busy: too many of this connection's calls are waiting to send their requests; retry later`);
    }
    this.stats.waiting++;
    if (w.conn) w.conn.waiting++;
    w.timer = setTimeout(() => {
      if (!this.unqueue(w)) return;
      this.drop('waitTimeout', `refused ${what}: no turn to read its request within ${this.limits.waitMs} ms`);
      w.refuse(`${this.g.name} is busy: no turn to receive the request within ${this.limits.waitMs} ms; retry later`);
    }, this.limits.waitMs);
    this.queue.push(w);
  }

  /** Withdraws a waiter (its call ended). */
  cancelWait(w: Waiter): void {
    this.unqueue(w);
  }

  private unqueue(w: Waiter): boolean {
    const i = this.queue.indexOf(w);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    this.stats.waiting--;
    if (w.conn) w.conn.waiting--;
    clearTimeout(w.timer);
    return true;
  }

  private fits(w: Waiter): boolean {
    const L = this.limits;
    const m = L.maxMessageBytes;
    if (this.stats.reservedBytes + m > L.receiveBudgetBytes && this.stats.reading > 0) return false;
    if (!w.unauth) return true;
    if (this.unauthReserved + m > L.unauthenticatedBudgetBytes && this.unauthReserved > 0) return false;
    if (L.exemptLoopback && isLoopback(w.conn?.host ?? '')) return true;
    const onHost = this.unauthReservedPerHost.get(w.conn?.host ?? '') ?? 0;
    return onHost + m <= L.unauthenticatedBudgetPerHostBytes || onHost === 0;
  }

  private grant(w: Waiter): void {
    const m = this.limits.maxMessageBytes;
    this.stats.reading++;
    this.stats.reservedBytes += m;
    if (this.stats.reservedBytes > this.stats.reservedBytesMax) this.stats.reservedBytesMax = this.stats.reservedBytes;
    if (w.unauth) {
      this.unauthReserved += m;
      bump(this.unauthReservedPerHost, w.conn?.host ?? '', m);
    }
    if (w.conn) {
      w.conn.reads++;
      w.conn.lastTurn = ++this.turns;
    }
    w.grant();
  }

  /** A granted read finished (message, half-close, or the call ended). */
  readDone(w: Waiter): void {
    const m = this.limits.maxMessageBytes;
    this.stats.reading--;
    this.stats.reservedBytes -= m;
    if (w.unauth) {
      this.unauthReserved -= m;
      bump(this.unauthReservedPerHost, w.conn?.host ?? '', -m);
    }
    if (w.conn) w.conn.reads--;
    // Hand the room on. Of the waiters that fit, the one whose connection reads the fewest
    // requests goes first, and among those the connection whose last turn is the oldest (then
    // the oldest waiter): a client holding many half-sent requests does not keep the others
    // waiting, it waits for its own turn as one connection among the others.
    const before = (a: Waiter, b: Waiter): boolean => {
      const ra = a.conn?.reads ?? 0;
      const rb = b.conn?.reads ?? 0;
      if (ra !== rb) return ra < rb;
      return (a.conn?.lastTurn ?? 0) < (b.conn?.lastTurn ?? 0);
    };
    for (;;) {
      let best = -1;
      for (let i = 0; i < this.queue.length; i++) {
        const q = this.queue[i]!;
        if (!this.fits(q)) continue;
        if (best < 0 || before(q, this.queue[best]!)) best = i;
      }
      if (best < 0) return;
      const next = this.queue[best]!;
      this.unqueue(next);
      this.grant(next);
    }
  }

  /** Counts a call refused on a connection that is not authenticated; undefined if it may go on. */
  admitCall(c: Conn | undefined, unauth: boolean, what: string): string | undefined {
    if (!c) return undefined;
    if (unauth && c.calls >= this.limits.maxCallsPerUnauthenticated) {
      this.drop('callsPerUnauthenticated', `refused ${what}: ${c.calls} calls in flight on a connection without a client certificate (limit ${this.limits.maxCallsPerUnauthenticated})`);
      return `${this.g.name}: at most ${this.limits.maxCallsPerUnauthenticated} calls at once on a connection without a client certificate`;
    }
    c.calls++;
    return undefined;
  }

  callDone(c: Conn | undefined): void {
    if (!c) return;
    c.calls--;
    c.lastActive = Date.now();
  }

  readTimedOut(what: string): string {
    this.drop('readTimeout', `cut ${what}: its request was not complete ${this.limits.readMs} ms after it began (a slow or stalled sender)`);
    return `${this.g.name}: the request message was not complete within ${this.limits.readMs} ms; send it in one go`;
  }

  get readMs(): number {
    return this.limits.readMs;
  }
}

/** One call through the guard: admitted or refused at its start, its reads taken in turn. */
class GuardedCall extends grpc.ServerInterceptingCall {
  private ended = false;
  private admitted = false;
  /** The client's half-close came through: its whole request was read. */
  private halfClosed = false;
  /** Metadata or a message went out: the status will come as trailers after them. */
  private responded = false;
  /** Its request was cut at readMs. */
  private cut = false;
  private reading: Waiter | undefined;
  private waiting: Waiter | undefined;
  private readTimer: NodeJS.Timeout | undefined;

  constructor(
    next: grpc.ServerInterceptingCallInterface,
    private readonly guard: GuardedServer,
    private readonly o: { unauth: boolean; conn: Conn | undefined; gated: boolean; what: string; reset(code: number): void },
  ) {
    super(next, {
      start: (nextStart) => {
        const refused = guard.admitCall(o.conn, o.unauth, o.what);
        if (refused) {
          this.ended = true;
          this.sendStatus({ code: RESOURCE_EXHAUSTED, details: refused });
          return;
        }
        this.admitted = true;
        nextStart({
          onReceiveMessage: (msg, n) => {
            this.readFinished();
            n(msg);
          },
          onReceiveHalfClose: (n) => {
            this.halfClosed = true;
            this.readFinished();
            n();
          },
          // Also where grpc-js's own status (a message over the limit) ends the call.
          onCancel: () => {
            this.end();
            this.stopRequest();
          },
        });
      },
      sendMetadata: (md, n) => {
        this.responded = true;
        n(md);
      },
      sendMessage: (msg, n) => {
        this.responded = true;
        n(msg);
      },
      sendStatus: (status, n) => {
        this.end();
        n(status);
        this.stopRequest();
      },
    });
  }

  /**
   * After a status that ended the call before the client's half-close: reset the stream, else
   * grpc-js reads and drops the rest of the request however large (see the top of the file).
   * Only after a trailers-only status, which grpc-js has handed to HTTP/2 by now, so the client
   * gets the status before the reset (Node sends a NO_ERROR reset after the stream's end); a
   * call that already responded is a handler's (past the guard), and its trailers go out later.
   */
  private stopRequest(): void {
    if (this.cut) return this.o.reset(http2.constants.NGHTTP2_CANCEL);
    if (this.halfClosed || this.responded) return;
    this.o.reset(http2.constants.NGHTTP2_NO_ERROR);
  }

  override startRead(): void {
    if (this.ended) return;
    if (!this.o.gated) return super.startRead();
    const w: Waiter = {
      conn: this.o.conn,
      unauth: this.o.unauth,
      grant: () => {
        this.waiting = undefined;
        if (this.ended) return this.guard.readDone(w);
        this.reading = w;
        this.readTimer = setTimeout(() => {
          if (this.reading !== w) return;
          const why = this.guard.readTimedOut(this.o.what);
          // The status alone leaves the client's half of the stream open, and grpc-js keeps the
          // partial message as long as the stream lives: the status resets it (CANCEL: the
          // request was cut). A connection without a certificate that stalls mid-message is
          // closed altogether.
          this.cut = true;
          this.sendStatus({ code: grpc.status.DEADLINE_EXCEEDED, details: why });
          if (this.o.unauth) this.o.conn?.sock.destroy();
        }, this.guard.readMs);
        super.startRead();
      },
      refuse: (why) => {
        this.waiting = undefined;
        this.sendStatus({ code: RESOURCE_EXHAUSTED, details: why });
      },
    };
    this.waiting = w;
    this.guard.requestRead(w, this.o.what);
  }

  private readFinished(): void {
    const w = this.reading;
    if (!w) return;
    this.reading = undefined;
    clearTimeout(this.readTimer);
    this.guard.readDone(w);
  }

  /** The call is over (status sent or cancelled): give back its turn and its slot. Idempotent. */
  private end(): void {
    this.ended = true;
    if (this.waiting) {
      this.guard.cancelWait(this.waiting);
      this.waiting = undefined;
    }
    this.readFinished();
    if (this.admitted) {
      this.admitted = false;
      this.guard.callDone(this.o.conn);
    }
  }
}

/** The first drop of each kind is logged at once, later ones summed once per 10 s. */
class RateLimitedLog {
  private readonly pending = new Map<string, { n: number; last: string }>();
  private readonly lastAt = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly name: string, private readonly log: ((m: string) => void) | undefined, private readonly everyMs = 10_000) {}

  note(what: string, detail: string): void {
    if (!this.log) return;
    const now = Date.now();
    const at = this.lastAt.get(what);
    if (at === undefined || now - at >= this.everyMs) {
      this.lastAt.set(what, now);
      this.log(`${this.name}: ${detail}`);
      return;
    }
    const p = this.pending.get(what) ?? { n: 0, last: '' };
    p.n++;
    p.last = detail;
    this.pending.set(what, p);
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.everyMs - (now - at));
      this.timer.unref();
    }
  }

  private flush(): void {
    this.timer = undefined;
    const now = Date.now();
    for (const [what, p] of this.pending) {
      this.lastAt.set(what, now);
      this.log?.(`${this.name}: ${p.n} more refused (${what}) in the last ${Math.round(this.everyMs / 1000)} s; the last: ${p.last}`);
    }
    this.pending.clear();
  }
}

/**
 * Resets a call's HTTP/2 stream (RST_STREAM `code`, CANCEL unless given), so grpc-js lets go of
 * what it received of its request and the client stops sending it. grpc-js keeps the stream in a
 * private field of its base call, which is the call our interceptor (first in the chain) wraps;
 * if it is not there (another grpc-js version: guarded-server.test.ts checks), the whole
 * connection is closed instead. With NO_ERROR Node sends the reset once the stream's own end
 * (the status) is out.
 */
export function resetStream(call: grpc.ServerInterceptingCallInterface, c: Conn | undefined, code: number = http2.constants.NGHTTP2_CANCEL): boolean {
  const stream = (call as unknown as { stream?: http2.ServerHttp2Stream }).stream;
  if (stream && typeof stream.close === 'function') {
    if (!stream.closed) stream.close(code);
    return true;
  }
  c?.sock.destroy();
  return false;
}

function bump(m: Map<string, number>, k: string, d: number): void {
  const v = (m.get(k) ?? 0) + d;
  if (v > 0) m.set(k, v);
  else m.delete(k);
}

function isLoopback(h: string): boolean {
  return h === '::1' || h.startsWith('127.');
}

function normHost(h: string): string {
  return h.replace(/^::ffff:/, '');
}

function connKey(addr: string | undefined, port: number | undefined): string {
  return `${normHost(addr ?? '?')}|${port ?? 0}`;
}

function splitHostPort(address: string): net.ListenOptions {
  const a = address.replace(/^dns:(\/\/\/)?/, '').replace(/^ipv[46]:/, '');
  const m = /^\[(.*)\]:(\d+)$/.exec(a) ?? /^(.*):(\d+)$/.exec(a);
  if (!m) throw new Error(`bad listen address "${address}": expected host:port, [v6]:port or unix:PATH`);
  return { host: m[1] === '' ? undefined : m[1], port: Number(m[2]) } as net.ListenOptions;
}
