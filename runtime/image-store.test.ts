// Image pulls against a real docker-registry on loopback: layers, whiteouts, index selection,
// digest verification, token auth, hostile layers, archives (docker save, OCI layout).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageStore } from './image-store.js';
import { RegistryClient } from './registry-client.js';
import { loadArchive } from './archive-load.js';
import { ContentStore, sha256Digest } from './content-store.js';
import { startRegistry, pushImage, pushManifest } from './testing/registry.js';
import { startTokenServer } from './testing/token-server.js';
import { busyboxImage, buildImage, buildIndex, busyboxLayers, hostileImages } from './testing/test-image.js';
import { tarBuffer } from './testing/tar-writer.js';

function tmp(t: { teardown(fn: () => void): void }, what: string): string {
  const d = mkdtempSync(join(tmpdir(), `shoal-${what}-${process.pid}-`));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function store(t: { teardown(fn: () => void): void }): Promise<ImageStore> {
  const s = new ImageStore(tmp(t, 'images'), new RegistryClient());
  await s.init();
  return s;
}

t.test('pull from a real registry', async (t) => {
  const reg = await startRegistry();
  t.teardown(() => reg.stop());
  const img = busyboxImage();
  await pushImage(reg.host, 'shoal/busybox', '1', img);
  const arm = buildImage([[{ name: 'arm.txt', data: 'arm64' }]], { arch: 'arm64' });
  await pushImage(reg.host, 'shoal/busybox', undefined, arm);
  await pushImage(reg.host, 'shoal/busybox', undefined, img);
  const idx = buildIndex([{ image: arm, arch: 'arm64' }, { image: img, arch: 'amd64' }]);
  await pushManifest(reg.host, 'shoal/busybox', 'multi', idx);

  t.test('by tag: layers unpacked once each, overlay view honours whiteouts', async (t) => {
    const s = await store(t);
    const rec = await s.pull(`${reg.host}/shoal/busybox:1`);
    t.equal(rec.id, img.config.digest, 'image id is the config digest');
    t.same(rec.repoTags, [`${reg.host}/shoal/busybox:1`]);
    t.same(rec.repoDigests, [`${reg.host}/shoal/busybox@${img.manifest.digest}`]);
    t.equal(rec.layers.length, 3);
    for (const l of img.layers) t.ok(await s.content.has(l.digest), `blob ${l.digest.slice(0, 19)} stored`);
    const lowers = s.lowerDirs(rec);
    const merged = tmp(t, 'merged');
    mkdirSync(join(merged, 'm'));
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lowers.join(':')}`, join(merged, 'm')]);
    t.teardown(() => { try { execFileSync('umount', [join(merged, 'm')]); } catch { /* already */ } });
    const m = join(merged, 'm');
    t.notOk(existsSync(join(m, 'etc/removed.txt')), 'whited-out file is gone');
    t.ok(existsSync(join(m, 'etc/passwd')));
    t.same(readdirSync(join(m, 'data')).sort(), ['c'], 'opaque dir hides the lower layer');
    t.equal(readFileSync(join(m, 'app/greeting'), 'utf8'), 'hello from layer 3\n');
    t.equal(readFileSync(join(m, 'app/long/' + 'd'.repeat(120) + '/file'), 'utf8'), 'long path via PAX\n');
    t.equal(lstatSync(join(m, 'home/app/secret')).uid, 1000, 'ownership survives');
    execFileSync('umount', [m]);
    // A second pull of the same image reuses everything.
    const again = await s.pull(`${reg.host}/shoal/busybox:1`);
    t.equal(again.id, rec.id);
    t.equal(s.list().length, 1);
    t.equal(s.find(rec.id.slice(7, 19))?.id, rec.id, 'found by short id');
    t.equal(s.find(`${reg.host}/shoal/busybox@${img.manifest.digest}`)?.id, rec.id, 'found by digest');
  });

  t.test('an index resolves to linux/amd64; pulls by digest verify it', async (t) => {
    const s = await store(t);
    const rec = await s.pull(`${reg.host}/shoal/busybox:multi`);
    t.equal(rec.id, img.config.digest, 'amd64 picked, not arm64');
    const byDigest = await s.pull(`${reg.host}/shoal/busybox@${img.manifest.digest}`);
    t.equal(byDigest.id, img.config.digest);
    t.same(byDigest.repoTags, [`${reg.host}/shoal/busybox:multi`], 'a digest pull adds no tag');
  });

  t.test('concurrent pulls of one image fetch each blob once', async (t) => {
    const s = await store(t);
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => s.pull(`${reg.host}/shoal/busybox:1`)));
    t.equal(a!.id, b!.id); t.equal(b!.id, c!.id);
    const cs = new ContentStore(tmp(t, 'cs'));
    await cs.init();
    let opened = 0;
    const data = Buffer.from('same blob');
    const open = async () => { opened++; await new Promise((r) => setTimeout(r, 20)); return (async function* () { yield data; })(); };
    await Promise.all([1, 2, 3, 4].map(() => cs.ingest(sha256Digest(data), open)));
    t.equal(opened, 1, 'one download for four concurrent requests');
  });

  t.test('a blob whose content does not match its digest is refused', async (t) => {
    const reg2 = await startRegistry();
    t.teardown(() => reg2.stop());
    const bad = buildImage([[{ name: 'f.txt', data: 'original content' }]]);
    await pushImage(reg2.host, 'shoal/bad', '1', bad);
    // Corrupt the layer in the registry's own storage: registries serve what they have.
    const hex = bad.layers[0]!.digest.slice(7);
    const blobPath = join(reg2.dir, 'data/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const orig = readFileSync(blobPath);
    const tampered = Buffer.from(orig); tampered[tampered.length - 5] ^= 0xff;
    writeFileSync(blobPath, tampered);
    const s = await store(t);
    await t.rejects(s.pull(`${reg2.host}/shoal/bad:1`), /digest mismatch/);
    t.notOk(await s.content.has(bad.layers[0]!.digest), 'nothing stored under that digest');
    t.equal(s.list().length, 0);
  });

  t.test('hostile layers are refused and nothing escapes', async (t) => {
    const s = await store(t);
    for (const [name, im] of Object.entries(hostileImages())) {
      await pushImage(reg.host, `shoal/hostile-${name}`, '1', im);
      await t.rejects(s.pull(`${reg.host}/shoal/hostile-${name}:1`), /refusing/, `${name} refused`);
    }
    t.notOk(existsSync('/tmp/shoal-escape.txt'));
    t.notOk(existsSync(join(s.root, 'snapshots', 'escape.txt')));
    t.same(readdirSync(join(s.root, 'snapshots')).filter((d) => d.startsWith('tmp-')), [], 'no half-unpacked snapshot left');
    t.equal(s.list().length, 0);
  });

  t.test('unknown images and bad references give clear errors', async (t) => {
    const s = await store(t);
    await t.rejects(s.pull(`${reg.host}/shoal/nothere:1`), /not found/);
    await t.rejects(s.pull('UPPER/case'), /invalid/);
    await t.rejects(s.pull(`${reg.host}/shoal/busybox@sha256:1234`), /invalid digest/);
  });

  t.test('remove: refused while in use, then blobs and snapshots go', async (t) => {
    const s = await store(t);
    const rec = await s.pull(`${reg.host}/shoal/busybox:1`);
    await t.rejects(s.remove(rec.id, () => true), /used by a container/);
    t.ok(s.find(rec.id));
    t.equal(await s.remove(`${reg.host}/shoal/busybox:1`, () => false), true);
    t.notOk(s.find(rec.id));
    t.notOk(await s.content.has(img.layers[0]!.digest));
    t.same(readdirSync(join(s.root, 'snapshots')), []);
    t.equal(await s.remove(rec.id, () => false), false, 'removing again is a no-op');
  });
});

t.test('bearer-token auth against a registry with token auth', async (t) => {
  const ts = await startTokenServer('shoal', 's3cret');
  t.teardown(() => ts.stop());
  const reg = await startRegistry({ authYaml: [
    '  token:', `    realm: ${ts.realm}`, `    service: ${ts.service}`, `    issuer: ${ts.issuer}`, `    rootcertbundle: ${ts.certFile}`,
  ].join('\n') });
  t.teardown(() => reg.stop());
  const img = buildImage([busyboxLayers()[2]!]);
  const push = { authorization: 'Bearer ' + ts.tokenFor('repository:private/app:pull,push') };
  await pushImage(reg.host, 'private/app', 'v1', img, push);
  const s = await store(t);
  await t.rejects(s.pull(`${reg.host}/private/app:v1`), /refused a token|refused access|credentials/, 'anonymous pull refused');
  const before = ts.issued;
  const rec = await s.pull(`${reg.host}/private/app:v1`, { username: 'shoal', password: 's3cret' });
  t.equal(rec.id, img.config.digest);
  t.ok(ts.issued > before, 'a token was obtained from the realm');
  const s2 = await store(t);
  await t.rejects(s2.pull(`${reg.host}/private/app:v1`, { username: 'shoal', password: 'wrong' }), /refused/);
});

t.test('load docker-save and OCI layout archives', async (t) => {
  const img = busyboxImage();
  const dir = tmp(t, 'archives');
  // docker save layout: uncompressed layer tars named by directory, config by id.
  const layersRaw = busyboxLayers().map((l) => tarBuffer(l));
  const cfg = JSON.parse(img.config.data.toString());
  const cfgData = Buffer.from(JSON.stringify(cfg));
  const cfgName = sha256Digest(cfgData).slice(7) + '.json';
  const entries = [
    { name: 'manifest.json', data: JSON.stringify([{ Config: cfgName, RepoTags: ['example.com/shoal/saved:v1'], Layers: layersRaw.map((_, i) => `l${i}/layer.tar`) }]) },
    { name: cfgName, data: cfgData },
    ...layersRaw.map((d, i) => ({ name: `l${i}/layer.tar`, data: d })),
  ];
  writeFileSync(join(dir, 'docker.tar'), tarBuffer(entries));
  const s = await store(t);
  const [rec] = await loadArchive(s, join(dir, 'docker.tar'));
  t.same(rec!.repoTags, ['example.com/shoal/saved:v1']);
  t.equal(rec!.layers.length, 3);
  t.equal(s.find('example.com/shoal/saved:v1')?.id, rec!.id);

  // OCI image layout with an index annotation naming the image.
  const oci = [
    { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' },
    { name: 'index.json', data: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.data.length, annotations: { 'io.containerd.image.name': 'example.com/shoal/oci:v2' } }] }) },
    ...[img.manifest, img.config, ...img.layers].map((b) => ({ name: `blobs/sha256/${b.digest.slice(7)}`, data: b.data })),
  ];
  writeFileSync(join(dir, 'oci.tar'), tarBuffer(oci));
  const s2 = await store(t);
  const [o] = await loadArchive(s2, join(dir, 'oci.tar'));
  t.equal(o!.id, img.config.digest);
  t.same(o!.repoTags, ['example.com/shoal/oci:v2']);

  // A corrupted blob in an OCI archive is refused.
  const broken = oci.map((e) => e.name === `blobs/sha256/${img.layers[0]!.digest.slice(7)}` ? { ...e, data: Buffer.from('not the layer') } : e);
  writeFileSync(join(dir, 'broken.tar'), tarBuffer(broken));
  const s3 = await store(t);
  await t.rejects(loadArchive(s3, join(dir, 'broken.tar')), /digest mismatch/);
  await t.rejects(loadArchive(s3, join(dir, 'missing.tar')), /does not exist/);
  writeFileSync(join(dir, 'junk.tar'), tarBuffer([{ name: 'hello.txt', data: 'hi' }]));
  await t.rejects(loadArchive(s3, join(dir, 'junk.tar')), /neither a docker-save archive/);
});
