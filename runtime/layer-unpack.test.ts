import t from 'tap';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { unpackLayer, UnsafeLayerError } from './layer-unpack.js';
import { readTar } from './tar-reader.js';
import { tarBuffer, type WriteEntry } from './testing/tar-writer.js';
import { busyboxLayers } from './testing/test-image.js';

function tmp(t: Tap): string {
  const d = mkdtempSync(join(tmpdir(), `shoal-unpack-${process.pid}-`));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}
type Tap = { teardown(fn: () => void): void };

async function* once(b: Buffer) { yield b; }
/** Splits into odd-sized chunks so header/body boundaries fall mid-chunk. */
async function* chunked(b: Buffer) { for (let i = 0; i < b.length; i += 777) yield b.subarray(i, i + 777); }

t.test('reads USTAR, PAX long names and bodies across chunk boundaries', async (t) => {
  const long = 'x/'.repeat(80) + 'file';
  const buf = tarBuffer([{ name: 'a.txt', data: 'hello' }, { name: long, data: 'deep' }, { name: 'l', type: 'symlink', linkname: 'y'.repeat(150) }]);
  const seen: string[] = [];
  for await (const { entry, body } of readTar(chunked(buf))) {
    let s = '';
    for await (const c of body.chunks()) s += c.toString();
    seen.push(`${entry.type}:${entry.name}:${s}:${entry.linkname.length}`);
  }
  t.same(seen, ['file:a.txt:hello:0', `file:${long}:deep:0`, 'symlink:l::150']);
});

t.test('oversized PAX and GNU long-name headers are refused before they are buffered', async (t) => {
  for (const flag of ['x', 'g', 'L', 'K']) {
    // A valid header that claims a 64 MiB metadata body, then an endless supply of zeros.
    const h = Buffer.from(tarBuffer([{ name: 'a', data: '' }]).subarray(0, 512));
    h[156] = flag.charCodeAt(0);
    h.write((64 * 1024 * 1024).toString(8).padStart(11, '0') + '\0', 124, 12, 'latin1');
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
    let pulled = 0;
    async function* endless() { yield h; for (;;) { pulled += 65536; yield Buffer.alloc(65536); } }
    await t.rejects(async () => { for await (const _ of readTar(endless())) { /* consume */ } }, /over the 1048576 byte limit/, `type ${flag}: refused with a clear error`);
    t.ok(pulled <= 65536, `type ${flag}: refused before its body was read (${pulled} bytes pulled)`);
  }
});

t.test('a corrupt header or a truncated archive is an error', async (t) => {
  const buf = tarBuffer([{ name: 'a.txt', data: 'hello world' }]);
  const bad = Buffer.from(buf); bad[10] = 0x41;
  await t.rejects(async () => { for await (const _ of readTar(once(bad))) { /* consume */ } }, /checksum/);
  const cut = buf.subarray(0, 600);
  await t.rejects(async () => {
    for await (const { body } of readTar(once(cut))) for await (const _ of body.chunks()) { /* consume */ }
  }, /truncated/);
});

t.test('unpacks modes, ownership, symlinks, hard links, whiteouts and opaque dirs', async (t) => {
  const root = tmp(t);
  const [l1, l2] = busyboxLayers();
  const d1 = join(root, 'l1');
  const d2 = join(root, 'l2');
  execFileSync('mkdir', [d1, d2]);
  const s1 = await unpackLayer(chunked(tarBuffer(l1!)), d1);
  t.ok(s1.entries > 30);
  t.equal(statSync(join(d1, 'bin/busybox')).mode & 0o7777, 0o755);
  t.equal(statSync(join(d1, 'tmp')).mode & 0o7777, 0o1777, 'sticky bit kept');
  t.equal(statSync(join(d1, 'data')).mode & 0o7777, 0o750);
  t.equal(statSync(join(d1, 'home/app/secret')).uid, 1000);
  t.equal(statSync(join(d1, 'home/app/secret')).gid, 1000);
  t.equal(statSync(join(d1, 'home/app/secret')).mode & 0o777, 0o600);
  t.equal(readlinkSync(join(d1, 'bin/sh')), 'busybox');
  t.equal(statSync(join(d1, 'bin/hardbox')).ino, statSync(join(d1, 'bin/busybox')).ino, 'hard link shares the inode');
  const s2 = await unpackLayer(once(tarBuffer(l2!)), d2);
  t.equal(s2.whiteouts, 1);
  t.equal(s2.opaqueDirs, 1);
  const wh = lstatSync(join(d2, 'etc/removed.txt'));
  t.ok(wh.isCharacterDevice(), 'whiteout is a character device');
  t.equal(wh.rdev, 0, 'whiteout device is 0/0');
  t.notOk(existsSync(join(d2, 'etc/.wh.removed.txt')));
  t.match(execFileSync('getfattr', ['-n', 'trusted.overlay.opaque', '--only-values', join(d2, 'data')]).toString(), /^y/);
  t.equal(readFileSync(join(d2, 'data/c'), 'utf8'), 'c from layer 2\n');
  t.equal(readlinkSync(join(d2, 'usr/bin/env')), '/bin/busybox', 'absolute symlinks are stored as they are');
});

const hostile: [string, WriteEntry[]][] = [
  ['a ../ entry', [{ name: '../escape.txt', data: 'x' }]],
  ['a nested ../ entry', [{ name: 'a/', type: 'dir' }, { name: 'a/../../escape.txt', data: 'x' }]],
  ['a write through an absolute symlink', [{ name: 'evil', type: 'symlink', linkname: '/tmp' }, { name: 'evil/x.txt', data: 'x' }]],
  ['a write through a relative symlink', [{ name: 'evil', type: 'symlink', linkname: '../../..' }, { name: 'evil/x.txt', data: 'x' }]],
  ['a hard link to a path outside', [{ name: 'h', type: 'hardlink', linkname: '../../etc/passwd' }]],
  ['a hard link through a symlink', [{ name: 'evil', type: 'symlink', linkname: '/etc' }, { name: 'h', type: 'hardlink', linkname: 'evil/passwd' }]],
  ['a whiteout with ..', [{ name: '../.wh.passwd' }]],
];
for (const [what, entries] of hostile) {
  t.test(`refuses ${what}`, async (t) => {
    const root = tmp(t);
    const target = join(root, 'layer');
    execFileSync('mkdir', [target]);
    const err = await unpackLayer(once(tarBuffer(entries)), target).then(() => null, (e: Error) => e);
    t.ok(err instanceof UnsafeLayerError, `refused: ${err?.message}`);
    t.notOk(existsSync(join(root, 'escape.txt')), 'nothing written outside');
    t.notOk(existsSync('/tmp/x.txt'));
  });
}

t.test('deferred directory metadata, xattrs and devices never follow a symlink that replaced their path', async (t) => {
  const root = tmp(t);
  const target = join(root, 'layer');
  execFileSync('mkdir', [target]);
  const outside = join(root, 'outside');
  execFileSync('mkdir', ['-m', '0700', outside]);
  execFileSync('sh', ['-c', `echo secret > ${outside}/shadow && chmod 600 ${outside}/shadow`]);
  const before = { dir: statSync(outside).mode, file: statSync(join(outside, 'shadow')).mode };
  await unpackLayer(once(tarBuffer([
    // x/ is recorded for mode 0777 at the end, then replaced by a symlink to a host file.
    { name: 'x/', type: 'dir', mode: 0o777 },
    { name: 'x', type: 'symlink', linkname: join(outside, 'shadow') },
    // a/ and a/b/ likewise, then a becomes a symlink to a host directory.
    { name: 'a/', type: 'dir', mode: 0o777 },
    { name: 'a/b/', type: 'dir', mode: 0o777 },
    { name: 'a/b/.wh..wh..opq' },
    { name: 'a', type: 'symlink', linkname: outside },
  ])), target);
  t.ok(lstatSync(join(target, 'x')).isSymbolicLink(), 'the later entry won: x is a symlink');
  t.equal(statSync(join(outside, 'shadow')).mode, before.file, 'the host file kept its mode');
  t.equal(statSync(outside).mode, before.dir, 'the host directory kept its mode');
  t.throws(() => execFileSync('getfattr', ['-n', 'trusted.overlay.opaque', outside], { stdio: 'pipe' }), 'no opaque xattr on the host directory');
});
