// Secrets and configs as the replicated store keeps them. A secret's data is sealed with the data
// key (datakey.ts) before it is proposed, so only ciphertext reaches raft; a config's data is kept
// as it is (configs are not secret, as in Swarm). Both are immutable once created: a service
// changes to another one by changing its reference, which rolls the service.
import type { StoreObject } from '../store/types.js';

export type FileKind = 'secret' | 'config';

export interface SecretSpec {
  /** DataKey.seal(data, aad(id)): key id, IV, tag and ciphertext. */
  sealed: Uint8Array;
}

export interface ConfigSpec {
  data: Uint8Array;
}

export interface FileStatus {
  createdAt: number;
}

export type SecretObject = StoreObject<SecretSpec, FileStatus>;
export type ConfigObject = StoreObject<ConfigSpec, FileStatus>;

/** What a sealed secret is bound to (AES-GCM additional data): its own id. */
export function secretAad(id: string): string {
  return `shoal secret ${id}`;
}

/**
 * A service's use of a secret or config: which one (the id its name resolved to when the spec was
 * written, and the name) and the file it becomes in the task's main container.
 */
export interface FileRef {
  id: string;
  name: string;
  /** Absolute path in the container. */
  target: string;
  uid: number;
  gid: number;
  /** Permission bits (0 .. 0o777). */
  mode: number;
}

/** Swarm's limits: 500 KiB of secret data, 1000 KiB of config data. */
export const MAX_SIZE: Record<FileKind, number> = { secret: 500 * 1024, config: 1000 * 1024 };
export const DEFAULT_MODE = 0o444;
/** Where a secret lands without a target (or with a relative one), as in Swarm. */
export const SECRETS_DIR = '/run/secrets';

/** Swarm's rule for secret and config names: letters, digits, '-', '_', '.', at most 64. */
const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?$/;

export function nameError(kind: FileKind, name: unknown): string | undefined {
  if (typeof name === 'string' && NAME.test(name)) return undefined;
  return `${kind} name ${JSON.stringify(name)} is not valid: use 1-64 letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
}
