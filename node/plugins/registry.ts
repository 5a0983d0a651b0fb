// The node's plugin registry, as the kubelet's plugin watcher: plugins put a Unix socket in the
// node's plugins_registry/ directory and serve pluginregistration.Registration on it. For each
// new socket the registry calls GetInfo, validates the answer (validate.ts) and the plugin's
// own service (kinds.ts), tells the plugin the outcome (NotifyRegistrationStatus) and keeps the
// plugin in its list, which shoald reports to the managers with the node. A plugin leaves when
// its socket is removed, replaced, or stops accepting connections (its process died).
// A socket that answers garbage, does not answer, or offers something shoal does not take is
// refused with a message saying so, and nothing else is affected.
import * as grpc from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import { lstatSync, mkdirSync, readdirSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { registrationService, type PluginInfo } from '../../proto/pluginregistration/v1/registration.js';
import { defaultKindChecks, reachable, type KindCheck, type KindDetails } from './kinds.js';
import { validateInfo } from './validate.js';

export interface RegisteredPlugin extends KindDetails {
  kind: string;
  name: string;
  /** Where the plugin's service is (a Unix socket path). */
  endpoint: string;
  versions: string[];
  /** The version shoal chose to speak with it (the highest it offers that shoal speaks). */
  version: string;
  /** Its registration socket. */
  socket: string;
  registeredAt: string;
}

export interface RefusedSocket { socket: string; reason: string; at: string }

export interface RegistryOptions {
  /** The node's plugins_registry/ directory (created if missing). */
  dir: string;
  /** Deadline of each call to a plugin (GetInfo, NotifyRegistrationStatus, kind checks). */
  timeoutMs?: number;
  /** How often the directory is read again and registered plugins checked for life. */
  rescanMs?: number;
  /** How long a refused socket rests before it is tried again (a changed socket is tried at once). */
  retryMs?: number;
  /** The plugin types taken, with their checks (default: CSIPlugin, ShoalNetworkPlugin, ShoalRuntimePlugin). */
  kinds?: Record<string, KindCheck>;
  log?: (msg: string) => void;
}

interface Seen { ino: number; since: number; transient: boolean }

/**
 * Events: 'registered' (RegisteredPlugin), 'deregistered' (RegisteredPlugin, reason),
 * 'refused' (RefusedSocket), 'change' (after any of them).
 */
export class PluginRegistry extends EventEmitter {
  readonly dir: string;
  private readonly timeoutMs: number;
  private readonly rescanMs: number;
  private readonly retryMs: number;
  private readonly kinds: Record<string, KindCheck>;
  private readonly log: (msg: string) => void;
  private readonly plugins = new Map<string, RegisteredPlugin & { ino: number }>(); // by socket
  private readonly refusedBy = new Map<string, RefusedSocket & Seen>(); // by socket
  private readonly pending = new Map<string, Promise<void>>(); // by socket
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private rescanWanted = false;
  private stopped = false;

  constructor(o: RegistryOptions) {
    super();
    this.dir = o.dir;
    this.timeoutMs = o.timeoutMs ?? 5000;
    this.rescanMs = o.rescanMs ?? 2000;
    this.retryMs = o.retryMs ?? 30_000;
    this.kinds = o.kinds ?? defaultKindChecks;
    this.log = o.log ?? ((m) => process.stderr.write(`plugins: ${m}\n`));
  }

  /** Starts watching; resolves once the sockets already there have been tried. */
  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o750 });
    this.watcher = watch(this.dir, () => this.kick());
    this.watcher.on('error', (e) => this.log(`watching ${this.dir} failed (${e.message}); reading it every ${this.rescanMs} ms instead`));
    this.timer = setInterval(() => this.kick(), this.rescanMs);
    await this.scan();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    await this.scanning;
    await Promise.allSettled([...this.pending.values()]);
  }

  /** The registered plugins (what shoald reports with the node). */
  list(): RegisteredPlugin[] {
    return [...this.plugins.values()].map(({ ino: _ino, ...p }) => p).sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
  }

  /** Sockets that were refused, and why. */
  refused(): RefusedSocket[] {
    return [...this.refusedBy.values()].map(({ socket, reason, at }) => ({ socket, reason, at }));
  }

  get(kind: string, name: string): RegisteredPlugin | undefined { return this.list().find((p) => p.kind === kind && p.name === name); }

  /** Reads the directory again now (coalesced with a scan already running). */
  kick(): void {
    if (this.stopped) return;
    if (this.scanning) { this.rescanWanted = true; return; }
    void this.scan();
  }

  /** One pass over the directory; resolves when every registration it started has finished. */
  scan(): Promise<void> {
    if (this.scanning) { this.rescanWanted = true; return this.scanning; }
    this.scanning = (async () => {
      try {
        do {
          this.rescanWanted = false;
          await this.scanOnce();
        } while (this.rescanWanted && !this.stopped);
      } finally { this.scanning = undefined; }
    })();
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    const sockets = new Map<string, number>();
    let names: string[] = [];
    try { names = readdirSync(this.dir); } catch (e) { this.log(`cannot read ${this.dir}: ${(e as Error).message}`); }
    for (const n of names) {
      if (n.startsWith('.')) continue; // the kubelet's rule: hidden files are not plugins
      const p = join(this.dir, n);
      try {
        const st = lstatSync(p);
        if (st.isSocket()) sockets.set(p, st.ino);
      } catch { /* gone meanwhile */ }
    }
    // Plugins whose socket went away, was replaced, or no longer accepts connections.
    const checks: Promise<void>[] = [];
    for (const [socket, p] of this.plugins) {
      const ino = sockets.get(socket);
      if (ino === undefined) this.drop(socket, 'its socket was removed');
      else if (ino !== p.ino) this.drop(socket, 'its socket was replaced');
      else checks.push(reachable(socket, this.timeoutMs).catch((e: Error) => { if (this.plugins.get(socket)?.ino === ino) this.drop(socket, e.message); }));
    }
    await Promise.all(checks);
    for (const socket of this.refusedBy.keys()) if (!sockets.has(socket)) this.refusedBy.delete(socket);
    // New sockets, and refused ones that changed or rested long enough.
    const started: Promise<void>[] = [];
    for (const [socket, ino] of sockets) {
      if (this.plugins.has(socket) || this.pending.has(socket)) continue;
      // A socket nothing listens on yet may be one whose server is between bind() and listen():
      // tried again at every pass; other refusals rest for retryMs unless the socket changes.
      const r = this.refusedBy.get(socket);
      if (r && r.ino === ino && Date.now() - r.since < (r.transient ? this.rescanMs : this.retryMs)) continue;
      const job = this.register(socket, ino).finally(() => this.pending.delete(socket));
      this.pending.set(socket, job);
      started.push(job);
    }
    await Promise.all(started);
  }

  private drop(socket: string, reason: string): void {
    const p = this.plugins.get(socket);
    if (!p) return;
    this.plugins.delete(socket);
    const { ino: _ino, ...plugin } = p;
    this.log(`deregistered ${p.kind} ${p.name}: ${reason}`);
    this.emit('deregistered', plugin, reason);
    this.emit('change');
  }

  private async register(socket: string, ino: number): Promise<void> {
    const Client = registrationService();
    // A connection of its own (not one grpc-js shares with an earlier, failed attempt).
    const client = new Client(`unix://${socket}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const unary = <T>(method: string, req: object): Promise<T> => new Promise((resolve, reject) => (client as any)[method](req, { deadline: new Date(Date.now() + this.timeoutMs) }, (e: grpc.ServiceError | null, r: T) => (e ? reject(e) : resolve(r))));
    let reason: string;
    try {
      let info: PluginInfo;
      try { info = await unary<PluginInfo>('GetInfo', {}); } catch (e) { throw new Error(describeCallError(e as grpc.ServiceError, this.timeoutMs)); }
      let plugin: RegisteredPlugin | undefined;
      try {
        const v = validateInfo(info, socket, Object.keys(this.kinds));
        const dup = [...this.plugins.values()].find((p) => p.kind === v.kind && p.name === v.name);
        if (dup) throw new Error(`${v.kind} ${v.name} is already registered by ${dup.socket}`);
        const details = await this.kinds[v.kind]!(v, this.timeoutMs);
        plugin = { ...v, ...details, socket, registeredAt: new Date().toISOString() };
        reason = '';
      } catch (e) { reason = (e as Error).message; }
      // Tell the plugin; a plugin that cannot even take the answer is not registered.
      try { await unary('NotifyRegistrationStatus', { plugin_registered: !!plugin, error: reason }); } catch (e) {
        if (plugin) { reason = `it did not take NotifyRegistrationStatus: ${describeCallError(e as grpc.ServiceError, this.timeoutMs)}`; plugin = undefined; }
      }
      if (plugin && !this.stopped) {
        // The socket may have gone or changed while we talked to it.
        let still = false;
        try { still = lstatSync(socket).ino === ino; } catch { /* gone */ }
        if (still) {
          this.plugins.set(socket, { ...plugin, ino });
          this.refusedBy.delete(socket);
          this.log(`registered ${plugin.kind} ${plugin.name} (endpoint ${plugin.endpoint}, version ${plugin.version})`);
          this.emit('registered', plugin);
          this.emit('change');
        }
        return;
      }
    } catch (e) {
      reason = (e as Error).message;
    } finally {
      client.close();
    }
    if (this.stopped) return;
    const before = this.refusedBy.get(socket);
    const r = { socket, reason, at: new Date().toISOString(), ino, since: Date.now(), transient: reason.includes(NOTHING_LISTENS) };
    this.refusedBy.set(socket, r);
    if (before?.reason === reason && before.ino === ino) return; // said already
    this.log(`refused ${socket}: ${reason}`);
    this.emit('refused', { socket, reason, at: r.at });
    this.emit('change');
  }
}

const NOTHING_LISTENS = 'nothing listens on';

function describeCallError(e: grpc.ServiceError, timeoutMs: number): string {
  switch (e.code) {
    case grpc.status.DEADLINE_EXCEEDED: return `it did not answer within ${timeoutMs} ms`;
    case grpc.status.UNIMPLEMENTED: return 'it serves gRPC, but not pluginregistration.Registration';
    case grpc.status.UNAVAILABLE:
      if (/ECONNREFUSED/.test(e.details)) return `${NOTHING_LISTENS} it (a stale socket of a plugin that is gone?)`;
      return `it does not speak gRPC plugin registration (${e.details})`;
    default: return `${grpc.status[e.code] ?? e.code}: ${e.details || e.message}`;
  }
}
