// The Swarm side's image fix-up: hardlink headers get their target's mode; nothing else changes.
import t from 'tap';
import { gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { labImage } from '../lab/image.js';
import { tarBuffer } from '../runtime/testing/tar-writer.js';
import { dockerImage, fixHardlinkModes } from './swarm-image.js';

/** name -> { type, mode, linkname } of every entry, and whether each header's checksum holds. */
function entries(tar: Buffer): Map<string, { type: string; mode: number; link: string; sumOk: boolean }> {
  const out = new Map<string, { type: string; mode: number; link: string; sumOk: boolean }>();
  for (let off = 0; off + 512 <= tar.length;) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const str = (o: number, l: number) => h.subarray(o, o + l).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(str(124, 12).trim() || '0', 8);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    out.set(str(0, 100), { type: String.fromCharCode(h[156]!), mode: parseInt(str(100, 8), 8), link: str(157, 100), sumOk: sum === parseInt(str(148, 8).trim(), 8) });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

t.test('a hardlink header gets its target\'s mode, with a valid checksum', async (t) => {
  const tar = tarBuffer([
    { name: 'bin/', type: 'dir' },
    { name: 'bin/tool', data: 'x', mode: 0o755 },
    { name: 'bin/alias', type: 'hardlink', linkname: 'bin/tool' },
    { name: 'etc/conf', data: 'y', mode: 0o600 },
  ]);
  t.equal(entries(tar).get('bin/alias')!.mode, 0o644, 'the writer gives a hardlink 0644 unless told');
  const { tar: fixed, changed } = fixHardlinkModes(tar);
  t.ok(changed);
  const e = entries(fixed);
  t.equal(e.get('bin/alias')!.mode, 0o755);
  t.ok([...e.values()].every((x) => x.sumOk), 'every header checksum is valid');
  t.equal(e.get('etc/conf')!.mode, 0o600, 'other entries keep their modes');
  t.equal(e.get('bin/tool')!.mode, 0o755);
  t.equal(fixed.length, tar.length);
});

t.test('a tar without such hardlinks is returned unchanged', async (t) => {
  const tar = tarBuffer([{ name: 'a', data: 'a', mode: 0o755 }, { name: 'b', type: 'hardlink', linkname: 'a', mode: 0o755 }]);
  const r = fixHardlinkModes(tar);
  t.notOk(r.changed);
  t.ok(r.tar.equals(tar));
});

t.test('the lab image for Docker: busybox stays executable, digests match the blobs', async (t) => {
  const orig = labImage();
  const img = dockerImage(orig);
  const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');
  const m = JSON.parse(img.manifest.data.toString()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
  t.equal(m.config.digest, sha(img.config.data));
  t.equal(m.layers.length, orig.layers.length);
  m.layers.forEach((l, i) => {
    t.equal(l.digest, sha(img.layers[i]!.data));
    t.equal(l.size, img.layers[i]!.data.length);
  });
  const cfg = JSON.parse(img.config.data.toString()) as { rootfs: { diff_ids: string[] }; config: unknown };
  const tars = img.layers.map((l) => (l.data[0] === 0x1f ? gunzipSync(l.data) : l.data));
  t.same(cfg.rootfs.diff_ids, tars.map(sha));
  t.same(cfg.config, (JSON.parse(orig.config.data.toString()) as { config: unknown }).config, 'same env, command, working dir');
  const l1 = entries(tars[0]!);
  t.equal(l1.get('bin/busybox')!.mode, 0o755);
  t.equal(l1.get('bin/hardbox')!.mode, 0o755);
  // Same entries, same contents, layer by layer: only hardlink modes may differ.
  const origTars = orig.layers.map((l) => (l.data[0] === 0x1f ? gunzipSync(l.data) : l.data));
  origTars.forEach((o, i) => {
    const a = entries(o);
    const b = entries(tars[i]!);
    t.same([...a.keys()], [...b.keys()], `layer ${i + 1}: same entries`);
    for (const [k, v] of a) if (v.type !== '1') t.equal(b.get(k)!.mode, v.mode, `layer ${i + 1}: ${k} keeps its mode`);
  });
});
