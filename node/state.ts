// The node's state directory: identity (key, certificate, CA), chosen ports, known managers and
// the gossip key. Every write is durable: temp file, fsync, rename, fsync of the directory.
import { writeDurable } from '../manager/durable-file.js';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Role } from '../manager/ca/pki.js';

export interface IdentityMeta {
  nodeId: string;
  clusterId: string;
  role: Role;
}

export interface Identity extends IdentityMeta {
  caPem: string;
  certPem: string;
  keyPem: string;
}


export class StateDir {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  path(...p: string[]): string {
    return join(this.dir, ...p);
  }

  get socketPath(): string {
    return this.path('shoald.sock');
  }

  loadIdentity(): Identity | undefined {
    const f = this.path('identity', 'node.json');
    if (!existsSync(f)) return undefined;
    const meta = JSON.parse(readFileSync(f, 'utf8')) as IdentityMeta;
    return {
      ...meta,
      caPem: readFileSync(this.path('identity', 'ca.crt'), 'utf8'),
      certPem: readFileSync(this.path('identity', 'node.crt'), 'utf8'),
      keyPem: readFileSync(this.path('identity', 'node.key'), 'utf8'),
    };
  }

  /** Key and certificate first, node.json last: node.json's presence means the identity is whole. */
  saveIdentity(id: Identity): void {
    writeDurable(this.path('identity', 'ca.crt'), id.caPem, 0o644);
    writeDurable(this.path('identity', 'node.key'), id.keyPem, 0o600);
    writeDurable(this.path('identity', 'node.crt'), id.certPem, 0o644);
    writeDurable(this.path('identity', 'node.json'), JSON.stringify({ nodeId: id.nodeId, clusterId: id.clusterId, role: id.role }), 0o644);
  }

  /** Everything that belongs to membership of one cluster (what wipe removes). */
  static readonly MEMBER_FILES = ['identity', 'raft', 'raft-id', 'raft-members.json', 'managers.json', 'gossip.key', 'ports.json', 'assignments.json', 'data.key', 'configs', 'secrets'];

  /** Forget the cluster (after leave, or a failed init): identity, raft data, managers, gossip
   * key. node.json goes first, durably: a crash part-way leaves no whole identity, so the node
   * restarts uninitialised and the next init/join clears the rest. */
  wipe(): void {
    const nodeJson = this.path('identity', 'node.json');
    if (existsSync(nodeJson)) {
      rmSync(nodeJson, { force: true });
      fsyncDir(this.path('identity'));
    }
    for (const p of StateDir.MEMBER_FILES) rmSync(this.path(p), { recursive: true, force: true });
    fsyncDir(this.dir);
  }

  readJson<T>(name: string, dflt: T): T {
    try {
      return JSON.parse(readFileSync(this.path(name), 'utf8')) as T;
    } catch {
      return dflt;
    }
  }

  writeJson(name: string, v: unknown): void {
    writeDurable(this.path(name), JSON.stringify(v), 0o600);
  }
}

export { writeDurable };

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
