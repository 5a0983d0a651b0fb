// The secrets data key: a random AES-256 key that encrypts every secret's data before it is
// proposed to raft, so the raft log, the WAL and the snapshots only ever hold ciphertext. It is
// never written into the replicated store: `init` generates it, each manager keeps it in its state
// directory (DIR/data.key, mode 0600), a manager that joins or is promoted fetches it from another
// manager over mTLS (CA.GetDataKey, manager certificates only), and a demoted manager deletes it.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeDurable } from '../durable-file.js';
import { isLocked, parseLocked, type UnlockKey } from './unlock-key.js';

export const DATA_KEY_FILE = 'data.key';
const VERSION = 1;
const IV = 12;
const TAG = 16;
const ID = 8;

export class DataKeyError extends Error {}

/** The key file is sealed under the unlock key (autolock) and no key was given to open it. */
export class DataKeyLockedError extends DataKeyError {
  constructor(readonly path: string, readonly unlockKeyId: string) {
    super(`this manager is locked (autolock): ${path} is sealed under unlock key ${unlockKeyId}; run "shoal unlock" on this host with the cluster's unlock key`);
  }
}

export class DataKey {
  /** A short public name of the key (a hash of it): says which key sealed a blob, reveals nothing. */
  readonly id: string;

  constructor(readonly key: Buffer) {
    if (key.length !== 32) throw new DataKeyError(`a data key has 32 bytes, got ${key.length}`);
    this.id = keyId(key);
  }

  static generate(): DataKey {
    return new DataKey(randomBytes(32));
  }

  /**
   * AES-256-GCM: version | key id (8 bytes) | IV (12) | tag (16) | ciphertext. `aad` binds the
   * blob to its object (the secret's id), so one secret's ciphertext cannot be passed off as another's.
   */
  seal(plain: Buffer, aad: string): Buffer {
    const iv = randomBytes(IV);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(aad));
    const body = Buffer.concat([c.update(plain), c.final()]);
    return Buffer.concat([Buffer.from([VERSION]), Buffer.from(this.id, 'hex'), iv, c.getAuthTag(), body]);
  }

  open(sealed: Uint8Array, aad: string): Buffer {
    const b = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    if (b.length < 1 + ID + IV + TAG || b[0] !== VERSION) throw new DataKeyError(`sealed data has an unknown format (version ${b[0]}); this manager reads version ${VERSION}`);
    const id = b.subarray(1, 1 + ID).toString('hex');
    if (id !== this.id) throw new DataKeyError(`the data was sealed with data key ${id}, but this manager holds data key ${this.id}`);
    const iv = b.subarray(1 + ID, 1 + ID + IV);
    const tag = b.subarray(1 + ID + IV, 1 + ID + IV + TAG);
    const d = createDecipheriv('aes-256-gcm', this.key, iv);
    d.setAAD(Buffer.from(aad));
    d.setAuthTag(tag);
    try {
      return Buffer.concat([d.update(b.subarray(1 + ID + IV + TAG)), d.final()]);
    } catch {
      throw new DataKeyError(`the sealed data of ${aad} does not authenticate under data key ${this.id} (corrupted, or sealed for another object)`);
    }
  }
}

export function keyId(key: Buffer): string {
  return createHash('sha256').update('shoal secrets data key\0').update(key).digest().subarray(0, ID).toString('hex');
}

/** The key file in a manager's state dir: the raw key in base64, owner-only. */
export function keyPath(stateDir: string): string {
  return join(stateDir, DATA_KEY_FILE);
}

/** What DIR/data.key holds: nothing, the key in clear (autolock off), or the key sealed under an unlock key. */
export type DataKeyFile = { state: 'absent' } | { state: 'plain'; key: DataKey } | { state: 'locked'; text: string; unlockKeyId: string };

export function readDataKeyFile(stateDir: string): DataKeyFile {
  const p = keyPath(stateDir);
  if (!existsSync(p)) return { state: 'absent' };
  const mode = statSync(p).mode & 0o777;
  if (mode & 0o077) throw new DataKeyError(`${p} is readable by others (mode ${mode.toString(8)}): it holds the key to every secret; chmod 600 it`);
  const text = readFileSync(p, 'utf8');
  if (isLocked(text)) return { state: 'locked', text, unlockKeyId: parseLocked(text).keyId };
  const t = text.trim();
  const key = Buffer.from(t, 'base64');
  if (key.length !== 32 || key.toString('base64') !== t) throw new DataKeyError(`${p} does not hold a data key (32 bytes in base64, or sealed: SHL-LOCKED-1:...)`);
  return { state: 'plain', key: new DataKey(key) };
}

/** The key from the file; a sealed file needs `unlock` (else DataKeyLockedError; a wrong one: UnlockKeyError). */
export function loadDataKey(stateDir: string, unlock?: UnlockKey): DataKey | undefined {
  const f = readDataKeyFile(stateDir);
  if (f.state === 'absent') return undefined;
  if (f.state === 'plain') return f.key;
  if (!unlock) throw new DataKeyLockedError(keyPath(stateDir), f.unlockKeyId);
  return new DataKey(unlock.openDataKey(f.text));
}

/** Durable (fsynced) and mode 0600 from its creation on; sealed under `unlock` when autolock is on. */
export function saveDataKey(stateDir: string, k: DataKey, unlock?: UnlockKey): void {
  writeDurable(keyPath(stateDir), unlock ? unlock.sealDataKey(k.key) : k.key.toString('base64'), 0o600);
}

export function removeDataKey(stateDir: string): void {
  rmSync(keyPath(stateDir), { force: true });
}
