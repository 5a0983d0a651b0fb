// Content-addressed blob store: blobs/sha256/<hex>. A blob is written to an ingest file while
// its digest is computed, fsynced, checked against the expected digest and only then renamed
// into place, so a blob under its name is always complete and correct. Concurrent writes of
// the same digest are done once.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function checkDigest(d: string): string {
  if (!DIGEST_RE.test(d)) throw new Error(`invalid digest ${JSON.stringify(d)}: expected sha256:<64 lowercase hex>`);
  return d;
}

export function sha256Digest(b: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}

/** Writes a file atomically and durably (tmp + fsync + rename + fsync of the directory). */
export async function writeFileDurable(path: string, data: Buffer | string): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  const fh = await fsp.open(tmp, 'w', 0o600);
  try { await fh.writeFile(data); await fh.sync(); } finally { await fh.close(); }
  await fsp.rename(tmp, path);
  await fsyncDir(join(path, '..'));
}

export class ContentStore {
  private readonly inflight = new Map<string, Promise<void>>();
  constructor(readonly root: string) {}

  async init(): Promise<void> {
    await fsp.mkdir(join(this.root, 'blobs', 'sha256'), { recursive: true });
    await fsp.mkdir(join(this.root, 'ingest'), { recursive: true });
    // Leftovers of interrupted writes are never valid blobs.
    for (const f of await fsp.readdir(join(this.root, 'ingest'))) await fsp.rm(join(this.root, 'ingest', f), { force: true });
  }

  path(digest: string): string {
    checkDigest(digest);
    return join(this.root, 'blobs', 'sha256', digest.slice(7));
  }

  async has(digest: string): Promise<boolean> {
    try { await fsp.access(this.path(digest)); return true; } catch { return false; }
  }

  async size(digest: string): Promise<number> {
    return (await fsp.stat(this.path(digest))).size;
  }

  async read(digest: string): Promise<Buffer> {
    return fsp.readFile(this.path(digest));
  }

  stream(digest: string): NodeJS.ReadableStream {
    return createReadStream(this.path(digest));
  }

  /**
   * Stores a blob that must hash to `digest`. `open` produces the bytes and is called only if
   * the blob is absent and no other write of it is in flight.
   */
  async ingest(digest: string, open: () => Promise<AsyncIterable<Uint8Array>>, expectedSize?: number): Promise<void> {
    checkDigest(digest);
    if (await this.has(digest)) return;
    const running = this.inflight.get(digest);
    if (running) return running;
    const p = this.doIngest(digest, open, expectedSize).finally(() => this.inflight.delete(digest));
    this.inflight.set(digest, p);
    return p;
  }

  /** Stores bytes under their own digest and returns it. */
  async put(data: Buffer): Promise<string> {
    const d = sha256Digest(data);
    await this.ingest(d, async () => (async function* () { yield data; })());
    return d;
  }

  private async doIngest(digest: string, open: () => Promise<AsyncIterable<Uint8Array>>, expectedSize?: number): Promise<void> {
    const tmp = join(this.root, 'ingest', `${digest.slice(7, 19)}-${randomBytes(6).toString('hex')}`);
    const fh = await fsp.open(tmp, 'wx', 0o644);
    const hash = createHash('sha256');
    let n = 0;
    try {
      for await (const chunk of await open()) {
        hash.update(chunk);
        n += chunk.length;
        if (expectedSize !== undefined && n > expectedSize) throw new Error(`blob ${digest} is larger than the ${expectedSize} bytes its descriptor announces`);
        await fh.write(chunk);
      }
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => {});
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    const got = 'sha256:' + hash.digest('hex');
    if (got !== digest || (expectedSize !== undefined && n !== expectedSize)) {
      await fsp.rm(tmp, { force: true });
      throw new Error(got !== digest
        ? `blob digest mismatch: expected ${digest}, received content hashes to ${got}; refusing it`
        : `blob ${digest} has ${n} bytes, its descriptor says ${expectedSize}; refusing it`);
    }
    await fsp.rename(tmp, this.path(digest));
    await fsyncDir(join(this.root, 'blobs', 'sha256'));
  }

  async remove(digest: string): Promise<void> {
    await fsp.rm(this.path(digest), { force: true });
  }

  async list(): Promise<string[]> {
    return (await fsp.readdir(join(this.root, 'blobs', 'sha256'))).filter((f) => /^[a-f0-9]{64}$/.test(f)).map((f) => 'sha256:' + f);
  }
}
