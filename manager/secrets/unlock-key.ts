// Autolock's unlock key (the key-encryption key, as Swarm's `SWMKEY-1-...`): 32 random bytes shown
// to the operator as `SHL-UNLOCK-1-<base64url>`. With autolock on, each manager's data key file
// (DIR/data.key) holds the data key sealed under a key derived from the unlock key, so a manager's
// disk alone opens neither the secrets nor the CA key: a restarted manager stays locked until
// `shoal unlock` gives it the unlock key. The key has 256 bits of entropy, so HKDF (not a password
// KDF) derives the wrapping key; a fresh salt per file means equal keys never seal alike.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

export const UNLOCK_PREFIX = 'SHL-UNLOCK-1-';
/** The first line of a sealed data key file (a plain one holds only the key in base64). */
export const LOCKED_PREFIX = 'SHL-LOCKED-1:';
const SALT = 16;
const IV = 12;
const TAG = 16;

export class UnlockKeyError extends Error {}

export class UnlockKey {
  /** A public name of the key (a hash): says which unlock key sealed a file, reveals nothing. */
  readonly id: string;

  constructor(readonly key: Buffer) {
    if (key.length !== 32) throw new UnlockKeyError(`an unlock key has 32 bytes, got ${key.length}`);
    this.id = createHash('sha256').update('shoal unlock key\0').update(key).digest().subarray(0, 8).toString('hex');
  }

  static generate(): UnlockKey {
    return new UnlockKey(randomBytes(32));
  }

  /** What the operator keeps: `SHL-UNLOCK-1-` and the key in base64url (43 characters). */
  toString(): string {
    return UNLOCK_PREFIX + this.key.toString('base64url');
  }

  /** Reads an unlock key as `shoal unlock-key` printed it (surrounding whitespace ignored). */
  static parse(text: string): UnlockKey {
    const s = text.trim();
    if (!s) throw new UnlockKeyError('no unlock key was given: it looks like SHL-UNLOCK-1-... ("shoal unlock-key" on an unlocked manager shows it)');
    if (!s.startsWith(UNLOCK_PREFIX)) throw new UnlockKeyError(`that is not a shoal unlock key: it should start with ${UNLOCK_PREFIX} (a join token starts with SHL-1-)`);
    const body = s.slice(UNLOCK_PREFIX.length);
    const key = Buffer.from(body, 'base64url');
    if (!/^[A-Za-z0-9_-]{43}$/.test(body) || key.length !== 32 || key.toString('base64url') !== body) {
      throw new UnlockKeyError(`the unlock key is malformed: after ${UNLOCK_PREFIX} come 43 characters (A-Z a-z 0-9 - _), got ${body.length}; check it was copied whole`);
    }
    return new UnlockKey(key);
  }

  private wrapKey(salt: Buffer): Buffer {
    return Buffer.from(hkdfSync('sha256', this.key, salt, 'shoal data key wrap v1', 32));
  }

  /** `SHL-LOCKED-1:<unlock key id>:<base64(salt | IV | tag | sealed data key)>`. */
  sealDataKey(dataKey: Buffer): string {
    const salt = randomBytes(SALT);
    const iv = randomBytes(IV);
    const c = createCipheriv('aes-256-gcm', this.wrapKey(salt), iv);
    c.setAAD(Buffer.from(LOCKED_PREFIX + this.id));
    const body = Buffer.concat([c.update(dataKey), c.final()]);
    return `${LOCKED_PREFIX}${this.id}:${Buffer.concat([salt, iv, c.getAuthTag(), body]).toString('base64')}\n`;
  }

  /** The data key in a sealed file's text; a wrong key is refused, saying so. */
  openDataKey(text: string): Buffer {
    const f = parseLocked(text);
    const d = createDecipheriv('aes-256-gcm', this.wrapKey(f.blob.subarray(0, SALT)), f.blob.subarray(SALT, SALT + IV));
    d.setAAD(Buffer.from(LOCKED_PREFIX + f.keyId));
    d.setAuthTag(f.blob.subarray(SALT + IV, SALT + IV + TAG));
    try {
      return Buffer.concat([d.update(f.blob.subarray(SALT + IV + TAG)), d.final()]);
    } catch {
      const which = f.keyId === this.id ? 'the file does not authenticate under it (corrupted?)' : `this manager's data key is sealed under unlock key ${f.keyId}, this is key ${this.id}`;
      throw new UnlockKeyError(`wrong unlock key: ${which}. If the key was rotated while this manager was down, give the key from before the rotation`);
    }
  }
}

export function isLocked(text: string): boolean {
  return text.startsWith(LOCKED_PREFIX);
}

/** The unlock key id a sealed file names, and its blob; a damaged file is named as such. */
export function parseLocked(text: string): { keyId: string; blob: Buffer } {
  const m = /^SHL-LOCKED-1:([0-9a-f]{16}):([A-Za-z0-9+/=]+)\s*$/.exec(text);
  const blob = m ? Buffer.from(m[2]!, 'base64') : Buffer.alloc(0);
  if (!m || blob.length !== SALT + IV + TAG + 32) throw new UnlockKeyError('the sealed data key file is damaged (expected SHL-LOCKED-1:<key id>:<base64 of 76 bytes>)');
  return { keyId: m[1]!, blob };
}
