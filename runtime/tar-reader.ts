// A streaming reader for tar archives (USTAR, PAX extended headers, GNU long names), the
// format of OCI image layers and of `docker save` / OCI archives. Written here rather than
// taken from a library so that what reaches the file system is exactly what we checked.

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarEntry {
  /** Path as recorded (PAX `path` wins over the header), not yet normalised. */
  name: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Record<string, string>;
}

/** Pulls exact byte counts out of an async stream of chunks. */
class ByteSource {
  private chunks: Buffer[] = [];
  private have = 0;
  private done = false;
  constructor(private readonly it: AsyncIterator<Buffer | Uint8Array | string>) {}

  private async fill(n: number): Promise<boolean> {
    while (this.have < n && !this.done) {
      const r = await this.it.next();
      if (r.done) { this.done = true; break; }
      const b = typeof r.value === 'string' ? Buffer.from(r.value) : Buffer.from(r.value);
      if (b.length) { this.chunks.push(b); this.have += b.length; }
    }
    return this.have >= n;
  }

  /** Exactly n bytes, or null at a clean end of stream. Throws on a truncated stream. */
  async read(n: number): Promise<Buffer | null> {
    if (!(await this.fill(n))) {
      if (this.have === 0) return null;
      throw new Error(`tar stream truncated: wanted ${n} bytes, only ${this.have} left`);
    }
    return this.take(n);
  }

  /** Up to n bytes (at least 1) for streaming file bodies. */
  async readSome(n: number): Promise<Buffer> {
    if (this.have === 0 && !(await this.fill(1))) throw new Error('tar stream truncated inside a file body');
    return this.take(Math.min(n, this.have));
  }

  private take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift(); else this.chunks[0] = c.subarray(k);
    }
    this.have -= n;
    return out;
  }
}

function cstr(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return (z < 0 ? s : s.subarray(0, z)).toString('utf8');
}

function num(b: Buffer, off: number, len: number, field: string): number {
  const s = b.subarray(off, off + len);
  if (s[0]! & 0x80) {
    // GNU base-256: big-endian two's complement with the top bit as a marker.
    let v = 0;
    for (let i = 1; i < s.length; i++) v = v * 256 + s[i]!;
    if (s[0]! & 0x40) throw new Error(`tar header field ${field} is negative`);
    return v + (s[0]! & 0x3f) * 256 ** (s.length - 1);
  }
  const t = s.toString('latin1').replace(/\0.*$/s, '').trim();
  if (t === '') return 0;
  if (!/^[0-7]+$/.test(t)) throw new Error(`tar header field ${field} is not octal: ${JSON.stringify(t)}`);
  return parseInt(t, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = num(h, 148, 8, 'chksum');
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === stored;
}

/** Parses PAX records "LEN key=value\n". */
function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp < 0) throw new Error('malformed PAX header: no length');
    const len = parseInt(data.subarray(off, sp).toString('latin1'), 10);
    if (!Number.isFinite(len) || len <= 0 || off + len > data.length) throw new Error('malformed PAX header: bad record length');
    const rec = data.subarray(sp + 1, off + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq < 0) throw new Error('malformed PAX header: record without "="');
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    off += len;
  }
  return out;
}

const TYPES: Record<string, EntryType> = {
  '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo',
};

export interface TarBody {
  /** Streams the entry's content in chunks; must be fully consumed or skipped by the caller. */
  chunks(): AsyncGenerator<Buffer>;
}

/** Upper bound for one PAX / GNU long-name header (and for all global PAX records together). */
export const MAX_META_HEADER = 1 << 20;
const META_NAME: Record<string, string> = { x: 'PAX extended', g: 'PAX global', L: 'GNU long-name', K: 'GNU long-link' };

/**
 * Iterates the entries of a tar stream. For each entry the caller may consume its body through
 * `body.chunks()`; whatever it leaves unread is skipped before the next entry.
 */
export async function* readTar(source: AsyncIterable<Buffer | Uint8Array | string>): AsyncGenerator<{ entry: TarEntry; body: TarBody }> {
  const src = new ByteSource(source[Symbol.asyncIterator]());
  let globalPax: Record<string, string> = {};
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const h = await src.read(512);
    if (h === null) return; // archive without end blocks
    if (h.every((x) => x === 0)) return; // end-of-archive marker
    if (!checksumOk(h)) throw new Error('tar header checksum mismatch: the archive is corrupt or not a tar file');
    const flag = String.fromCharCode(h[156]!);
    const size = num(h, 124, 12, 'size');
    const padded = Math.ceil(size / 512) * 512;
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      // These are held in memory whole, so their size is bounded (real ones are a few KiB).
      if (size > MAX_META_HEADER) throw new Error(`tar ${META_NAME[flag]} header of ${size} bytes is over the ${MAX_META_HEADER} byte limit: the archive is corrupt or hostile`);
      const data = (await src.read(padded)) ?? Buffer.alloc(0);
      const content = data.subarray(0, size);
      if (flag === 'x') pax = parsePax(content);
      else if (flag === 'g') {
        globalPax = { ...globalPax, ...parsePax(content) };
        const total = Object.entries(globalPax).reduce((n, [k, v]) => n + k.length + v.length, 0);
        if (total > MAX_META_HEADER) throw new Error(`tar global PAX headers add up to over ${MAX_META_HEADER} bytes: the archive is corrupt or hostile`);
      }
      else if (flag === 'L') longName = cstr(content, 0, content.length);
      else longLink = cstr(content, 0, content.length);
      continue;
    }
    const type = TYPES[flag];
    if (!type) throw new Error(`tar entry type ${JSON.stringify(flag)} is not supported`);
    const magic = h.subarray(257, 263).toString('latin1');
    const prefix = magic.startsWith('ustar') ? cstr(h, 345, 155) : '';
    const p = { ...globalPax, ...pax };
    let name = longName ?? (prefix ? prefix + '/' + cstr(h, 0, 100) : cstr(h, 0, 100));
    if (p['path'] !== undefined) name = p['path'];
    let linkname = longLink ?? cstr(h, 157, 100);
    if (p['linkpath'] !== undefined) linkname = p['linkpath'];
    const xattrs: Record<string, string> = {};
    for (const [k, v] of Object.entries(p)) if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice(13)] = v;
    const entrySize = p['size'] !== undefined ? Number(p['size']) : size;
    const entry: TarEntry = {
      name,
      type: type === 'file' && name.endsWith('/') ? 'dir' : type,
      mode: num(h, 100, 8, 'mode') & 0o7777,
      uid: p['uid'] !== undefined ? Number(p['uid']) : num(h, 108, 8, 'uid'),
      gid: p['gid'] !== undefined ? Number(p['gid']) : num(h, 116, 8, 'gid'),
      size: type === 'file' ? entrySize : 0,
      mtime: p['mtime'] !== undefined ? Number(p['mtime']) : num(h, 136, 12, 'mtime'),
      linkname,
      devmajor: num(h, 329, 8, 'devmajor'),
      devminor: num(h, 337, 8, 'devminor'),
      xattrs,
    };
    pax = {};
    longName = undefined;
    longLink = undefined;
    // Hard links and others may still carry a size in broken archives: honour the header size.
    let remaining = type === 'file' ? entrySize : size;
    const total = Math.ceil(remaining / 512) * 512;
    let consumed = 0;
    const body: TarBody = {
      async *chunks() {
        while (remaining > 0) {
          const c = await src.readSome(Math.min(remaining, 1 << 20));
          remaining -= c.length;
          consumed += c.length;
          yield c;
        }
      },
    };
    yield { entry, body };
    // Skip what the caller left, plus padding.
    let skip = total - consumed;
    while (skip > 0) {
      const c = await src.readSome(Math.min(skip, 1 << 20));
      skip -= c.length;
    }
  }
}
