// Images known to this runtime: their manifests, configs and layers (blobs in the content
// store), each layer unpacked once into a snapshot directory named by its diff ID, which
// overlayfs stacks to build container roots. The list of images is one JSON file, fsynced.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { ContentStore, checkDigest, writeFileDurable } from './content-store.js';
import { formatRef, parseImageRef, refName, type ImageRef } from './image-ref.js';
import { unpackLayer } from './layer-unpack.js';
import type { Credentials, Manifest, RegistryClient } from './registry-client.js';

export interface ImageConfig {
  architecture?: string;
  os?: string;
  config?: {
    User?: string; Env?: string[]; Entrypoint?: string[] | null; Cmd?: string[] | null; WorkingDir?: string;
    Labels?: Record<string, string> | null; StopSignal?: string;
  };
  rootfs: { type: string; diff_ids: string[] };
}

export interface LayerRecord { digest: string; mediaType: string; size: number; diffId: string }

export interface ImageRecord {
  id: string; // the config digest, as docker and containerd use
  repoTags: string[];
  repoDigests: string[];
  manifestDigest: string;
  layers: LayerRecord[];
  size: number;
  config: ImageConfig;
  source?: string;
}

export class ImageInUseError extends Error {}

export class ImageStore {
  private images: ImageRecord[] = [];
  private readonly unpacking = new Map<string, Promise<void>>();
  private readonly pulling = new Map<string, Promise<ImageRecord>>();
  private saving: Promise<void> = Promise.resolve();
  readonly content: ContentStore;

  constructor(readonly root: string, private readonly registry: RegistryClient) {
    this.content = new ContentStore(join(root, 'content'));
  }

  private get indexFile(): string { return join(this.root, 'images.json'); }
  snapshotDir(diffId: string): string { return join(this.root, 'snapshots', checkDigest(diffId).slice(7)); }

  async init(): Promise<void> {
    await this.content.init();
    await fsp.mkdir(join(this.root, 'snapshots'), { recursive: true });
    if (existsSync(this.indexFile)) this.images = JSON.parse(await fsp.readFile(this.indexFile, 'utf8')) as ImageRecord[];
    // Half-unpacked snapshots from a crash are thrown away; they are redone on demand.
    for (const d of await fsp.readdir(join(this.root, 'snapshots'))) {
      if (d.startsWith('tmp-')) await fsp.rm(join(this.root, 'snapshots', d), { recursive: true, force: true });
    }
  }

  private save(): Promise<void> {
    const data = JSON.stringify(this.images);
    this.saving = this.saving.then(() => writeFileDurable(this.indexFile, data));
    return this.saving;
  }

  list(): ImageRecord[] { return [...this.images]; }

  /** Finds an image by id (full or ≥12-hex prefix), name:tag or name@digest. */
  find(spec: string): ImageRecord | undefined {
    const s = spec.trim();
    if (!s) return undefined;
    const hex = s.startsWith('sha256:') ? s.slice(7) : s;
    if (/^[a-f0-9]{12,64}$/.test(hex)) {
      const byId = this.images.filter((i) => i.id.slice(7).startsWith(hex));
      if (byId.length === 1) return byId[0];
    }
    let ref: ImageRef;
    try { ref = parseImageRef(s); } catch { return undefined; }
    if (ref.digest) {
      const want = `${refName(ref)}@${ref.digest}`;
      return this.images.find((i) => i.repoDigests.includes(want) || (i.manifestDigest === ref.digest && i.repoDigests.some((d) => d.startsWith(refName(ref) + '@'))));
    }
    const tag = formatRef(ref);
    return this.images.find((i) => i.repoTags.includes(tag));
  }

  /** Pulls an image from its registry; concurrent pulls of one reference share the work. */
  async pull(spec: string, creds?: Credentials): Promise<ImageRecord> {
    const ref = parseImageRef(spec);
    const key = formatRef(ref) + (ref.digest && ref.tag ? '@' + ref.digest : '');
    const running = this.pulling.get(key);
    if (running) return running;
    const p = this.doPull(ref, creds).finally(() => this.pulling.delete(key));
    this.pulling.set(key, p);
    return p;
  }

  private async doPull(ref: ImageRef, creds?: Credentials): Promise<ImageRecord> {
    const r = await this.registry.resolve(ref, creds);
    const m = r.manifest;
    await this.content.put(r.manifestBytes);
    await this.content.ingest(m.config.digest, () => this.registry.blob(ref, m.config.digest, creds), m.config.size);
    await Promise.all(m.layers.map((l) => this.content.ingest(l.digest, () => this.registry.blob(ref, l.digest, creds), l.size)));
    const tags = ref.tag ? [formatRef(ref)] : [];
    const digests = [`${refName(ref)}@${r.topDigest}`];
    return this.register(m, r.manifestDigest, tags, digests, formatRef(ref));
  }

  /** Records an image whose manifest, config and layer blobs are in the content store. */
  async register(m: Manifest, manifestDigest: string, tags: string[], digests: string[], source: string): Promise<ImageRecord> {
    const config = JSON.parse((await this.content.read(m.config.digest)).toString()) as ImageConfig;
    if (!config.rootfs || !Array.isArray(config.rootfs.diff_ids)) throw new Error(`image config ${m.config.digest} has no rootfs.diff_ids`);
    if (config.rootfs.diff_ids.length !== m.layers.length) {
      throw new Error(`image ${source}: manifest lists ${m.layers.length} layers but its config has ${config.rootfs.diff_ids.length} diff IDs`);
    }
    if (config.os && config.os !== 'linux') throw new Error(`image ${source} is for ${config.os}, not linux`);
    const layers: LayerRecord[] = m.layers.map((l, i) => ({ digest: checkDigest(l.digest), mediaType: l.mediaType, size: l.size, diffId: checkDigest(config.rootfs.diff_ids[i]!) }));
    for (const l of layers) await this.unpack(l);
    const id = m.config.digest;
    // A tag moves to the new image; the old image keeps its other names.
    for (const other of this.images) {
      if (other.id !== id) other.repoTags = other.repoTags.filter((t) => !tags.includes(t));
    }
    let rec = this.images.find((i) => i.id === id);
    const size = layers.reduce((a, l) => a + l.size, 0) + m.config.size;
    if (rec) {
      rec.repoTags = [...new Set([...rec.repoTags, ...tags])];
      rec.repoDigests = [...new Set([...rec.repoDigests, ...digests])];
    } else {
      rec = { id, repoTags: tags, repoDigests: digests, manifestDigest, layers, size, config, source };
      this.images.push(rec);
    }
    await this.save();
    return rec;
  }

  /** Unpacks a layer into its snapshot once, checking the uncompressed digest (diff ID). */
  private unpack(l: LayerRecord): Promise<void> {
    const dir = this.snapshotDir(l.diffId);
    if (existsSync(dir)) return Promise.resolve();
    const running = this.unpacking.get(l.diffId);
    if (running) return running;
    const p = this.doUnpack(l, dir).finally(() => this.unpacking.delete(l.diffId));
    this.unpacking.set(l.diffId, p);
    return p;
  }

  private async doUnpack(l: LayerRecord, dir: string): Promise<void> {
    if (/zstd/.test(l.mediaType)) throw new Error(`layer ${l.digest} is zstd-compressed (${l.mediaType}); only gzip and uncompressed layers are supported`);
    const tmp = join(this.root, 'snapshots', `tmp-${randomBytes(6).toString('hex')}`);
    await fsp.mkdir(tmp, { mode: 0o755 });
    try {
      const head = Buffer.alloc(2);
      const fh = await fsp.open(this.content.path(l.digest), 'r');
      await fh.read(head, 0, 2, 0);
      await fh.close();
      const raw = this.content.stream(l.digest) as Readable;
      const tar: Readable = head[0] === 0x1f && head[1] === 0x8b ? raw.pipe(createGunzip()) : raw;
      raw.on('error', (e) => tar.destroy(e));
      const hash = createHash('sha256');
      async function* hashed() { for await (const c of tar) { hash.update(c as Buffer); yield c as Buffer; } }
      await unpackLayer(hashed(), tmp);
      // Drain what follows the end-of-archive blocks so the diff ID covers the whole stream.
      for await (const c of tar) hash.update(c as Buffer);
      const diff = 'sha256:' + hash.digest('hex');
      if (diff !== l.diffId) throw new Error(`layer ${l.digest} uncompresses to ${diff}, but the image config says ${l.diffId}; refusing it`);
      await fsp.rename(tmp, dir);
    } catch (e) {
      await fsp.rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /** Lower directories for overlayfs, topmost first. */
  lowerDirs(img: ImageRecord): string[] {
    return img.layers.map((l) => this.snapshotDir(l.diffId)).reverse();
  }

  /** Removes an image and whatever blobs and snapshots no other image uses. */
  async remove(spec: string, inUse: (id: string) => boolean): Promise<boolean> {
    const img = this.find(spec);
    if (!img) return false;
    if (inUse(img.id)) throw new ImageInUseError(`image ${spec} (${img.id}) is used by a container; remove the container first`);
    this.images = this.images.filter((i) => i !== img);
    await this.save();
    const keepBlobs = new Set<string>();
    const keepSnaps = new Set<string>();
    for (const i of this.images) {
      keepBlobs.add(i.id); keepBlobs.add(i.manifestDigest);
      for (const l of i.layers) { keepBlobs.add(l.digest); keepSnaps.add(l.diffId); }
    }
    for (const d of [img.id, img.manifestDigest, ...img.layers.map((l) => l.digest)]) if (!keepBlobs.has(d)) await this.content.remove(d);
    for (const l of img.layers) if (!keepSnaps.has(l.diffId)) await fsp.rm(this.snapshotDir(l.diffId), { recursive: true, force: true });
    return true;
  }
}
