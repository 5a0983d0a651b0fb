// The runtime's state in one place: images, pod sandboxes and containers under one root
// directory, loaded again on start so running containers are found, not orphaned.
import { EventEmitter } from 'node:events';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Containers, NotFoundError, PreconditionError, type EventKind } from './container.js';
import { ImageStore } from './image-store.js';
import { RegistryClient } from './registry-client.js';
import { Runc } from './runc.js';
import { Cni } from './cni.js';
import { cniDel, createSandbox, destroySandboxResources, isInfraOf, isMountpoint, killInfra, podNetworkRequest, prepareNsDir } from './sandbox.js';
import { StateStore, type CriObject, type SandboxRecord } from './state.js';
import { forgetStats } from './stats.js';
import { nowNs } from './logs.js';
import { Shim, ensureShim } from './shim.js';
import { StreamingServer } from './streaming.js';

export interface RuntimeOptions {
  root: string;
  runcBin?: string;
  insecureRegistries?: string[];
  defaultPidsLimit?: number;
  /** A built shoal-shim; by default it is compiled from runtime/shim/shoal-shim.c on first use. */
  shimBin?: string;
  /** StartContainer's deadline (default 60 s). */
  startTimeoutMs?: number;
  /** The cgroup under which pods without a cgroup_parent of their own get theirs (default /shoal). */
  cgroupParent?: string;
  /** CNI network config directories (first with a config wins) and plugin directories. */
  cniConfDirs?: string[];
  cniBinDirs?: string[];
}

/** A container or pod lifecycle event (GetContainerEvents); for a pod, containerId is the pod's id. */
export interface RuntimeEvent { containerId: string; sandboxId: string; kind: EventKind; at: number; sandbox?: SandboxRecord }

export const DEFAULT_CNI_CONF_DIRS = ['/etc/cni/net.d'];
export const DEFAULT_CNI_BIN_DIRS = ['/usr/lib/cni', '/opt/cni/bin'];

export class Runtime {
  readonly images: ImageStore;
  readonly state: StateStore;
  readonly runc: Runc;
  readonly containers: Containers;
  readonly streaming: StreamingServer;
  readonly shim: Shim;
  readonly cni: Cni;
  private readonly sandboxes = new Map<string, SandboxRecord>();
  /** 'event' (RuntimeEvent) for every container and pod lifecycle change. */
  readonly events = new EventEmitter();
  private nsDir = '';

  constructor(readonly opts: RuntimeOptions) {
    this.images = new ImageStore(join(opts.root, 'images'), new RegistryClient({ insecure: opts.insecureRegistries }));
    this.state = new StateStore(opts.root);
    this.runc = new Runc(join(opts.root, 'runc'), opts.runcBin);
    this.shim = new Shim(opts.shimBin ?? ensureShim());
    this.cni = new Cni(opts.cniConfDirs ?? DEFAULT_CNI_CONF_DIRS, opts.cniBinDirs ?? DEFAULT_CNI_BIN_DIRS);
    this.containers = new Containers(this.state, this.images, this.runc, { defaultPidsLimit: opts.defaultPidsLimit ?? 0, startTimeoutMs: opts.startTimeoutMs }, this.shim);
    this.streaming = new StreamingServer(this.runc, this.containers, () => this.shim.bin);
    this.events.setMaxListeners(0);
    this.containers.onEvent = (containerId, sandboxId, kind) => this.emit(containerId, sandboxId, kind);
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.opts.root, { recursive: true, mode: 0o711 });
    await this.images.init();
    await this.state.init();
    this.nsDir = await prepareNsDir(this.opts.root);
    for (const s of await this.state.loadSandboxes()) {
      this.sandboxes.set(s.id, s);
      // After a reboot the namespace files are plain files again: the pod cannot be used.
      // Nor can it when its infra process (the shared PID namespace) is gone.
      if (s.state === 'ready' && ([s.netns, s.ipcns, s.utsns].some((f) => f && !isMountpoint(f)) || (s.infraPid && !isInfraOf(s.infraPid, s.dir)))) {
        s.state = 'notready';
        await this.state.saveSandbox(s);
      }
    }
    await this.containers.restore(await this.state.loadContainers());
    await this.streaming.start();
  }

  /** Stops reading container output; containers keep running (their monitors hold the pipes). */
  close(): void {
    this.streaming.close();
    this.containers.detachAll();
    this.shim.close();
  }

  private emit(containerId: string, sandboxId: string, kind: EventKind, sandbox = this.sandboxes.get(sandboxId)): void {
    this.events.emit('event', { containerId, sandboxId, kind, at: Number(nowNs()), sandbox } satisfies RuntimeEvent);
  }

  listSandboxes(): SandboxRecord[] { return [...this.sandboxes.values()]; }

  findSandbox(id: string): SandboxRecord {
    if (!id) throw new NotFoundError('pod sandbox id is empty');
    const s = this.sandboxes.get(id) ?? [...this.sandboxes.values()].find((x) => x.id.startsWith(id));
    if (!s) throw new NotFoundError(`pod sandbox ${JSON.stringify(id)} not found`);
    return s;
  }

  async runPodSandbox(config: CriObject, handler: string): Promise<SandboxRecord> {
    const rec = await createSandbox(this.state, this.shim, this.nsDir, config, handler, this.opts.cgroupParent ?? '/shoal', this.cni);
    this.sandboxes.set(rec.id, rec);
    // As containerd: a pod is created and started in one call.
    this.emit(rec.id, rec.id, 0);
    this.emit(rec.id, rec.id, 1);
    return rec;
  }

  /** Kills the pod's containers and marks it not ready. Idempotent. */
  async stopPodSandbox(id: string): Promise<void> {
    const sb = this.sandboxes.get(id);
    if (!sb) return;
    await this.containers.sandboxClosing(sb.id);
    await Promise.all(this.containers.list().filter((c) => c.sandboxId === sb.id).map((c) => this.containers.stop(c.id, 0)));
    await killInfra(sb);
    if (sb.state !== 'notready') {
      sb.state = 'notready';
      await this.state.saveSandbox(sb);
      this.emit(sb.id, sb.id, 2);
    }
    await this.teardownNetwork(sb);
  }

  /** CNI DEL for a pod whose network is still set up; a failure leaves it marked for the next try. */
  private async teardownNetwork(sb: SandboxRecord): Promise<void> {
    const n = sb.network;
    if (!n || n.down) return;
    try {
      await cniDel(this.cni, sb);
    } catch (e) {
      throw new Error(`failed to destroy network for sandbox ${sb.id}: ${(e as Error).message}`);
    }
    n.down = true;
    await this.state.saveSandbox(sb);
  }

  /** CNI CHECK of a ready pod's network (PodSandboxStatus verbose). */
  async checkNetwork(sb: SandboxRecord): Promise<string> {
    const n = sb.network;
    if (!n) return 'no CNI network (host network, or no network config when the pod was made)';
    if (n.down || sb.state !== 'ready') return 'not checked: the pod is stopped';
    try {
      return (await this.cni.check(n.confList, podNetworkRequest(sb), n.ifName, n.result)) ? 'passed' : `not checked: ${n.confList.disableCheck ? 'disableCheck is set' : `cniVersion ${n.confList.cniVersion || '0.1.0'} has no CHECK`}`;
    } catch (e) { return `failed: ${(e as Error).message}`; }
  }

  async removePodSandbox(id: string): Promise<void> {
    const sb = this.sandboxes.get(id);
    if (!sb) return;
    await this.containers.sandboxClosing(sb.id);
    for (const c of this.containers.list().filter((c) => c.sandboxId === sb.id)) {
      await this.containers.remove(c.id);
      forgetStats(c.id);
    }
    await this.teardownNetwork(sb);
    await destroySandboxResources(sb);
    this.sandboxes.delete(sb.id);
    this.containers.sandboxClosed(sb.id);
    await fsp.rm(sb.dir, { recursive: true, force: true });
    this.emit(sb.id, sb.id, 3, sb);
  }

  async createContainer(sandboxId: string, config: CriObject): Promise<string> {
    const sb = this.findSandbox(sandboxId);
    const c = await this.containers.create(sb, config);
    return c.id;
  }

  async removeImage(spec: string): Promise<void> {
    if (!spec) throw new PreconditionError('RemoveImage: image is empty');
    await this.images.remove(spec, (id) => this.containers.imageInUse(id));
  }
}
