// The gossip keyring: AES-256 keys, one primary that encrypts, all of them
// tried on decrypt. Rotation: install the new key everywhere, use it (make it
// primary) everywhere, then remove the old one.

export const KEY_BYTES = 32;

function check(key: Uint8Array, what: string): Buffer {
  if (!(key instanceof Uint8Array)) throw new Error(`keyring: ${what} must be bytes`);
  if (key.length !== KEY_BYTES) {
    throw new Error(`keyring: ${what} is ${key.length} bytes; AES-256 needs exactly ${KEY_BYTES} (e.g. 44 base64 characters from \`head -c32 /dev/urandom | base64\`)`);
  }
  return Buffer.from(key);
}

export class Keyring {
  /** Primary first. */
  private keys: Buffer[] = [];

  constructor(keys: Uint8Array[], primary?: Uint8Array) {
    if (keys.length === 0 && !primary) throw new Error('keyring: needs at least one key');
    for (const k of keys) this.install(k);
    if (primary) {
      this.install(primary);
      this.use(primary);
    }
  }

  /** Parse a base64 key as operators pass it on a command line. */
  static parseKey(b64: string): Buffer {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new Error('keyring: key is not base64');
    return check(Buffer.from(b64, 'base64'), 'key');
  }

  install(key: Uint8Array): void {
    const k = check(key, 'key to install');
    if (!this.keys.some((x) => x.equals(k))) this.keys.push(k);
  }

  /** Make an installed key the primary (the one that encrypts). */
  use(key: Uint8Array): void {
    const k = check(key, 'key to use');
    const i = this.keys.findIndex((x) => x.equals(k));
    if (i < 0) throw new Error('keyring: cannot use a key that is not installed; install it first');
    const [found] = this.keys.splice(i, 1);
    this.keys.unshift(found as Buffer);
  }

  remove(key: Uint8Array): void {
    const k = check(key, 'key to remove');
    const i = this.keys.findIndex((x) => x.equals(k));
    if (i < 0) throw new Error('keyring: key to remove is not installed');
    if (i === 0) throw new Error('keyring: cannot remove the primary key; use another key first');
    this.keys.splice(i, 1);
  }

  primary(): Buffer {
    return this.keys[0] as Buffer;
  }

  /** All keys, primary first (copies). */
  getKeys(): Buffer[] {
    return this.keys.map((k) => Buffer.from(k));
  }
}
