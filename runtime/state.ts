// The runtime's persisted state: one meta.json per sandbox and per container, written
// atomically and fsynced, so a restarted runtime finds its pods and running containers again.
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir, writeFileDurable } from './content-store.js';
import { runCommand } from './run-command.js';
import type { SandboxNetwork } from './cni.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type CriObject = any;

export interface SandboxRecord {
  id: string;
  config: CriObject; // PodSandboxConfig as received
  runtimeHandler: string;
  createdAt: number; // ns since the epoch
  state: 'ready' | 'notready';
  netns?: string; // path of the network namespace (absent: host network)
  ipcns?: string;
  utsns?: string;
  hostname: string;
  cgroupParent: string;
  dir: string;
  /** The CNI chain the pod's network was set up with (absent: host network or no config then). */
  network?: SandboxNetwork & { down?: boolean; loopback?: boolean };
  /** The infra process holding the pod's shared PID namespace (NamespaceMode POD). */
  infraPid?: number;
}

export type ContainerStateName = 'created' | 'running' | 'exited' | 'unknown';

export interface ContainerRecord {
  id: string;
  sandboxId: string;
  config: CriObject; // ContainerConfig as received
  imageId: string;
  imageRef: string;
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  state: ContainerStateName;
  reason: string;
  message: string;
  logPath?: string; // absolute
  cgroupsPath: string;
  dir: string;
  pid?: number;
  monitorPid?: number;
  stopSignal: string;
  user: { uid: number; gid: number; groups: number[] };
  resources: CriObject;
  /** stdin_once: the container's stdin was closed after its first attach. */
  stdinClosed?: boolean;
}

/** Replaces a file atomically (tmp + rename) without waiting for the disk. */
async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  await fsp.writeFile(tmp, data, { mode: 0o600 });
  await fsp.rename(tmp, path);
}

export class StateStore {
  constructor(readonly root: string) {}

  sandboxDir(id: string): string { return join(this.root, 'sandboxes', id); }
  containerDir(id: string): string { return join(this.root, 'containers', id); }

  async init(): Promise<void> {
    await fsp.mkdir(join(this.root, 'sandboxes'), { recursive: true });
    await fsp.mkdir(join(this.root, 'containers'), { recursive: true });
  }

  /**
   * The first write of a record into its freshly made directory: no temporary file and rename
   * (there is no older version to protect), and the file, its directory and the directory
   * holding that are fsynced concurrently, so the filesystem does one journal commit for all.
   * A crash before the reply can leave a torn file; loadAll treats it as never recorded, which
   * is what it is (the RPC did not answer). `extra` files (a bundle's config.json) are made
   * durable in the same round.
   */
  async createRecord(dir: string, rec: SandboxRecord | ContainerRecord, extra: { name: string; data: string }[] = []): Promise<void> {
    const files = [{ name: 'meta.json', data: JSON.stringify(rec) }, ...extra];
    const handles = await Promise.all(files.map((f) => fsp.open(join(dir, f.name), 'wx', 0o600)));
    try {
      await Promise.all(handles.map((h, i) => h.writeFile(files[i]!.data)));
      await Promise.all([...handles.map((h) => h.sync()), fsyncDir(dir), fsyncDir(join(dir, '..'))]);
    } finally { await Promise.all(handles.map((h) => h.close())); }
  }

  async saveSandbox(s: SandboxRecord): Promise<void> {
    await writeFileDurable(join(s.dir, 'meta.json'), JSON.stringify(s));
  }

  private readonly saving = new Map<string, Promise<void>>();

  /**
   * Saves are serialised per container, each writing the record as it is when its turn comes.
   * `durable: false` (atomic rename, no fsync) is for changes a restart reconstructs anyway:
   * "running", pid and start time come from runc's pid file and /proc (Containers.restore).
   */
  saveContainer(c: ContainerRecord, opts: { durable?: boolean } = {}): Promise<void> {
    const write = opts.durable === false ? writeFileAtomic : writeFileDurable;
    const prev = this.saving.get(c.id) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(() => (existsSync(c.dir) ? write(join(c.dir, 'meta.json'), JSON.stringify(c)) : undefined));
    this.saving.set(c.id, next);
    void next.finally(() => { if (this.saving.get(c.id) === next) this.saving.delete(c.id); }).catch(() => {});
    return next;
  }

  private async loadAll<T>(kind: 'sandboxes' | 'containers'): Promise<T[]> {
    const out: T[] = [];
    for (const id of await fsp.readdir(join(this.root, kind))) {
      const f = join(this.root, kind, id, 'meta.json');
      if (!existsSync(f)) {
        // Created but never recorded (crash mid-create): nothing refers to it. Unmount first so
        // the removal cannot reach into a mounted root.
        await runCommand('umount', [join(this.root, kind, id, 'rootfs')], { allowFail: true });
        await fsp.rm(join(this.root, kind, id), { recursive: true, force: true }).catch(() => {});
        continue;
      }
      let rec: T;
      try { rec = JSON.parse(await fsp.readFile(f, 'utf8')) as T; } catch {
        // Torn first write (see createRecord): the creating RPC never answered.
        await runCommand('umount', [join(this.root, kind, id, 'rootfs')], { allowFail: true });
        await fsp.rm(join(this.root, kind, id), { recursive: true, force: true }).catch(() => {});
        continue;
      }
      out.push(rec);
    }
    return out;
  }

  loadSandboxes(): Promise<SandboxRecord[]> { return this.loadAll('sandboxes'); }
  loadContainers(): Promise<ContainerRecord[]> { return this.loadAll('containers'); }
}
