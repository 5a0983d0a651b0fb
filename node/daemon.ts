// shoald: one per host. Holds the node's identity from its state directory, serves the local
// Unix socket (init, join, leave, info and the control API on a manager), runs gossip and the
// agent always, and the manager role (raft store, CA, control, dispatcher behind mTLS) when its
// certificate says manager, switching at runtime after promote/demote. Renews its certificate at
// a random 50-80 % of its life, and at once when the node object asks for another role.
import { randomBytes } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { PresetName } from '../gossip/config.js';
import { caTable } from '../manager/ca/service.js';
import { newClusterObject, newNodeObject } from '../manager/ca/cluster-init.js';
import { certInfo, createKeyAndCSR, createRootCA, issueNodeCertificate, renewAt, verifyNodeCert, type Role } from '../manager/ca/pki.js';
import { unseal } from '../manager/ca/seal.js';
import { Manager } from '../manager/control/manager.js';
import { raftMembershipTable } from '../manager/control/membership.js';
import { newRaftId, raftIdOf, type ClusterSpec } from '../manager/control/model.js';
import { controlTable } from '../manager/control/service.js';
import { caDef, controlDef, dispatcherDef, localDef, raftMembershipDef } from '../proto/services.js';
import { Dispatcher } from '../manager/dispatcher/service.js';
import { servicesTable } from '../manager/services/control.js';
import { networksTable } from '../manager/networks/control.js';
import { volumesTable } from '../manager/volumes/control.js';
import { LogBroker, logBrokerDef, logBrokerTable } from '../manager/services/logs.js';
import { ApplyTimes, eventsTable } from '../manager/services/events.js';
import { applyTable } from '../manager/services/apply.js';
import { secureService, type Identity as CallIdentity, type MethodSpec } from '../manager/security/authz.js';
import { CHANNEL_OPTIONS, clientCredentials, ServerTls } from '../manager/security/credentials.js';
import { invalid, precondition } from '../manager/security/errors.js';
import { Agent, type SessionInfo, type WireDescription } from './agent/agent.js';
import { Executor } from './agent/executor.js';
import { LogPublisher } from './agent/logs.js';
import type { Log, LogFields } from '../proto/log.js';
import { criClient, type CriClient } from './cri/client.js';
import { RuntimeChild } from './runtime-child.js';
import { NetworkChild, writeCniFiles } from './network-child.js';
import { NetworkSync } from './agent/network.js';
import { StateLock } from './state-lock.js';
import { decodeBackup } from '../proto/backup-file.js';
import { adoptNewGroup } from '../manager/recovery/adopt.js';
import { committedState, startNewGroup, type StoreState } from '../manager/recovery/new-group.js';
import { NodeGossip } from './gossip.js';
import { JoinError, joinCluster, type JoinResult } from './join.js';
import { DhtAnnouncer } from './discovery/announcer.js';
import type { DhtConfig } from './discovery/config.js';
import { joinThroughDht } from './discovery/dht-join.js';
import { dhtTopic } from './discovery/topic.js';
import { apiServer, localServer } from './listeners.js';
import { freePort, joinHostPort, splitHostPort } from './ports.js';
import { StateDir, writeDurable, type Identity } from './state.js';
import { DataKey, readDataKeyFile, removeDataKey, saveDataKey } from '../manager/secrets/datakey.js';
import { AutolockFollower, syncDataKeyFile } from '../manager/secrets/autolock.js';
import { autolockTable } from '../manager/secrets/autolock-control.js';
import { UnlockKey, UnlockKeyError } from '../manager/secrets/unlock-key.js';
import { DataKeyKeeper, fetchDataKey } from '../manager/secrets/keeper.js';
import { dataKeyTable } from '../manager/secrets/keyservice.js';
import { secretsTable } from '../manager/secrets/control.js';
import { NodeFiles } from '../manager/secrets/dispatch.js';
import { TaskFiles } from './agent/secrets.js';
import { NodeVolumes } from './agent/volumes.js';
import { PluginRegistry, type RegisteredPlugin } from './plugins/registry.js';
import { startDriver, type RunningDriver } from '../csi/index.js';
import { shareMountRoot } from '../csi/mount-root.js';
import { pluginToWire } from '../manager/control/plugins.js';
import type { TaskVolumesAnswer } from '../manager/volumes/dispatch.js';

export interface DaemonOptions {
  stateDir: string;
  listen: string;
  advertise: string;
  hostname: string;
  raftPort?: number;
  gossipPort?: number;
  gossipPreset: PresetName;
  /** The CRI runtime to drive (`unix:///run/containerd/containerd.sock`); default: start the
   * built-in shoal-runtime as a child on DIR/cri.sock. */
  criEndpoint?: string;
  /** The network plugin to use (`unix:///PATH.sock`, speaking proto/network); default: start the
   * built-in shoal-net as a child on DIR/plugins/network.sock. `none`: no network plugin, pods
   * get loopback only (a node that must create no bridge or VXLAN device where it runs, such as
   * the tests' daemons in the machine's own namespace). */
  networkEndpoint?: string;
  /** Registries the built-in runtime reaches over plain HTTP. */
  insecureRegistries?: string[];
  /** Cgroup under which the built-in runtime puts pods (default /shoal). */
  cgroupParent?: string;
  /** Start a new cluster from this manager's own data after the majority was lost. */
  forceNewCluster?: boolean;
  /** Start a new single-manager cluster from this backup file. */
  restore?: string;
  /** How long stopping the manager role waits for open calls and streams (agents' Assignments
   * streams stay open until the agent cancels them, and a hung agent never does) before closing
   * them; default 3 s. */
  shutdownGraceMs?: number;
  /** Start the built-in CSI driver (block.csi.shoal.io) on this pool directory; nodes sharing one
   * pool can move volumes between them (the lab gives every host the same one). */
  csiPool?: string;
  /** The DHT (node/discovery): a manager announces itself there for joiners that hold a token
   * but no address, and `join` without an address looks a manager up there. Undefined: no DHT
   * (`--dht=false`); joins then need an address. */
  dht?: DhtConfig;
  log: Log;
}

/** Work started before a leave or stop found the node changed under it: drop it quietly. */
class Superseded extends Error {}

const DEFAULT_SHUTDOWN_GRACE_MS = 3000;

export class Daemon {
  readonly state: StateDir;
  private id?: Identity;
  private local?: grpc.Server;
  private server?: grpc.Server;
  private serverTls?: ServerTls;
  private manager?: Manager;
  private dispatcher?: Dispatcher;
  private announcer?: DhtAnnouncer;
  private agent?: Agent;
  private executor?: Executor;
  private lock?: StateLock;
  /** Set by prepareRecovery: the manager role adopts the new raft group when it starts. */
  private recovery?: string;
  private files?: TaskFiles;
  private plugins?: PluginRegistry;
  private csiDriver?: RunningDriver;
  private volumes?: NodeVolumes;
  private volumesSession = '';
  private keeper?: DataKeyKeeper;
  private autolock?: AutolockFollower;
  /** Autolock: this manager restarted with its data key file sealed and waits for `shoal unlock`. */
  private locked?: { unlockKeyId: string };
  /** What `shoal unlock` opened: the manager role starts with this key in memory. */
  private unlocked?: DataKey;
  /** The data key a manager fetched when it joined: kept on disk once the cluster object says how. */
  private joinedDataKey?: DataKey;
  private runtime?: RuntimeChild;
  private netChild?: NetworkChild;
  private network?: NetworkSync;
  private cri?: CriClient;
  private gossip?: NodeGossip;
  private gossipStarting = false;
  private renewTimer?: NodeJS.Timeout;
  private renewing?: Promise<void>;
  private joinRaftTimer?: NodeJS.Timeout;
  private phase: 'uninitialized' | 'initializing' | 'joining' | 'member' | 'leaving' | 'left' = 'uninitialized';
  private busy = false;
  private stopped = false;
  /** Bumped by leave and stop. Asynchronous work (a renewal, a gossip or manager start, a raft
   * join) notes it when it begins and acts on its result only if it is unchanged, so nothing that
   * completes after a leave or stop brings back the identity, gossip or the manager role. */
  private epoch = 0;
  private lastSeeds: string[] = [];

  constructor(readonly o: DaemonOptions) {
    this.state = new StateDir(o.stateDir);
  }

  private log(m: string, f?: LogFields): void {
    this.o.log(m, f);
  }

  private current(epoch: number): boolean {
    return epoch === this.epoch && !this.stopped;
  }

  private check(epoch: number): void {
    if (!this.current(epoch)) throw new Superseded('the node left or stopped meanwhile');
  }

  get identity(): Identity | undefined {
    return this.id;
  }

  private get advertiseHost(): string {
    return splitHostPort(this.o.advertise).host;
  }

  private async ports(epoch = this.epoch): Promise<{ raft: number; gossip: number }> {
    const saved = this.state.readJson<{ raft?: number; gossip?: number }>('ports.json', {});
    const p = {
      raft: this.o.raftPort ?? saved.raft ?? (await freePort(this.advertiseHost)),
      gossip: this.o.gossipPort ?? saved.gossip ?? (await freePort(this.advertiseHost, true)),
    };
    this.check(epoch); // a leave wiped the state dir meanwhile: write nothing back into it
    if (p.raft !== saved.raft || p.gossip !== saved.gossip) this.state.writeJson('ports.json', p);
    return p;
  }

  async start(): Promise<void> {
    // Before anything in the state dir is touched: one daemon per directory.
    mkdirSync(this.state.dir, { recursive: true, mode: 0o700 });
    this.lock = StateLock.acquire(this.state.dir);
    await this.startLocal();
    if (this.stopped) {
      // stop() ran while the socket was binding, before there was a server to shut down.
      this.local?.forceShutdown();
      rmSync(this.state.socketPath, { force: true });
      return;
    }
    this.id = this.state.loadIdentity();
    if (this.o.forceNewCluster || this.o.restore) await this.prepareRecovery();
    if (this.id) {
      this.log(`shoald: restarting as ${this.id.role} ${this.id.nodeId} of cluster ${this.id.clusterId}`);
      await this.startMember(false);
    }
  }

  /**
   * --force-new-cluster (a survivor of a lost majority, from its own committed data) and
   * --restore FILE (from a backup): a new raft group with this manager as its only voter, started
   * before the manager role starts. The old raft data is renamed aside, never deleted.
   */
  private async prepareRecovery(): Promise<void> {
    const what = this.o.restore ? `--restore ${this.o.restore}` : '--force-new-cluster';
    const id = this.id;
    if (!id) throw new Error(`${what} needs the state dir of a manager of the cluster (${this.state.dir} holds no node identity)`);
    if (id.role !== 'manager') throw new Error(`${what}: this node (${id.nodeId}) is a worker; run it on a manager's state dir`);
    const raftDir = this.state.path('raft');
    let state: StoreState;
    if (this.o.restore) {
      let file: Buffer;
      try {
        file = readFileSync(this.o.restore);
      } catch (e) {
        throw new Error(`--restore: cannot read ${this.o.restore}: ${(e as Error).message}`);
      }
      const { header, data } = decodeBackup(file, this.o.restore);
      if (header.clusterId !== id.clusterId) throw new Error(`--restore: ${this.o.restore} is a backup of cluster ${header.clusterId}, but this node belongs to cluster ${id.clusterId}`);
      state = { data, index: header.index, term: header.term };
    } else {
      if (!existsSync(raftDir)) throw new Error(`--force-new-cluster: ${raftDir} does not exist: this manager holds no raft data to start from`);
      state = await committedState(raftDir);
    }
    const reason = this.o.restore ? 'restore' : 'force-new-cluster';
    const kept = await startNewGroup(raftDir, this.raftId(id.nodeId), state, reason);
    rmSync(this.state.path('raft-members.json'), { force: true });
    this.state.writeJson('managers.json', [this.o.advertise]);
    this.recovery = reason;
    this.log(`shoald: ${what}: a new raft group with this manager as its only member, from the state at raft index ${state.index}${kept ? `; the old raft data is kept in ${kept}` : ''}`);
  }

  // ---- the local socket ----

  private async startLocal(): Promise<void> {
    const path = this.state.socketPath;
    rmSync(path, { force: true });
    const server = localServer((m) => this.log(m));
    const self = (): CallIdentity => ({ nodeId: this.id?.nodeId ?? 'local', role: 'manager', clusterId: this.id?.clusterId ?? '', local: true });
    const localTable: Record<string, MethodSpec> = {
      Init: { roles: ['manager'], unary: (req: { cert_expiry_seconds: number }) => this.exclusive(() => this.init(Number(req.cert_expiry_seconds) || undefined)) },
      Join: { roles: ['manager'], unary: (req: { addr: string; token: string }) => this.exclusive(() => this.join(req.addr, req.token)) },
      Leave: { roles: ['manager'], unary: (req: { force: boolean }) => this.exclusive(() => this.leave(req.force)) },
      Unlock: { roles: ['manager'], unary: (req: { unlock_key: string }) => this.exclusive(() => this.unlock(String(req.unlock_key ?? ''))) },
      Info: {
        roles: ['manager'],
        unary: async () => ({
          node_id: this.id?.nodeId ?? '',
          role: this.id?.role ?? '',
          cluster_id: this.id?.clusterId ?? '',
          addr: this.o.advertise,
          state: this.locked ? 'locked' : this.phase,
          managers: this.managerAddrs(),
          session_manager: this.agent?.manager ?? '',
        }),
      },
    };
    const policy = { clusterId: () => undefined, refuse: () => undefined };
    server.addService(localDef(), secureService(localDef(), localTable, { name: 'Local', policy, localIdentity: self }));
    // The control API on the socket: served by this node's manager role, with a local identity.
    const proxy: Record<string, MethodSpec> = {};
    const notManager = () => precondition(this.locked ? this.lockedMessage() : this.id ? `this node (${this.id.nodeId}) is a worker: run the command on a manager, or point --host at one` : 'this node is not part of a cluster: run "shoal init" or "shoal join" first');
    for (const [m, def] of Object.entries(controlDef())) {
      proxy[m] = def.responseStream
        ? {
            roles: ['manager'],
            stream: (call, ctx) => {
              if (!this.manager || !this.id) return Promise.reject(notManager());
              return this.controlTable![m]!.stream!(call, ctx);
            },
          }
        : {
            roles: ['manager'],
            unary: (req, ctx) => {
              const mgr = this.manager;
              if (!mgr || !this.id) return Promise.reject(notManager());
              const spec = this.controlTable![m]!;
              if (spec.leader && !mgr.isLeader()) return mgr.forwarder.forward(controlDef(), m, req, ctx.identity!);
              return spec.unary!(req, ctx);
            },
          };
    }
    server.addService(controlDef(), secureService(controlDef(), proxy, { name: 'Control', policy, localIdentity: self }));
    // The socket answers root-level Init/Join/Leave: it must never exist with open permissions,
    // not even between bind and chmod.
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((res, rej) => server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(new Error(`cannot listen on ${path}: ${e.message}; is another shoald using this state dir?`)) : res())));
    } finally {
      process.umask(umask);
    }
    chmodSync(path, 0o600);
    this.local = server;
  }

  private controlTable?: Record<string, MethodSpec>;

  private async exclusive<T>(f: () => Promise<T>): Promise<T> {
    if (this.busy) throw precondition('another init/join/leave is in progress on this node; wait for it');
    this.busy = true;
    try {
      return await f();
    } finally {
      this.busy = false;
    }
  }

  // ---- init, join, leave ----

  /** Files a state dir without a whole identity (no identity/node.json) may still hold from an
   * init or join that failed or crashed half-way, or a leave cut short. None of it belongs to a
   * cluster this node is part of: raft data there would make a new init start from another
   * cluster's log. */
  private leftovers(): string[] {
    // ports.json alone is no leftover: ports are the node's, not the cluster's.
    return StateDir.MEMBER_FILES.filter((f) => f !== 'ports.json').map((f) => this.state.path(f)).filter((f) => existsSync(f));
  }

  private removeLeftovers(why: string): void {
    const found = this.leftovers();
    if (found.length === 0) return;
    try {
      this.state.wipe();
    } catch (e) {
      throw precondition(`${why}; removing them failed (${(e as Error).message}): stop shoald and remove ${this.leftovers().join(' ')} by hand`);
    }
    this.log(`shoald: removed what an earlier failed init/join left in ${this.state.dir} (${found.map((f) => f.slice(this.state.dir.length + 1)).join(', ')})`);
  }

  private async init(certSeconds?: number) {
    if (certSeconds !== undefined && certSeconds < 10) throw invalid(`certificate expiry must be at least 10 s, got ${certSeconds} s`);
    if (this.id) throw precondition(`this node is already part of cluster ${this.id.clusterId} as ${this.id.role} ${this.id.nodeId}: run "shoal leave" first`);
    if (this.stopped) throw precondition('shoald is stopping');
    this.removeLeftovers(`${this.state.dir} holds files of an earlier failed init/join`);
    const epoch = this.epoch;
    const clusterId = randId();
    const nodeId = randId();
    const ca = await createRootCA(clusterId);
    const { keyPem, csrPem } = await createKeyAndCSR();
    const cert = await issueNodeCertificate({ ca, csrPem, nodeId, role: 'manager', clusterId, seconds: certSeconds });
    // The secrets data key: in the managers' state dirs only, never in the replicated store; the
    // CA key goes into the store sealed under it.
    const dataKey = DataKey.generate();
    const cluster = newClusterObject(clusterId, ca, dataKey, certSeconds);
    const spec = cluster.spec as ClusterSpec;
    const id: Identity = { nodeId, clusterId, role: 'manager', caPem: ca.certPem, certPem: cert.certPem, keyPem };
    // In memory only until the cluster object is committed: the identity on disk (node.json last)
    // is what makes a restart come back as a member, so it must never exist without a cluster.
    this.id = id;
    this.phase = 'initializing';
    try {
      this.check(epoch);
      writeDurable(this.state.path('gossip.key'), spec.gossipKey);
      saveDataKey(this.state.dir, dataKey);
      const ports = await this.ports(epoch);
      await this.startManager(true, epoch);
      await this.manager!.waitLeader(15_000);
      await this.manager!.raft.propose([
        { op: 'create', object: cluster },
        { op: 'create', object: newNodeObject({ nodeId, role: 'manager', hostname: this.o.hostname, addr: this.o.advertise, certPem: cert.certPem, raft: { id: this.manager!.raftId, addr: joinHostPort(this.advertiseHost, ports.raft) } }) },
      ]);
      // Gossip's port too, before the identity is written: a busy port fails the init, not a
      // member that cannot gossip.
      await this.startGossip(Buffer.from(spec.gossipKey, 'base64'), epoch);
      this.check(epoch);
      this.state.saveIdentity(id);
    } catch (e) {
      throw await this.undoInit(e as Error);
    }
    this.log(`shoald: created cluster ${clusterId}; this node is manager ${nodeId}`);
    await this.startMember(true);
    return { node_id: nodeId, cluster_id: clusterId, worker_token: unseal(ca.keyPem, spec.tokens.worker.sealed), manager_token: unseal(ca.keyPem, spec.tokens.manager.sealed), addr: this.o.advertise };
  }

  /** A failed init leaves nothing behind: the manager role and gossip stop, and every file the
   * init wrote goes, so the next "shoal init" starts clean. Returns the error to throw. */
  private async undoInit(cause: Error): Promise<Error> {
    const why = cause instanceof Superseded ? 'shoald stopped during init' : (cause as grpc.ServiceError).details ?? cause.message;
    this.log(`shoald: init failed: ${why}; undoing it`);
    await this.stopMember().catch((e) => this.log(`shoald: stopping after the failed init: ${(e as Error).message}`));
    this.id = undefined;
    this.phase = 'uninitialized';
    try {
      this.state.wipe();
    } catch (e) {
      const left = this.leftovers();
      return precondition(`init failed: ${why}; its partial state could not be removed (${(e as Error).message}): stop shoald and remove ${left.join(' ')} by hand before the next init`);
    }
    return precondition(`init failed: ${why}; nothing was kept in ${this.state.dir}: fix the cause and run "shoal init" again`);
  }

  private async join(addr: string, token: string) {
    if (this.id) throw precondition(`this node is already part of cluster ${this.id.clusterId} as ${this.id.role} ${this.id.nodeId}: run "shoal leave" first`);
    if (!token) throw invalid('join needs a join token (SHL-1-...)');
    if (!addr && !this.o.dht) throw invalid('join needs the address of a manager (HOST:PORT): this shoald runs without the DHT (--dht=false, or no --dht-bootstrap where public bootstrap nodes are refused), so it cannot look one up by token');
    if (this.stopped) throw precondition('shoald is stopping');
    this.removeLeftovers(`${this.state.dir} holds files of an earlier failed init/join`);
    const epoch = this.epoch;
    this.phase = 'joining';
    let r: JoinResult;
    try {
      if (addr) {
        r = await joinCluster({ addr, token, hostname: this.o.hostname, advertise: this.o.advertise });
        r.managers = [addr];
      } else {
        this.log('shoald: joining with the token only: looking up a manager on the DHT');
        const d = await joinThroughDht({ token, dht: this.o.dht!, hostname: this.o.hostname, advertise: this.o.advertise, log: (m) => this.log(m) });
        this.log(`shoald: found ${d.via} in ${d.foundMs} ms; it named the managers ${d.managers.join(', ')}`);
        r = d;
      }
    } catch (e) {
      this.phase = 'uninitialized';
      if (e instanceof JoinError) throw precondition(e.message);
      throw invalid((e as Error).message);
    }
    const id: Identity = { nodeId: r.nodeId, clusterId: r.clusterId, role: r.role, caPem: r.caPem, certPem: r.certPem, keyPem: r.keyPem };
    // The cluster knows this node now: keep its identity even if shoald is stopping meanwhile,
    // so the next start comes back as that member instead of leaving a ghost node behind.
    this.state.saveIdentity(id);
    this.state.writeJson('managers.json', r.managers);
    this.id = id;
    // A manager gets the secrets data key from the managers it was named (by address: the one it
    // joined through), over mTLS with its new certificate; if that fails, its manager role keeps
    // asking the other managers.
    if (id.role === 'manager') {
      const k = await fetchDataKey(r.managers, id, (m) => this.log(m));
      // Written to disk by the manager role once its replica holds the cluster object, which says
      // whether autolock wants it sealed: never in clear in a cluster that is locked.
      if (k && this.current(epoch)) this.joinedDataKey = k;
    }
    this.log(`shoald: joined cluster ${id.clusterId} as ${id.role} ${id.nodeId}`);
    if (!this.current(epoch)) throw precondition('shoald stopped during the join; the identity is kept and the node comes back as a member at its next start');
    await this.startMember(false);
    return { node_id: id.nodeId, role: id.role, cluster_id: id.clusterId };
  }

  private async leave(force: boolean) {
    if (this.stopped) throw precondition('shoald is stopping');
    if (!this.id) throw precondition('this node is not part of a cluster');
    if (this.id.role === 'manager' && !force) {
      throw precondition('this node is a manager: leaving would remove a raft member without telling the others; demote it first ("shoal node demote"), or use --force');
    }
    const clusterId = this.id.clusterId;
    // From here on, whatever is in flight (a renewal, a gossip start) finds its epoch gone.
    this.epoch++;
    this.phase = 'leaving';
    await this.gossip?.leave();
    // A node that leaves runs nothing of the cluster any more (as `docker swarm leave`).
    await this.executor?.removeAll().catch((e) => this.log(`shoald: removing the tasks' pods on leave: ${(e as Error).message}`));
    this.files?.removeAll();
    await this.volumes?.releaseAll().catch((e) => this.log(`shoald: releasing the node's volumes on leave: ${(e as Error).message}`));
    // Its pods are gone: so are its bridges, VXLAN devices, routes and nft tables.
    await this.stopNetwork(true);
    await this.stopMember();
    this.state.wipe();
    this.log(`shoald: left cluster ${clusterId}`);
    this.id = undefined;
    this.locked = undefined;
    this.unlocked = undefined;
    this.phase = 'left';
    return {};
  }

  private lockedMessage(): string {
    return `this manager is locked (autolock is on and shoald restarted): its manager role stays stopped until you run "shoal unlock" on this host with the cluster's unlock key (SHL-UNLOCK-1-...; "shoal unlock-key" on an unlocked manager shows it)`;
  }

  /** `shoal unlock`: opens the sealed data key file with the key and starts the manager role. A
   * wrong key is refused and changes nothing. */
  private async unlock(text: string) {
    if (!this.id) throw precondition('this node is not part of a cluster: there is nothing to unlock');
    if (!this.locked) throw precondition(`this node (${this.id.nodeId}) is not locked${this.id.role === 'manager' ? '' : ': it is a worker'}`);
    let dk: DataKey;
    try {
      const uk = UnlockKey.parse(text);
      const f = readDataKeyFile(this.state.dir);
      if (f.state !== 'locked') throw new UnlockKeyError(`${this.state.path('data.key')} is no longer sealed; restart shoald`);
      dk = new DataKey(uk.openDataKey(f.text));
    } catch (e) {
      if (e instanceof UnlockKeyError) throw invalid(e.message);
      throw e;
    }
    const epoch = this.epoch;
    const wasLocked = this.locked;
    this.unlocked = dk;
    this.locked = undefined;
    this.log(`shoald: unlocked (data key ${dk.id}); starting the manager role`);
    try {
      await this.startManager(false, epoch);
    } catch (e) {
      this.unlocked = undefined;
      this.locked = wasLocked;
      throw e;
    }
    void this.agent?.describeAgain().catch((e) => this.log(`agent: telling the managers this one is unlocked failed: ${(e as Error).message}`));
    return { node_id: this.id.nodeId };
  }

  // ---- member runtime ----

  private managerAddrs(): string[] {
    const list = this.state.readJson<string[]>('managers.json', []);
    if (this.id?.role === 'manager' && !list.includes(this.o.advertise)) list.unshift(this.o.advertise);
    return list;
  }

  private async startMember(fresh: boolean): Promise<void> {
    const epoch = this.epoch;
    this.phase = 'member';
    const ports = await this.ports(epoch);
    if (existsSync(this.state.path('gossip.key'))) await this.startGossip(Buffer.from(readFileSync(this.state.path('gossip.key'), 'utf8'), 'base64'), epoch);
    if (this.id!.role === 'manager' && !this.manager) {
      const f = readDataKeyFile(this.state.dir);
      if (f.state === 'locked' && !this.unlocked) {
        // Autolock: nothing of the manager role runs until "shoal unlock"; the agent does (its
        // session tells the other managers this one is locked).
        this.locked = { unlockKeyId: f.unlockKeyId };
        this.log(`shoald: ${this.lockedMessage()}`);
      } else await this.startManager(false, epoch);
    }
    this.check(epoch);
    const cri = await this.startRuntime(epoch);
    const nodeId = this.id!.nodeId;
    await this.startPlugins(nodeId, epoch);
    const logRoot = this.state.path('logs');
    const network = this.startNetwork(nodeId);
    let agent!: Agent;
    const files = new TaskFiles({ stateDir: this.state.dir, log: (m) => this.log(m) });
    this.files = files;
    const volumes = new NodeVolumes({
      stateDir: this.state.dir,
      csi: (driver) => this.plugins?.get('CSIPlugin', driver)?.endpoint,
      dispatcher: {
        taskVolumes: (taskId, waitMs) => agent.call<TaskVolumesAnswer>('TaskVolumes', { task_id: taskId, wait_ms: waitMs }, waitMs + 10_000),
        volumeStatus: (held) => agent.call<void>('UpdateVolumeStatus', { held }, 10_000),
      },
      log: (m) => this.log(m),
    });
    this.volumes = volumes;
    const executor = new Executor({
      files,
      network,
      volumes,
      cri,
      nodeId,
      hostname: this.o.hostname,
      logRoot,
      report: (taskId, r) => agent.report(taskId, r),
      forget: (taskId) => agent.forget(taskId),
      log: (m, f) => this.log(m, f),
    });
    agent = new Agent({
      tls: () => this.id!,
      hostname: this.o.hostname,
      addr: this.o.advertise,
      gossipAddr: () => joinHostPort(this.advertiseHost, ports.gossip),
      // Other managers first: a demoted manager's own replica stops hearing from raft, so its
      // own dispatcher would never tell it about the demotion.
      managers: () => {
        const l = this.managerAddrs();
        return [...l.filter((a) => a !== this.o.advertise), ...l.filter((a) => a === this.o.advertise)];
      },
      onSession: (s, m) => this.onSession(s, m),
      onAssignments: (tasks) => void executor.assign(tasks).catch((e) => this.log(`agent: applying assignments failed: ${(e as Error).message}`)),
      store: {
        load: () => this.state.readJson<[string, unknown][]>('assignments.json', []),
        save: (tasks) => this.state.writeJson('assignments.json', tasks),
      },
      description: () => describeNode(cri, this.plugins, !!this.locked),
      logs: new LogPublisher(logRoot, (m) => this.log(m)),
      files,
      onNetworks: (m) => network?.onView(m),
      log: (m, f) => this.log(m, f),
    });
    this.agent = agent;
    this.executor = executor;
    volumes.setActive(() => new Set(agent.tasks.keys()));
    this.plugins?.on('change', () => void agent.describeAgain().catch((e) => this.log(`agent: sending the node's plugins failed: ${(e as Error).message}`)));
    // The saved assignments first: containers still assigned keep running while no manager answers.
    void executor.assign(agent.tasks).catch((e) => this.log(`agent: applying the saved assignments failed: ${(e as Error).message}`));
    this.agent.start();
    this.scheduleRenewal();
    void fresh;
  }

  /** The CRI runtime this node's tasks run on: the built-in one as a child, or --cri-endpoint. */
  private async startRuntime(epoch: number): Promise<CriClient> {
    if (this.cri) return this.cri;
    if (this.o.criEndpoint) {
      this.cri = criClient(this.o.criEndpoint);
      this.log(`shoald: tasks run on the CRI runtime at ${this.o.criEndpoint}`);
      return this.cri;
    }
    const rt = new RuntimeChild({ stateDir: this.state.dir, insecureRegistries: this.o.insecureRegistries ?? [], cgroupParent: this.o.cgroupParent ?? '/shoal', log: (m) => this.log(m) });
    this.runtime = rt;
    try {
      await rt.start();
    } catch (e) {
      // The node stays a member; its tasks fail with the runtime's error until it answers.
      this.log(`shoald: the built-in runtime did not start: ${(e as Error).message}; tasks on this node will fail until it runs`);
    }
    this.check(epoch);
    this.cri = criClient(rt.endpoint);
    this.log(`shoald: built-in runtime (shoal-runtime) serving CRI on ${rt.endpoint}`);
    return this.cri;
  }

  /**
   * The node's network plugin: the built-in shoal-net as a child (or --network-endpoint), the
   * runtime's CNI files pointing at it, and the agent's side of its contract.
   */
  private startNetwork(nodeId: string): NetworkSync | undefined {
    if (this.o.networkEndpoint === 'none') {
      this.log('shoald: no network plugin (--network-endpoint none): pods on this node get loopback only');
      return undefined;
    }
    let socket: string;
    let ready: Promise<void> | undefined;
    if (this.o.networkEndpoint) {
      socket = this.o.networkEndpoint.slice('unix://'.length);
      this.log(`shoald: pods get their networks from the network plugin at ${this.o.networkEndpoint}`);
    } else {
      const child = new NetworkChild({ stateDir: this.state.dir, underlayAddr: this.advertiseHost, log: (m) => this.log(m) });
      this.netChild = child;
      socket = child.socket;
      if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(this.advertiseHost)) {
        this.log(`shoald: the advertise address ${this.advertiseHost} is not an IPv4 address: the built-in network plugin needs one (VXLAN peers); tasks on this node cannot get a network. Start shoald with --advertise IPV4:PORT`);
      } else {
        ready = child.start().then(
          () => this.log(`shoald: built-in network plugin (shoal-net) serving on unix://${child.socket}`),
          (e) => this.log(`shoald: the built-in network plugin did not start: ${(e as Error).message}; tasks on this node wait for it`),
        );
      }
    }
    writeCniFiles(this.state.dir, socket);
    const net = new NetworkSync({ socket, nodeId, ready, log: (m) => this.log(m) });
    this.network = net;
    return net;
  }

  private async stopNetwork(teardown = false): Promise<void> {
    this.network?.stop();
    this.network = undefined;
    const c = this.netChild;
    this.netChild = undefined;
    await c?.stop();
    if (teardown) c?.teardown();
  }

  private async stopRuntime(): Promise<void> {
    this.cri?.close();
    this.cri = undefined;
    const rt = this.runtime;
    this.runtime = undefined;
    await rt?.stop();
  }

  private async startGossip(key: Buffer, epoch = this.epoch): Promise<void> {
    if (this.gossip || this.gossipStarting || !this.id || !this.current(epoch)) return;
    this.gossipStarting = true;
    try {
      const ports = await this.ports(epoch);
      const g = await NodeGossip.start({ nodeId: this.id.nodeId, clusterId: this.id.clusterId, host: this.advertiseHost, port: ports.gossip, key, preset: this.o.gossipPreset, log: (m, f) => this.log(m, f), onChange: () => void this.manager?.healthChanged() });
      if (!this.current(epoch)) {
        // The node left or stopped while gossip was binding: it must not stay up.
        await g.stop();
        this.log('shoald: gossip came up after the node left or stopped; shut it down again');
        return;
      }
      this.gossip = g;
      this.log(`gossip: listening on ${g.addr}`);
      if (this.lastSeeds.length > 0) void g.ensureJoined(this.lastSeeds);
    } finally {
      this.gossipStarting = false;
    }
  }

  private onSession(s: SessionInfo, _from: string): void {
    if (!this.id || this.stopped || this.phase !== 'member') return;
    if (s.sessionId !== this.volumesSession) {
      // Each new session hears what volumes the node holds (released ones may be detached).
      this.volumesSession = s.sessionId;
      void this.volumes?.report();
    }
    const epoch = this.epoch;
    const addrs = s.managers.map((m) => m.addr).filter(Boolean);
    if (addrs.length > 0) {
      const cur = this.state.readJson<string[]>('managers.json', []);
      if (JSON.stringify(cur) !== JSON.stringify(addrs)) this.state.writeJson('managers.json', addrs);
    }
    this.lastSeeds = s.managers.map((m) => m.gossip_addr).filter(Boolean);
    if (!this.gossip && s.gossipKey?.length) {
      writeDurable(this.state.path('gossip.key'), s.gossipKey.toString('base64'));
      this.startGossip(s.gossipKey, epoch).catch((e) => {
        if (!(e instanceof Superseded)) this.log(`shoald: starting gossip failed: ${(e as Error).message}`);
      });
    } else if (this.gossip) {
      void this.gossip.ensureJoined(this.lastSeeds);
    }
    if ((s.role === 'manager' || s.role === 'worker') && s.role !== this.id.role) {
      this.log(`shoald: the cluster wants this node to be a ${s.role} (it is a ${this.id.role}); renewing the certificate`);
      void this.renew();
    }
  }

  /**
   * This node's raft id for its current membership, kept in DIR/raft-id: chosen fresh when the
   * manager role starts without raft data (init, promotion), so a node promoted again after a
   * demotion never asks raft to re-admit a removed id. A manager whose raft data predates the
   * file keeps the id derived from its node id.
   */
  private raftId(nodeId: string): number {
    const saved = this.state.readJson<{ id?: number }>('raft-id', {});
    if (saved.id) return saved.id;
    const id = existsSync(this.state.path('raft')) ? raftIdOf(nodeId) : newRaftId();
    this.state.writeJson('raft-id', { id });
    return id;
  }

  private async startManager(bootstrap: boolean, epoch: number): Promise<void> {
    const id = this.id!;
    const ports = await this.ports(epoch);
    const raftAdvertise = joinHostPort(this.advertiseHost, ports.raft);
    const mgr = new Manager({
      stateDir: this.state.dir,
      nodeId: id.nodeId,
      raftId: this.raftId(id.nodeId),
      clusterId: id.clusterId,
      raftListen: joinHostPort(this.advertiseHost, ports.raft),
      raftAdvertise,
      apiAddr: this.o.advertise,
      tls: () => this.id!,
      gossip: (nodeId) => this.gossip?.state(nodeId),
      bootstrap,
      csi: (driver) => this.plugins?.get('CSIPlugin', driver)?.endpoint,
      hostname: this.o.hostname,
      log: (m, f) => this.log(m, f),
    });
    mgr.onRemoved = () => void this.renew();
    const log: Log = (m, f) => this.log(m, f);
    // The secrets data key: from the state dir, or fetched from another manager (after a join or
    // a promotion) over mTLS with this manager's certificate.
    const keeper = new DataKeyKeeper({
      stateDir: this.state.dir,
      managers: () => this.managerAddrs().filter((a) => a !== this.o.advertise),
      tls: () => this.id!,
      log,
      initial: this.unlocked ?? this.joinedDataKey,
      // A fetched key goes to disk only as the cluster object wants it (sealed under autolock).
      persist: (k) => void syncDataKeyFile(this.state.dir, k, mgr.cluster(), log),
    });
    mgr.dataKey = () => keeper.key();
    const autolock = new AutolockFollower(mgr, { stateDir: this.state.dir, dataKey: () => keeper.peek(), log });
    let server: grpc.Server | undefined;
    let dispatcher: Dispatcher | undefined;
    // A half-started role (raft up, API port taken; or a leave/stop meanwhile) is taken down
    // again, so no raft replica or server outlives the failure.
    const undo = async () => {
      keeper.stop();
      autolock.stop();
      dispatcher?.stop();
      if (server) await this.shutdownServer(server);
      await mgr.stop().catch((e) => this.log(`shoald: stopping the half-started manager role: ${(e as Error).message}`));
    };
    try {
      await mgr.start();
      this.check(epoch);
      dispatcher = new Dispatcher(mgr, log);
      const broker = new LogBroker(mgr, log);
      dispatcher.logs = broker;
      keeper.start();
      autolock.start();
      dispatcher.files = (nodeId) => new NodeFiles(mgr.raft.store, keeper, nodeId, log);
      const table = { ...controlTable(mgr, log), ...servicesTable(mgr, broker, log), ...secretsTable(mgr, keeper, log), ...volumesTable(mgr, log), ...eventsTable(mgr, new ApplyTimes(mgr.raft.store)), ...applyTable(mgr, keeper, log), ...networksTable(mgr, log), ...autolockTable(mgr, keeper, log) };
      const common = { policy: mgr.policy, forwarder: mgr.forwarder };
      const serverTls = new ServerTls(id);
      server = apiServer(log);
      server.addService(caDef(), secureService(caDef(), { ...caTable(mgr, log), ...dataKeyTable(keeper, log) }, { name: 'CA', ...common }));
      server.addService(controlDef(), secureService(controlDef(), table, { name: 'Control', ...common }));
      server.addService(raftMembershipDef(), secureService(raftMembershipDef(), raftMembershipTable(mgr, log), { name: 'RaftMembership', ...common }));
      server.addService(dispatcherDef(), secureService(dispatcherDef(), dispatcher.table(), { name: 'Dispatcher', ...common }));
      server.addService(logBrokerDef(), secureService(logBrokerDef(), logBrokerTable(broker), { name: 'LogBroker', ...common }));
      const s = server;
      await new Promise<void>((res, rej) => s.bindAsync(this.o.listen, serverTls, (e) => (e ? rej(new Error(`cannot listen on ${this.o.listen}: ${e.message}`)) : res())));
      this.check(epoch);
      this.manager = mgr;
      this.keeper = keeper;
      this.autolock = autolock;
      this.joinedDataKey = undefined;
      this.dispatcher = dispatcher;
      this.controlTable = table;
      this.serverTls = serverTls;
      this.server = server;
    } catch (e) {
      await undo();
      throw e;
    }
    this.log(`shoald: manager role up: API ${this.o.listen} (advertised ${this.o.advertise}), raft ${raftAdvertise}`);
    if (this.o.dht) this.announcer = new DhtAnnouncer({ dht: this.o.dht, target: this.apiTarget(), topics: () => this.dhtTopics(mgr), log }).start();
    if (this.recovery) {
      const reason = this.recovery;
      this.recovery = undefined;
      void adoptNewGroup(mgr, raftAdvertise, reason, (m) => this.log(m)).catch((e) => this.log(`shoald: after ${reason}: updating the members failed: ${(e as Error).message}`));
    } else if (!bootstrap) this.joinRaft(raftAdvertise);
  }

  /** Enters raft through any other manager (forwarded to the leader); retried until it answers. */
  private joinRaft(raftAddr: string, delay = 0): void {
    clearTimeout(this.joinRaftTimer);
    const mgr = this.manager;
    this.joinRaftTimer = setTimeout(async () => {
      if (!mgr || mgr !== this.manager || this.stopped || !this.id) return;
      const others = this.managerAddrs().filter((a) => a !== this.o.advertise);
      const conf = mgr.raft.confState();
      if (others.length === 0) {
        if (conf.voters.length === 0) this.log('shoald: no other manager known to join raft through');
        return;
      }
      for (const addr of others) {
        const Ctor = grpc.makeGenericClientConstructor(raftMembershipDef(), 'RaftMembership');
        const c = new Ctor(addr, clientCredentials(this.id), CHANNEL_OPTIONS) as any;
        try {
          const r = await new Promise<{ raft_id: number; members: { raft_id: number; addr: string }[] }>((res, rej) =>
            c.Join({ raft_addr: raftAddr, raft_id: mgr.raftId }, { deadline: Date.now() + 15_000 }, (e: grpc.ServiceError | null, x: any) => (e ? rej(e) : res(x))),
          );
          if (mgr !== this.manager || this.stopped) return; // stopped or demoted meanwhile
          mgr.addPeers(r.members.map((m) => ({ raftId: Number(m.raft_id), addr: m.addr })));
          this.log(`shoald: in raft as member ${r.raft_id} via ${addr}`);
          return;
        } catch (e) {
          if (mgr !== this.manager || this.stopped) return;
          this.log(`shoald: joining raft via ${addr} failed: ${(e as grpc.ServiceError).details ?? (e as Error).message}`);
        } finally {
          c.close();
        }
      }
      if (mgr === this.manager && !this.stopped) this.joinRaft(raftAddr, 2000);
    }, delay);
  }

  /** Stops accepting calls, lets open ones finish for the grace period, then closes the rest:
   * an agent's Assignments stream stays open until that agent cancels it, and a hung or
   * partitioned agent never does, so a graceful shutdown alone could wait forever. */
  private async shutdownServer(s: grpc.Server): Promise<void> {
    const grace = this.o.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
    let timer: NodeJS.Timeout | undefined;
    const clean = await Promise.race([
      new Promise<boolean>((r) => s.tryShutdown(() => r(true))),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), grace))),
    ]);
    clearTimeout(timer);
    if (!clean) this.log(`shoald: calls still open ${grace} ms after the manager role began to stop (agents' streams); closing them`);
    s.forceShutdown();
  }

  /** Where the DHT announcer pipes joiners' streams: this manager's own API port. */
  private apiTarget(): string {
    const { host, port } = splitHostPort(this.o.listen);
    return host === '0.0.0.0' || host === '::' || host === '' ? joinHostPort(this.advertiseHost, port) : this.o.listen;
  }

  private topicCache = new Map<string, Buffer>();

  /** The DHT topics of the cluster's current worker and manager tokens (from this replica's
   * cluster object; the tokens are sealed under the CA key every manager holds). A rotation
   * changes the sealed token, hence the topic: the announcer leaves the old one. */
  private dhtTopics(mgr: Manager): Buffer[] | undefined {
    const c = mgr.cluster();
    if (!c) return undefined;
    const out: Buffer[] = [];
    for (const rec of [c.spec.tokens.worker, c.spec.tokens.manager]) {
      let t = this.topicCache.get(rec.sealed);
      if (!t) {
        let key: string;
        try {
          key = mgr.rootCA(c).keyPem;
        } catch {
          return undefined; // no data key yet (just joined): announced once it is held
        }
        t = dhtTopic(unseal(key, rec.sealed));
        this.topicCache.set(rec.sealed, t);
      }
      out.push(t);
    }
    if (this.topicCache.size > 8) for (const k of [...this.topicCache.keys()].slice(0, this.topicCache.size - 2)) this.topicCache.delete(k);
    return out;
  }

  private async stopManager(): Promise<void> {
    clearTimeout(this.joinRaftTimer);
    this.keeper?.stop();
    this.keeper = undefined;
    this.autolock?.stop();
    this.autolock = undefined;
    const announcer = this.announcer;
    this.announcer = undefined;
    await announcer?.stop();
    this.dispatcher?.stop();
    this.dispatcher = undefined;
    const s = this.server;
    this.server = undefined;
    const mgr = this.manager;
    this.manager = undefined;
    this.controlTable = undefined;
    if (s) await this.shutdownServer(s);
    await mgr?.stop();
  }

  private scheduleRenewal(): void {
    clearTimeout(this.renewTimer);
    if (!this.id || this.stopped) return;
    const i = certInfo(this.id.certPem);
    const at = renewAt(i.notBefore, i.notAfter);
    this.log(`shoald: certificate renewal planned at ${new Date(at).toISOString()} (valid ${new Date(i.notBefore).toISOString()} .. ${new Date(i.notAfter).toISOString()})`);
    // setTimeout holds at most ~24.8 days: wait in steps until the renewal time.
    const arm = () => {
      const left = at - Date.now();
      if (left > 2 ** 31 - 1) this.renewTimer = setTimeout(arm, 2 ** 31 - 1);
      else this.renewTimer = setTimeout(() => void this.renew(), Math.max(1000, left));
      this.renewTimer.unref();
    };
    arm();
  }

  /** A new key and certificate from a manager; switches the role if the certificate's differs.
   * A renewal that completes after a leave or stop is discarded. */
  renew(): Promise<void> {
    if (this.renewing) return this.renewing;
    this.renewing = this.doRenew()
      .catch((e) => {
        if (!(e instanceof Superseded)) this.log(`shoald: certificate renewal failed: ${(e as Error).message}`);
      })
      .finally(() => {
        this.renewing = undefined;
      });
    return this.renewing;
  }

  private async doRenew(): Promise<void> {
    const epoch = this.epoch;
    const id = this.id;
    if (!id || !this.current(epoch)) return;
    const { keyPem, csrPem } = await createKeyAndCSR();
    this.check(epoch);
    // Ask another manager first: this node's own replica may be stale (after a demotion).
    const all = [this.agent?.manager, ...this.managerAddrs()].filter((a): a is string => !!a);
    const targets = [...new Set([...all.filter((a) => a !== this.o.advertise), ...all.filter((a) => a === this.o.advertise)])];
    for (const addr of targets) {
      const Ctor = grpc.makeGenericClientConstructor(caDef(), 'CA');
      const c = new Ctor(addr, clientCredentials(id), CHANNEL_OPTIONS) as any;
      let r: { certificate: Buffer; role: Role };
      try {
        r = await new Promise<{ certificate: Buffer; role: Role }>((res, rej) => c.RenewNodeCertificate({ csr: Buffer.from(csrPem) }, { deadline: Date.now() + 10_000 }, (e: grpc.ServiceError | null, x: any) => (e ? rej(e) : res(x))));
      } catch (e) {
        this.check(epoch);
        this.log(`shoald: renewing the certificate via ${addr} failed: ${(e as grpc.ServiceError).details ?? (e as Error).message}`);
        continue;
      } finally {
        c.close();
      }
      if (!this.current(epoch)) {
        this.log('shoald: a certificate renewal completed after the node left or stopped; discarded');
        return;
      }
      const certPem = r.certificate.toString('utf8');
      const info = verifyNodeCert(certPem, id.caPem, keyPem);
      const next: Identity = { ...id, role: info.ou as Role, certPem, keyPem };
      this.state.saveIdentity(next);
      this.id = next;
      this.serverTls?.update(next);
      this.manager?.forwarder.reset();
      if (next.role === 'manager') this.manager?.updateTls();
      this.log(`shoald: certificate renewed (serial ${info.serial}, role ${next.role}, valid until ${new Date(info.notAfter).toISOString()})`);
      if (id.role !== next.role) await this.switchRole(next.role, epoch);
      this.check(epoch);
      this.scheduleRenewal();
      return;
    }
    this.check(epoch);
    this.renewTimer = setTimeout(() => void this.renew(), 5000);
  }

  private async switchRole(role: Role, epoch: number): Promise<void> {
    this.check(epoch);
    if (role === 'manager' && !this.manager) {
      this.log('shoald: promoted: starting the manager role');
      rmSync(this.state.path('raft'), { recursive: true, force: true });
      rmSync(this.state.path('raft-members.json'), { force: true });
      rmSync(this.state.path('raft-id'), { force: true }); // a new membership: a fresh raft id
      await this.startManager(false, epoch);
    } else if (role === 'worker' && (this.manager || this.locked)) {
      // A locked manager demoted meanwhile has no role to stop: it is simply no longer locked.
      this.log(`shoald: demoted: ${this.locked ? 'no longer locked (a worker holds no data key)' : 'stopping the manager role'}`);
      this.locked = undefined;
      this.unlocked = undefined;
      await this.stopManager();
      // A worker never holds the secrets data key.
      removeDataKey(this.state.dir);
      rmSync(this.state.path('raft'), { recursive: true, force: true });
      rmSync(this.state.path('raft-members.json'), { force: true });
      rmSync(this.state.path('raft-id'), { force: true });
    }
  }

  /** The plugin registry (plugins_registry/) and, with --csi-pool, the built-in CSI driver registered there. */
  private async startPlugins(nodeId: string, epoch: number): Promise<void> {
    if (this.plugins) return;
    const registryDir = this.state.path('plugins_registry');
    const registry = new PluginRegistry({ dir: registryDir, log: (m) => this.log(`plugins: ${m}`) });
    this.plugins = registry;
    if (this.o.csiPool) {
      try {
        // Staging and target paths live under DIR/csi, which must be a shared mount (csi/mount-root.ts).
        await shareMountRoot(this.state.path('csi'));
        this.csiDriver = await startDriver({ socket: this.state.path('csi.sock'), poolDir: this.o.csiPool, nodeId, registryDir, log: (m) => this.log(`shoal-csi: ${m}`) });
        this.log(`shoald: built-in CSI driver serving on ${this.state.path('csi.sock')}, pool ${this.o.csiPool}`);
      } catch (e) {
        this.log(`shoald: the built-in CSI driver did not start: ${(e as Error).message}; tasks with volumes wait until a CSI driver registers`);
      }
    }
    this.check(epoch);
    await registry.start();
  }

  private async stopPlugins(): Promise<void> {
    this.volumes?.stop();
    this.volumes = undefined;
    this.volumesSession = '';
    const r = this.plugins;
    this.plugins = undefined;
    await r?.stop();
    const d = this.csiDriver;
    this.csiDriver = undefined;
    await d?.close().catch((e) => this.log(`shoald: stopping the CSI driver: ${(e as Error).message}`));
  }

  private async stopMember(): Promise<void> {
    clearTimeout(this.renewTimer);
    this.agent?.stop();
    this.agent = undefined;
    // The containers keep running: a restarted shoald finds them again.
    this.executor?.stop();
    this.executor = undefined;
    // The data path stays: pods keep their network while shoald and its plugin are away.
    await this.stopNetwork();
    await this.stopRuntime();
    await this.stopManager();
    await this.stopPlugins();
    const g = this.gossip;
    this.gossip = undefined;
    await g?.stop();
  }

  /** Stops everything this daemon runs, in bounded time (see shutdownServer). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.epoch++;
    await this.stopMember();
    this.local?.forceShutdown();
    rmSync(this.state.socketPath, { force: true });
    this.lock?.release();
  }
}

function randId(): string {
  return BigInt('0x' + randomBytes(16).toString('hex')).toString(36).padStart(25, '0');
}

/** What the node has, for the scheduler: its CPUs, memory and the CRI runtime's name. */
async function describeNode(cri: CriClient, plugins: PluginRegistry | undefined, locked: boolean): Promise<WireDescription> {
  const v = await cri.runtime.Version({ version: 'v1' }, 10_000);
  return {
    locked,
    cpu_millis: cpus().length * 1000, memory_bytes: totalmem(), runtime_name: v.runtime_name, runtime_version: v.runtime_version, os: 'linux', arch: process.arch === 'x64' ? 'amd64' : process.arch,
    plugins: (plugins?.list() ?? []).map(pluginWire),
    plugin_refusals: plugins?.refused() ?? [],
  };
}

/** A registered plugin as the managers take it (control/plugins.ts). */
function pluginWire(p: RegisteredPlugin) {
  return pluginToWire({
    kind: p.kind, name: p.name, endpoint: p.endpoint, versions: p.versions, version: p.version, registeredAt: p.registeredAt,
    ...(p.csi ? { csi: { nodeId: p.csi.nodeId, topology: p.csi.topology, maxVolumes: p.csi.maxVolumesPerNode, vendorVersion: p.csi.vendorVersion } } : {}),
  });
}
