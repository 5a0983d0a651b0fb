// The runtime's state in one place: images, pod sandboxes and containers under one root
// directory, loaded again on start so running containers are found, not orphaned.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Containers, NotFoundError, PreconditionError } from './container.js';
import { ImageStore } from './image-store.js';
import { RegistryClient } from './registry-client.js';
import { Runc } from './runc.js';
import { createSandbox, destroySandboxResources, isMountpoint, prepareNsDir } from './sandbox.js';
import { StateStore, type CriObject, type SandboxRecord } from './state.js';
import { forgetStats } from './stats.js';
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
}

export class Runtime {
  readonly images: ImageStore;
  readonly state: StateStore;
  readonly runc: Runc;
  readonly containers: Containers;
  readonly streaming: StreamingServer;
  readonly shim: Shim;
  private readonly sandboxes = new Map<string, SandboxRecord>();
  private nsDir = '';

  constructor(readonly opts: RuntimeOptions) {
    this.images = new ImageStore(join(opts.root, 'images'), new RegistryClient({ insecure: opts.insecureRegistries }));
    this.state = new StateStore(opts.root);
    this.runc = new Runc(join(opts.root, 'runc'), opts.runcBin);
    this.shim = new Shim(opts.shimBin ?? ensureShim());
    this.containers = new Containers(this.state, this.images, this.runc, { defaultPidsLimit: opts.defaultPidsLimit ?? 0, startTimeoutMs: opts.startTimeoutMs }, this.shim);
    this.streaming = new StreamingServer(this.runc, this.containers);
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.opts.root, { recursive: true, mode: 0o711 });
    await this.images.init();
    await this.state.init();
    this.nsDir = await prepareNsDir(this.opts.root);
    for (const s of await this.state.loadSandboxes()) {
      this.sandboxes.set(s.id, s);
      // After a reboot the namespace files are plain files again: the pod cannot be used.
      if (s.state === 'ready' && [s.netns, s.ipcns, s.utsns].some((f) => f && !isMountpoint(f))) {
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

  listSandboxes(): SandboxRecord[] { return [...this.sandboxes.values()]; }

  findSandbox(id: string): SandboxRecord {
    if (!id) throw new NotFoundError('pod sandbox id is empty');
    const s = this.sandboxes.get(id) ?? [...this.sandboxes.values()].find((x) => x.id.startsWith(id));
    if (!s) throw new NotFoundError(`pod sandbox ${JSON.stringify(id)} not found`);
    return s;
  }

  async runPodSandbox(config: CriObject, handler: string): Promise<SandboxRecord> {
    const rec = await createSandbox(this.state, this.shim, this.nsDir, config, handler, this.opts.cgroupParent ?? '/shoal');
    this.sandboxes.set(rec.id, rec);
    return rec;
  }

  /** Kills the pod's containers and marks it not ready. Idempotent. */
  async stopPodSandbox(id: string): Promise<void> {
    const sb = this.sandboxes.get(id);
    if (!sb) return;
    await this.containers.sandboxClosing(sb.id);
    await Promise.all(this.containers.list().filter((c) => c.sandboxId === sb.id).map((c) => this.containers.stop(c.id, 0)));
    if (sb.state !== 'notready') {
      sb.state = 'notready';
      await this.state.saveSandbox(sb);
    }
  }

  async removePodSandbox(id: string): Promise<void> {
    const sb = this.sandboxes.get(id);
    if (!sb) return;
    await this.containers.sandboxClosing(sb.id);
    for (const c of this.containers.list().filter((c) => c.sandboxId === sb.id)) {
      await this.containers.remove(c.id);
      forgetStats(c.id);
    }
    await destroySandboxResources(sb);
    this.sandboxes.delete(sb.id);
    this.containers.sandboxClosed(sb.id);
    await fsp.rm(sb.dir, { recursive: true, force: true });
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
