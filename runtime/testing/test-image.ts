// Builds the small test images the runtime tests push to a real registry: a busybox-static
// image in three layers (the second one whites out a file and makes a directory opaque), its
// linux/amd64 + linux/arm64 index, and hostile images whose layers try to escape the root.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { sha256Digest } from '../content-store.js';
import { MT } from '../registry-client.js';
import { tarBuffer, type WriteEntry } from './tar-writer.js';

/** An image as an OCI archive (what `PullImage oci-archive:PATH` loads), tagged `name`. */
export function ociArchive(img: BuiltImage, name: string): Buffer {
  return tarBuffer([
    { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' },
    { name: 'index.json', data: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.data.length, annotations: { 'io.containerd.image.name': name } }] }) },
    ...[img.manifest, img.config, ...img.layers].map((b) => ({ name: `blobs/sha256/${b.digest.slice(7)}`, data: b.data })),
  ]);
}

export interface Blob { digest: string; data: Buffer; mediaType: string }
export interface BuiltImage {
  config: Blob;
  layers: Blob[];
  manifest: Blob;
}

const APPLETS = ['sh', 'ash', 'cat', 'echo', 'ls', 'sleep', 'head', 'tail', 'dd', 'awk', 'seq', 'wc', 'hostname', 'id', 'env', 'pwd',
  'mkdir', 'rm', 'touch', 'test', 'true', 'false', 'ps', 'kill', 'yes', 'grep', 'stat', 'readlink', 'printf', 'sync', 'cut', 'tr', 'mount', 'df',
  'nc', 'wget', 'ip', 'httpd', 'stty', 'tty', 'umount', 'mkfifo', 'sed', 'swapoff', 'setsid', 'nsenter'];

export function busyboxLayers(): WriteEntry[][] {
  const busybox = readFileSync('/bin/busybox');
  const l1: WriteEntry[] = [
    { name: 'bin/', type: 'dir' },
    { name: 'bin/busybox', data: busybox, mode: 0o755 },
    ...APPLETS.map((a): WriteEntry => ({ name: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
    { name: 'bin/hardbox', type: 'hardlink', linkname: 'bin/busybox', mode: 0o755 }, // a hardlink header carries the file's mode (containerd applies it)
    { name: 'etc/', type: 'dir' },
    { name: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' },
    { name: 'etc/group', data: 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n' },
    { name: 'etc/removed.txt', data: 'this file is whited out by layer 2\n' },
    { name: 'data/', type: 'dir', mode: 0o750, uid: 1000, gid: 1000 },
    { name: 'data/a', data: 'a from layer 1\n' },
    { name: 'data/b', data: 'b from layer 1\n' },
    { name: 'tmp/', type: 'dir', mode: 0o1777 },
    { name: 'home/app/', type: 'dir', uid: 1000, gid: 1000 },
    { name: 'home/app/secret', data: 'owned by app\n', mode: 0o600, uid: 1000, gid: 1000 },
    { name: 'root/', type: 'dir', mode: 0o700 },
    { name: 'proc/', type: 'dir' }, { name: 'dev/', type: 'dir' }, { name: 'sys/', type: 'dir' },
  ];
  const l2: WriteEntry[] = [
    { name: 'etc/.wh.removed.txt' },
    { name: 'data/.wh..wh..opq' },
    { name: 'data/c', data: 'c from layer 2\n' },
    { name: 'layer2.txt', data: 'hello from layer 2\n' },
    { name: 'usr/bin/', type: 'dir' },
    { name: 'usr/bin/env', type: 'symlink', linkname: '/bin/busybox' },
  ];
  const l3: WriteEntry[] = [
    { name: 'app/', type: 'dir' },
    { name: 'app/greeting', data: 'hello from layer 3\n' },
    { name: 'app/long/' + 'd'.repeat(120) + '/file', data: 'long path via PAX\n' },
  ];
  return [l1, l2, l3];
}

export function blob(data: Buffer, mediaType: string): Blob {
  return { digest: sha256Digest(data), data, mediaType };
}

/** Assembles an OCI image from layer entry lists (layer i gzipped unless i is in `plain`). */
export function buildImage(layers: WriteEntry[][], opts: { arch?: string; cmd?: string[]; plain?: number[]; env?: string[] } = {}): BuiltImage {
  const tars = layers.map((l) => tarBuffer(l));
  const layerBlobs = tars.map((t, i) => (opts.plain ?? []).includes(i) ? blob(t, MT.ociLayer) : blob(gzipSync(t), MT.ociLayerGzip));
  const config = blob(Buffer.from(JSON.stringify({
    architecture: opts.arch ?? 'amd64',
    os: 'linux',
    config: { Env: opts.env ?? ['PATH=/bin:/usr/bin', 'IMAGE_VAR=from-image'], Cmd: opts.cmd ?? ['sh'], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: tars.map((t) => sha256Digest(t)) },
  })), MT.ociConfig);
  const manifest = blob(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: { mediaType: MT.ociConfig, digest: config.digest, size: config.data.length },
    layers: layerBlobs.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.data.length })),
  })), MT.ociManifest);
  return { config, layers: layerBlobs, manifest };
}

export function buildIndex(entries: { image: BuiltImage; arch: string }[]): Blob {
  return blob(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MT.ociIndex,
    manifests: entries.map((e) => ({ mediaType: MT.ociManifest, digest: e.image.manifest.digest, size: e.image.manifest.data.length, platform: { os: 'linux', architecture: e.arch } })),
  })), MT.ociIndex);
}

/** The busybox test image (3 layers; layer 3 uncompressed). */
export function busyboxImage(): BuiltImage {
  return buildImage(busyboxLayers(), { plain: [2] });
}

/** Hostile images: each must be refused when pulled. */
export function hostileImages(): Record<string, BuiltImage> {
  return {
    dotdot: buildImage([[{ name: 'ok.txt', data: 'fine' }, { name: '../escape.txt', data: 'escaped!' }]]),
    nested: buildImage([[{ name: 'a/', type: 'dir' }, { name: 'a/../../escape2.txt', data: 'escaped!' }]]),
    symlink: buildImage([[{ name: 'evil', type: 'symlink', linkname: '/tmp' }, { name: 'evil/shoal-escape.txt', data: 'escaped!' }]]),
  };
}
