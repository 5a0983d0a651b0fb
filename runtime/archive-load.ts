// Loads images from `docker save` tarballs (manifest.json + config + layer tars) and from OCI
// image-layout archives (oci-layout + index.json + blobs/). The archive is first extracted,
// file by file and without following any link, into a private temp dir; every blob then goes
// through the content store, which checks its digest.
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp, constants as fsc, existsSync } from 'node:fs';
import { join, posix } from 'node:path';
import { createGunzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { sha256Digest } from './content-store.js';
import { formatRef, parseImageRef } from './image-ref.js';
import type { ImageRecord, ImageStore } from './image-store.js';
import { safeComponents } from './layer-unpack.js';
import { MT, selectPlatform, type Descriptor, type Index, type Manifest } from './registry-client.js';
import { readTar } from './tar-reader.js';

const hexName = (n: string) => n.replace(/[^A-Za-z0-9._-]/g, '_');

/** Extracts regular files (flattened names) and remembers symlinks as aliases. */
async function extract(path: string, dir: string): Promise<{ files: Map<string, string>; links: Map<string, string> }> {
  const files = new Map<string, string>();
  const links = new Map<string, string>();
  const head = Buffer.alloc(2);
  const fh0 = await fsp.open(path, 'r');
  await fh0.read(head, 0, 2, 0);
  await fh0.close();
  const raw: Readable = createReadStream(path);
  const src: Readable = head[0] === 0x1f && head[1] === 0x8b ? raw.pipe(createGunzip()) : raw;
  let n = 0;
  for await (const { entry, body } of readTar(src)) {
    const name = safeComponents(entry.name).join('/');
    if (entry.type === 'symlink' || entry.type === 'hardlink') {
      const target = entry.type === 'symlink' ? posix.normalize(posix.join(posix.dirname(name), entry.linkname)) : safeComponents(entry.linkname).join('/');
      links.set(name, target);
      continue;
    }
    if (entry.type !== 'file') continue;
    const out = join(dir, `${n++}-${hexName(name).slice(-80)}`);
    const fh = await fsp.open(out, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    try { for await (const c of body.chunks()) await fh.write(c); } finally { await fh.close(); }
    files.set(name, out);
  }
  return { files, links };
}

function lookup(files: Map<string, string>, links: Map<string, string>, name: string): string {
  let n = posix.normalize(name).replace(/^\.\//, '');
  for (let i = 0; i < 16 && !files.has(n) && links.has(n); i++) n = links.get(n)!;
  const f = files.get(n);
  if (!f) throw new Error(`archive is missing ${JSON.stringify(name)}`);
  return f;
}

async function ingestFile(store: ImageStore, file: string, digest?: string): Promise<{ digest: string; size: number }> {
  const d = digest ?? sha256Digest(await fsp.readFile(file));
  await store.content.ingest(d, async () => createReadStream(file) as unknown as AsyncIterable<Uint8Array>);
  return { digest: d, size: (await fsp.stat(file)).size };
}

/** Loads every image of a docker-save or OCI-layout archive; returns them. */
export async function loadArchive(store: ImageStore, archive: string): Promise<ImageRecord[]> {
  if (!existsSync(archive)) throw new Error(`image archive ${archive} does not exist`);
  const tmp = join(store.root, `archive-${randomBytes(6).toString('hex')}`);
  await fsp.mkdir(tmp, { mode: 0o700 });
  try {
    const { files, links } = await extract(archive, tmp);
    if (files.has('index.json') && (files.has('oci-layout') || !files.has('manifest.json'))) return await loadOci(store, files, links, archive);
    if (files.has('manifest.json')) return await loadDocker(store, files, links, archive);
    throw new Error(`${archive} is neither a docker-save archive (manifest.json) nor an OCI image layout (index.json)`);
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

async function loadDocker(store: ImageStore, files: Map<string, string>, links: Map<string, string>, archive: string): Promise<ImageRecord[]> {
  const entries = JSON.parse(await fsp.readFile(files.get('manifest.json')!, 'utf8')) as { Config: string; RepoTags?: string[] | null; Layers: string[] }[];
  if (!Array.isArray(entries) || entries.length === 0) throw new Error(`${archive}: manifest.json lists no images`);
  const out: ImageRecord[] = [];
  for (const e of entries) {
    const config = await ingestFile(store, lookup(files, links, e.Config));
    const layers: Descriptor[] = [];
    for (const l of e.Layers) {
      const f = lookup(files, links, l);
      const info = await ingestFile(store, f);
      const head = Buffer.alloc(2);
      const fh = await fsp.open(f, 'r'); await fh.read(head, 0, 2, 0); await fh.close();
      const gz = head[0] === 0x1f && head[1] === 0x8b;
      layers.push({ mediaType: gz ? MT.dockerLayerGzip : 'application/vnd.docker.image.rootfs.diff.tar', ...info });
    }
    const manifest: Manifest = { schemaVersion: 2, mediaType: MT.dockerManifest, config: { mediaType: MT.dockerConfig, ...config }, layers };
    const mbytes = Buffer.from(JSON.stringify(manifest));
    const mdigest = await store.content.put(mbytes);
    const tags = (e.RepoTags ?? []).map((t) => formatRef(parseImageRef(t)));
    out.push(await store.register(manifest, mdigest, tags, [], `docker-archive:${archive}`));
  }
  return out;
}

async function loadOci(store: ImageStore, files: Map<string, string>, links: Map<string, string>, archive: string): Promise<ImageRecord[]> {
  const blobFile = (d: string) => lookup(files, links, `blobs/${d.replace(':', '/')}`);
  const readJson = async <T>(d: string): Promise<T> => {
    const f = blobFile(d);
    await ingestFile(store, f, d);
    return JSON.parse(await fsp.readFile(f, 'utf8')) as T;
  };
  const index = JSON.parse(await fsp.readFile(files.get('index.json')!, 'utf8')) as Index;
  const out: ImageRecord[] = [];
  for (const top of index.manifests ?? []) {
    let desc = top;
    let m = await readJson<Manifest & Partial<Index>>(desc.digest);
    if (Array.isArray(m.manifests)) {
      const pick = selectPlatform(m.manifests) ?? (m.manifests.length === 1 ? m.manifests[0] : undefined);
      if (!pick) throw new Error(`${archive}: index ${desc.digest} has no linux/amd64 image`);
      desc = pick;
      m = await readJson<Manifest & Partial<Index>>(desc.digest);
    }
    await ingestFile(store, blobFile(m.config.digest), m.config.digest);
    for (const l of m.layers) await ingestFile(store, blobFile(l.digest), l.digest);
    const ann = (top as Descriptor & { annotations?: Record<string, string> }).annotations ?? {};
    const name = ann['io.containerd.image.name'] ?? ann['org.opencontainers.image.ref.name'];
    const tags: string[] = [];
    if (name) {
      // A bare ref.name is only a tag; without a repository we cannot name the image.
      if (name.includes('/') || name.includes(':')) tags.push(formatRef(parseImageRef(name)));
    }
    out.push(await store.register(m as Manifest, desc.digest, tags, [], `oci-archive:${archive}`));
  }
  if (out.length === 0) throw new Error(`${archive}: index.json lists no images`);
  return out;
}
