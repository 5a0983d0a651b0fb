// The benchmark image as Docker must receive it. The lab's image (lab/image.ts, built from the
// runtime's busybox test layers) has a hardlink entry, bin/hardbox -> bin/busybox, whose tar header
// says mode 0644 while bin/busybox is 0755. Docker's unpacker applies a hardlink header's mode to
// the inode it shares with its target, so under Docker /bin/busybox became 0644 and no task could
// start ("exec: sleep: executable file not found"); shoal's runtime keeps the target's mode. GNU
// tar writes a hardlink's header with the file's own mode, so here every hardlink header gets its
// target's mode. Nothing else changes: the files both systems unpack are the same, only this
// header field and so the layer's digests differ. (If the test image's hardlink header carries
// 0755 one day, this returns the image unchanged.)
import { gunzipSync, gzipSync } from 'node:zlib';
import { blob, type Blob, type BuiltImage } from '../runtime/testing/test-image.js';

const BLOCK = 512;

function field(h: Buffer, off: number, len: number): string {
  const s = h.subarray(off, off + len).toString('latin1');
  const z = s.indexOf('\0');
  return z < 0 ? s : s.slice(0, z);
}

function octalField(h: Buffer, off: number, len: number): number {
  return parseInt(field(h, off, len).trim() || '0', 8);
}

function setChecksum(h: Buffer): void {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
}

/** PAX records (`LEN key=value\n`) of an extended header's data. */
function paxRecords(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp < 0) break;
    const len = Number(data.subarray(i, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= 0) break;
    const rec = data.subarray(sp + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

const norm = (p: string): string => p.replace(/^\.\//, '').replace(/^\/+/, '');

/** A copy of an uncompressed layer tar with each hardlink header's mode set to its target's;
 * `changed` is false when there was nothing to change. */
export function fixHardlinkModes(tar: Buffer): { tar: Buffer; changed: boolean } {
  const out = Buffer.from(tar);
  const modes = new Map<string, number>();
  let changed = false;
  let pax = new Map<string, string>();
  for (let off = 0; off + BLOCK <= out.length;) {
    const h = out.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) break;
    const size = octalField(h, 124, 12);
    const type = String.fromCharCode(h[156]!) || '0';
    const dataLen = Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x') {
      pax = paxRecords(out.subarray(off + BLOCK, off + BLOCK + size));
    } else if (type !== 'g') {
      const prefix = field(h, 345, 155);
      const name = norm(pax.get('path') ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100)));
      const mode = octalField(h, 100, 8);
      if (type === '0' || type === '\0') modes.set(name, mode);
      if (type === '1') {
        const target = modes.get(norm(pax.get('linkpath') ?? field(h, 157, 100)));
        if (target !== undefined && target !== mode) {
          h.write(target.toString(8).padStart(7, '0') + '\0', 100, 8, 'latin1');
          setChecksum(h);
          changed = true;
        }
      }
      pax = new Map();
    }
    off += BLOCK + dataLen;
  }
  return { tar: out, changed };
}

/** `img` with every layer's hardlink modes fixed (config and manifest rebuilt to match). */
export function dockerImage(img: BuiltImage): BuiltImage {
  const config = JSON.parse(img.config.data.toString('utf8')) as { rootfs: { diff_ids: string[] } };
  let any = false;
  const layers: Blob[] = img.layers.map((l, i) => {
    const gz = l.data[0] === 0x1f && l.data[1] === 0x8b;
    const { tar, changed } = fixHardlinkModes(gz ? gunzipSync(l.data) : l.data);
    if (!changed) return l;
    any = true;
    config.rootfs.diff_ids[i] = blob(tar, l.mediaType).digest;
    return blob(gz ? gzipSync(tar) : tar, l.mediaType);
  });
  if (!any) return img;
  const c = blob(Buffer.from(JSON.stringify(config)), img.config.mediaType);
  const m = JSON.parse(img.manifest.data.toString('utf8')) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
  m.config.digest = c.digest;
  m.config.size = c.data.length;
  m.layers.forEach((d, i) => {
    d.digest = layers[i]!.digest;
    d.size = layers[i]!.data.length;
  });
  return { config: c, layers, manifest: blob(Buffer.from(JSON.stringify(m)), img.manifest.mediaType) };
}

