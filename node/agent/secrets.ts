// Secrets and configs on the node. The managers send the data of those a task assigned here uses
// with the assignments (a secret decrypted, over mTLS); the agent keeps it in memory only (never in
// assignments.json) and takes it back when the managers do. When a task starts, each of its
// references becomes a file with the reference's uid, gid and mode, bind-mounted read-only into
// the main container through the CRI's mounts: secrets on a tmpfs the agent mounts at DIR/secrets
// (checked to be a tmpfs before every write, so a secret never touches the node's disk), configs
// under DIR/configs. A task's files are removed when it ends.
import { closeSync, existsSync, fchmodSync, fchownSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { FileKind, FileRef } from '../../manager/secrets/model.js';
import type { TaskObject } from '../../manager/services/model.js';

/** f_type of a tmpfs (linux/magic.h). */
export const TMPFS_MAGIC = 0x01021994;

export interface WireFileData {
  id: string;
  name: string;
  data: Buffer;
}

/** A CRI Mount (runtime.v1). */
export interface CriMount {
  container_path: string;
  host_path: string;
  readonly: boolean;
}

export interface TaskFilesOptions {
  stateDir: string;
  log(m: string): void;
  /** How long a starting task waits for data the managers have not sent yet (ms). */
  waitMs?: number;
}

export class FileError extends Error {}

export class TaskFiles {
  private readonly data: Record<FileKind, Map<string, Buffer>> = { secret: new Map(), config: new Map() };

  constructor(private readonly o: TaskFilesOptions) {}

  get secretsDir(): string {
    return join(resolve(this.o.stateDir), 'secrets');
  }

  get configsDir(): string {
    return join(resolve(this.o.stateDir), 'configs');
  }

  /** Ids of the secrets (configs) the agent holds in memory now. */
  holding(kind: FileKind): string[] {
    return [...this.data[kind].keys()];
  }

  /** A complete set of assignments follows: what is still needed comes again in it. */
  reset(): void {
    for (const m of Object.values(this.data)) {
      for (const b of m.values()) b.fill(0);
      m.clear();
    }
  }

  /** One change of the assignments stream; false if it is not about a secret or config. */
  apply(ch: { action: string; secret?: WireFileData | null; config?: WireFileData | null }): boolean {
    const kind: FileKind | undefined = ch.secret ? 'secret' : ch.config ? 'config' : undefined;
    if (!kind) return false;
    const f = (ch.secret ?? ch.config)!;
    const m = this.data[kind];
    m.get(f.id)?.fill(0);
    if (ch.action === 'remove') m.delete(f.id);
    else m.set(f.id, Buffer.from(f.data));
    return true;
  }

  /**
   * Writes the task's files (a clean set: any of an earlier attempt go first) and returns the
   * mounts for its main container. Waits for data not delivered yet (the saved assignments are
   * run before the managers answer after a restart); `check` throws to give up (a stop).
   */
  async prepare(t: TaskObject, check: () => void): Promise<CriMount[]> {
    const tpl = t.spec.template;
    const refs: [FileKind, FileRef][] = [...(tpl.secrets ?? []).map((r) => ['secret', r] as [FileKind, FileRef]), ...(tpl.configs ?? []).map((r) => ['config', r] as [FileKind, FileRef])];
    if (refs.length === 0) return [];
    const end = Date.now() + (this.o.waitMs ?? 60_000);
    for (;;) {
      const missing = refs.filter(([k, r]) => !this.data[k].has(r.id));
      if (missing.length === 0) break;
      check();
      if (Date.now() > end) throw new FileError(`${missing.map(([k, r]) => `${k} ${r.name}`).join(', ')} did not come from the managers within ${Math.round((this.o.waitMs ?? 60_000) / 1000)} s (removed, or no manager reachable)`);
      await new Promise((r) => setTimeout(r, 100));
    }
    this.release(t.id);
    if (refs.some(([k]) => k === 'secret')) this.ensureTmpfs();
    const mounts: CriMount[] = [];
    refs.forEach(([kind, r], i) => {
      const dir = join(kind === 'secret' ? this.secretsDir : this.configsDir, t.id);
      if (kind === 'secret') this.checkTmpfs();
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const path = join(dir, `${i}-${r.name}`);
      // Created owner-only, then handed to the reference's owner and mode (never readable by
      // anyone else in between).
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, this.data[kind].get(r.id)!);
        fchownSync(fd, r.uid, r.gid);
        fchmodSync(fd, r.mode);
      } finally {
        closeSync(fd);
      }
      mounts.push({ container_path: r.target, host_path: path, readonly: true });
    });
    return mounts;
  }

  /** The task ended (or left the node): its files go. */
  release(taskId: string): void {
    for (const root of [this.secretsDir, this.configsDir]) rmSync(join(root, taskId), { recursive: true, force: true });
  }

  /** Files of tasks other than `keep` (left by an agent that stopped before it could remove them). */
  sweep(keep: Set<string>): void {
    for (const root of [this.secretsDir, this.configsDir]) {
      if (!existsSync(root)) continue;
      for (const id of readdirSync(root)) {
        if (keep.has(id)) continue;
        rmSync(join(root, id), { recursive: true, force: true });
        this.o.log(`agent: removed the files of task ${id}, which no longer runs here`);
      }
    }
  }

  /** The node leaves: every file goes and the tmpfs is unmounted. */
  removeAll(): void {
    this.reset();
    for (const root of [this.secretsDir, this.configsDir]) {
      if (!existsSync(root)) continue;
      for (const id of readdirSync(root)) rmSync(join(root, id), { recursive: true, force: true });
    }
    if (isMountPoint(this.secretsDir)) {
      const r = spawnSync('umount', [this.secretsDir], { encoding: 'utf8' });
      if (r.status !== 0) this.o.log(`agent: unmounting ${this.secretsDir} failed: ${r.stderr.trim()}`);
    }
  }

  /** DIR/secrets is a tmpfs (mounted here once, kept across restarts of shoald). */
  private ensureTmpfs(): void {
    mkdirSync(this.secretsDir, { recursive: true, mode: 0o700 });
    if (statfsSync(this.secretsDir).type === TMPFS_MAGIC) return;
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'mode=0700,nosuid,nodev,noexec', 'tmpfs', this.secretsDir], { encoding: 'utf8' });
    if (r.status !== 0) throw new FileError(`secrets need a tmpfs (they are never written to disk), and mounting one at ${this.secretsDir} failed: ${(r.stderr || r.error?.message || '').trim()}`);
    this.o.log(`agent: mounted a tmpfs for secrets at ${this.secretsDir}`);
    this.checkTmpfs();
  }

  private checkTmpfs(): void {
    const type = statfsSync(this.secretsDir).type;
    if (type !== TMPFS_MAGIC) throw new FileError(`${this.secretsDir} is not a tmpfs (filesystem type 0x${type.toString(16)}): refusing to write a secret to disk`);
  }
}

/** True if `path` (absolute) is a mount point in this mount namespace. */
export function isMountPoint(path: string): boolean {
  const info = readFileSync('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => l.split(' ')[4]?.replace(/\\040/g, ' ') === path);
}
