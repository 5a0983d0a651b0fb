// Container start: N pods with one container each through shoal-runtime's CRI socket (a real
// gRPC client: RunPodSandbox + CreateContainer + StartContainer, one after the other), against
// N containers started with plain `runc run -d` from the same image root. Both sequential.
//   npm run bench:start -- --count 50
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupRoot } from '../runtime/testing/cleanup.js';
import { startRuntime } from '../runtime/testing/runtime-proc.js';
import { busyboxImage } from '../runtime/testing/test-image.js';
import { tarBuffer } from '../runtime/testing/tar-writer.js';
import { runcBundleSpec } from './container-runc-spec.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) { process.stderr.write(`${name} needs a positive integer\n`); process.exit(2); }
  return v;
}

let interrupted = false;

async function main(): Promise<void> {
  const count = arg('--count', 50);
  const base = mkdtempSync(join(tmpdir(), `shoal-bench-start-${process.pid}-`));
  const root = join(base, 'root');
  const runcRoot = join(base, 'runc-raw');
  let rt: Awaited<ReturnType<typeof startRuntime>> | undefined;
  // Everything the run made goes, also when it is interrupted (SIGINT, SIGTERM) half-way:
  // runc's containers found by listing (a runc interrupted mid-create is not in any list of
  // ours), the raw side's root mount, and through cleanupRoot the runtime's containers,
  // monitors, overlay roots, namespaces and cgroups.
  let cleaning: Promise<void> | undefined;
  const cleanup = () => cleaning ??= (async () => {
    if (rt) await rt.kill('SIGKILL');
    // A request the runtime's shim had under way finishes within moments; let it, so that
    // nothing it makes appears after the sweep below.
    await new Promise((r) => setTimeout(r, 300));
    if (existsSync(runcRoot)) {
      const ids = spawnSync('runc', ['--root', runcRoot, 'list', '-q'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
      for (const id of ids) spawnSync('runc', ['--root', runcRoot, 'delete', '-f', id]);
    }
    spawnSync('umount', [join(base, 'raw-rootfs')], { stdio: 'ignore' });
    cleanupRoot(root);
    rmSync(base, { recursive: true, force: true });
  })();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      interrupted = true;
      process.stderr.write(`container-start: ${sig}: cleaning up ${base}\n`);
      void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
  try {
    // The image: the test busybox image as an OCI archive, loaded through CRI PullImage.
    const img = busyboxImage();
    const archive = join(base, 'busybox-oci.tar');
    writeFileSync(archive, tarBuffer([
      { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' },
      { name: 'index.json', data: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.data.length, annotations: { 'io.containerd.image.name': 'bench.local/busybox:1' } }] }) },
      ...[img.manifest, img.config, ...img.layers].map((b) => ({ name: `blobs/sha256/${b.digest.slice(7)}`, data: b.data })),
    ]));
    rt = await startRuntime(join(base, 'cri.sock'), root);
    const c = rt.client;
    await c.img.PullImage({ image: { image: `oci-archive:${archive}` } });
    const image = { image: 'bench.local/busybox:1' };

    const phase = { run: 0n, create: 0n, start: 0n };
    const startPod = async (i: number) => {
      const config = { metadata: { name: `bench-${i}`, uid: `bench-${i}`, namespace: 'bench' }, hostname: `bench-${i}` };
      const a = process.hrtime.bigint();
      const { pod_sandbox_id } = await c.rt.RunPodSandbox({ config });
      const b = process.hrtime.bigint();
      const { container_id } = await c.rt.CreateContainer({ pod_sandbox_id, sandbox_config: config, config: { metadata: { name: 'main' }, image, command: ['sleep', '100000'] } });
      const d = process.hrtime.bigint();
      await c.rt.StartContainer({ container_id });
      const e = process.hrtime.bigint();
      if (i >= 0) { phase.run += b - a; phase.create += d - b; phase.start += e - d; }
      return pod_sandbox_id as string;
    };
    // Warm-up (not counted): first-use costs such as loading runc and the page cache.
    await c.rt.RemovePodSandbox({ pod_sandbox_id: await startPod(-1) });

    // Raw runc on the same image root: the image's layers as one read-only overlay mount.
    const lowers = (JSON.parse(readFileSync(join(root, 'images', 'images.json'), 'utf8')) as { layers: { diffId: string }[] }[])[0]!.layers
      .map((l) => join(root, 'images', 'snapshots', l.diffId.slice(7))).reverse();
    const rootfs = join(base, 'raw-rootfs');
    mkdirSync(rootfs);
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lowers.join(':')}`, rootfs]);
    const bundle = join(base, 'raw-bundle');
    mkdirSync(bundle);
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(runcBundleSpec(rootfs, ['sleep', '100000'])));
    const runOne = (id: string) => {
      // The container inherits runc's stdio, so no pipe may be handed over (it would stay
      // open as long as the container runs); runc's own errors go to its log file.
      const log = join(base, 'runc-raw.log');
      const r = spawnSync('runc', ['--root', runcRoot, '--log', log, 'run', '-d', '--bundle', bundle, id], { stdio: 'ignore' });
      if (r.status !== 0) throw new Error(`runc run -d ${id} failed (exit ${r.status}); see ${log}: ${readFileSync(log, 'utf8').slice(-500)}`);
    };
    runOne(`shoal-bench-warm-${process.pid}`);

    // Both sides run in alternating blocks of 5, so a change in machine load (other work on a
    // shared box) hits both alike; each side's time is the sum of its blocks.
    const pods: string[] = [];
    let shoalNs = 0n;
    let runcNs = 0n;
    for (let done = 0; done < count;) {
      const k = Math.min(5, count - done);
      const t0 = process.hrtime.bigint();
      for (let i = done; i < done + k; i++) pods.push(await startPod(i));
      const t1 = process.hrtime.bigint();
      for (let i = done; i < done + k; i++) runOne(`shoal-bench-${process.pid}-${i}`);
      const t2 = process.hrtime.bigint();
      shoalNs += t1 - t0;
      runcNs += t2 - t1;
      done += k;
    }
    const shoalS = Number(shoalNs) / 1e9;
    const runcS = Number(runcNs) / 1e9;
    const running = (await c.rt.ListContainers({ filter: { state: { state: 1 } } })).containers.length;
    if (running !== count) throw new Error(`expected ${count} running containers through CRI, found ${running}`);

    process.stdout.write(`\n| what (N=${count}, sequential) | total | per container |\n|---|---|---|\n`);
    process.stdout.write(`| shoal-runtime via CRI: RunPodSandbox + CreateContainer + StartContainer | ${shoalS.toFixed(2)} s | ${(shoalS / count * 1000).toFixed(1)} ms |\n`);
    const ms = (x: bigint) => (Number(x) / 1e6 / count).toFixed(1);
    process.stdout.write(`| ... of which RunPodSandbox / CreateContainer / StartContainer | | ${ms(phase.run)} / ${ms(phase.create)} / ${ms(phase.start)} ms |\n`);
    process.stdout.write(`| runc run -d | ${runcS.toFixed(2)} s | ${(runcS / count * 1000).toFixed(1)} ms |\n\n`);
    process.stdout.write(`container-start N=${count}: shoal ${shoalS.toFixed(2)} s, runc ${runcS.toFixed(2)} s, ratio ${(shoalS / runcS).toFixed(2)}\n`);

    if (process.env['SHOAL_TRACE']) {
      // The runtime prints its per-step sums on SIGUSR2 (runtime/trace.ts).
      const before = rt.stderr().length;
      rt.proc.kill('SIGUSR2');
      for (let i = 0; i < 100 && !rt.stderr().slice(before).includes('trace\n'); i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 50));
      process.stdout.write(rt.stderr().slice(before));
    }
    for (const p of pods) await c.rt.RemovePodSandbox({ pod_sandbox_id: p });
  } finally {
    if (rt) await rt.kill('SIGTERM');
    await cleanup();
  }
}

main().catch((e) => { if (interrupted) return; /* the signal handler exits once clean */ process.stderr.write(`container-start: ${(e as Error).message}\n`); process.exit(1); });
