// Volumes: create + attach + stage + publish of a volume through shoal's CSI driver (a real
// shoal-csi process over gRPC: CreateVolume, ControllerPublishVolume, NodeStageVolume,
// NodePublishVolume), against the same steps by hand in one shell (truncate, losetup,
// mkfs.ext4, mount, bind mount) with the same options; then sequential write throughput (dd
// oflag=direct) inside a runc container through a published volume, against dd on a loop
// device directly. Then the same through a cluster (volume-cluster.ts: a lab of 1 manager and
// 1 worker; CreateVolume and a service mounting it, until the worker shows the publish mount)
// against the same steps by hand again. Alternating rounds, medians.
//   flock /tmp/shoal-lab.lock flock /tmp/shoal-bench.lock nice -n 10 npm run bench:volume -- --rounds 7
// (--cluster-rounds 0 leaves the cluster out; it is the last line, volume-vs-manual.)
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountCapability } from '../csi/client.js';
import { MKFS_ARGS, MOUNT_DEFAULTS } from '../csi/ext4.js';
import { shareMountRoot } from '../csi/mount-root.js';
import { startDriverProc, type DriverProc } from '../csi/testing/driver-proc.js';
import { sweep } from '../csi/testing/leaks.js';
import { runcBundleSpec } from './container-runc-spec.js';
import { downActiveLabs } from './shoal-lab-peer.js';
import { ClusterVolumes } from './volume-cluster.js';

function arg(name: string, def: number, min = 1): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < min) { process.stderr.write(`${name} needs an integer of at least ${min}\n`); process.exit(2); }
  return v;
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const sh = (script: string) => {
  const r = spawnSync('sh', ['-ec', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sh failed (${r.status}): ${script.slice(0, 200)}\n${r.stderr}`);
  return r.stdout;
};
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

let interrupted = false;

async function main(): Promise<void> {
  const rounds = arg('--rounds', 5);
  const sizeMiB = arg('--size-mib', 1024);
  const ddMiB = arg('--dd-mib', 256);
  const ddRounds = arg('--dd-rounds', 3);
  const clusterRounds = arg('--cluster-rounds', 5, 0);
  const size = sizeMiB * 1024 * 1024;
  const base = join(tmpdir(), `shoal-bench-volume-${process.pid}`);
  const runcRoot = join(base, 'runc');
  rmSync(base, { recursive: true, force: true });
  // Staging and target paths live under a shared mount, as a CO's volume directory should (see
  // csi/mount-root.ts): containers started elsewhere on the machine meanwhile do not pin them.
  await shareMountRoot(base);
  let driver: DriverProc | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () => cleaning ??= (async () => {
    const ids = spawnSync('runc', ['--root', runcRoot, 'list', '-q'], { encoding: 'utf8' }).stdout?.split('\n').filter(Boolean) ?? [];
    for (const id of ids) spawnSync('runc', ['--root', runcRoot, 'delete', '-f', id]);
    await driver?.kill();
    for (const left of await downActiveLabs()) process.stderr.write(`volume-vs-manual: could not remove ${left}\n`);
    sweep(base); // mounts, loop devices and files under base
  })();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      interrupted = true;
      process.stderr.write(`volume-vs-manual: ${sig}: cleaning up ${base}\n`);
      void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
  try {
    process.stdout.write(`volume-vs-manual: ${rounds} rounds of a ${sizeMiB} MiB volume, alternating; load ${load()}\n`);
    const node = `bench-${process.pid}`;
    driver = await startDriverProc({ socket: join(base, 'csi.sock'), pool: join(base, 'pool'), nodeId: node });
    const c = driver.client;
    const cap = mountCapability('SINGLE_NODE_WRITER');
    await c.capabilities();

    let n = 0;
    const shoalUp = async () => {
      const i = ++n;
      const staging = join(base, 'shoal', `staging-${i}`);
      const target = join(base, 'shoal', `task-${i}`, 'data');
      const t0 = process.hrtime.bigint();
      const vol = await c.createVolume({ name: `bench-${i}`, capacity: { required_bytes: size, limit_bytes: size }, capabilities: [cap] });
      const t1 = process.hrtime.bigint();
      const ctx = await c.controllerPublish({ volumeId: vol.volume_id, nodeId: node, capability: cap });
      const t2 = process.hrtime.bigint();
      await c.call('node', 'NodeStageVolume', { volume_id: vol.volume_id, publish_context: ctx, staging_target_path: staging, volume_capability: cap });
      const t3 = process.hrtime.bigint();
      await c.call('node', 'NodePublishVolume', { volume_id: vol.volume_id, publish_context: ctx, staging_target_path: staging, target_path: target, volume_capability: cap, readonly: false });
      const t4 = process.hrtime.bigint();
      const steps = [t1 - t0, t2 - t1, t3 - t2, t4 - t3].map((d) => Number(d) / 1e6);
      return { id: vol.volume_id, staging, target, total: Number(t4 - t0) / 1e6, steps };
    };
    const shoalDown = async (v: { id: string; staging: string; target: string }) => {
      await c.unmountVolume({ volumeId: v.id, staging: v.staging, target: v.target });
      await c.controllerUnpublish(v.id, node);
      await c.deleteVolume(v.id);
    };
    const manualUp = () => {
      const i = ++n;
      const d = join(base, 'manual', String(i));
      mkdirSync(d, { recursive: true });
      const t0 = process.hrtime.bigint();
      const dev = sh(`truncate -s ${size} ${d}/image
dev=$(losetup --find --show --direct-io=on ${d}/image)
mkfs.ext4 ${MKFS_ARGS.join(' ')} $dev
mkdir -p ${d}/staging ${d}/task/data
mount -t ext4 -o rw,${MOUNT_DEFAULTS.join(',')} $dev ${d}/staging
mount --bind ${d}/staging ${d}/task/data
echo $dev`).trim();
      return { d, dev, total: ms(t0) };
    };
    const manualDown = (m: { d: string; dev: string }) => sh(`umount ${m.d}/task/data; umount ${m.d}/staging; losetup -d ${m.dev}; rm -rf ${m.d}`);

    // Warm-up, not counted: first use of the tools and of the driver's code paths.
    await shoalDown(await shoalUp());
    manualDown(manualUp());

    const shoalT: number[] = [];
    const manualT: number[] = [];
    const steps: number[][] = [[], [], [], []];
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? ['shoal', 'manual'] : ['manual', 'shoal'];
      for (const side of order) {
        if (side === 'shoal') {
          const v = await shoalUp();
          shoalT.push(v.total);
          v.steps.forEach((s, k) => steps[k]!.push(s));
          await shoalDown(v);
        } else {
          const m = manualUp();
          manualT.push(m.total);
          manualDown(m);
        }
      }
      process.stdout.write(`  round ${r + 1}: shoal ${shoalT[r]!.toFixed(0)} ms, manual ${manualT[r]!.toFixed(0)} ms; load ${load()}\n`);
    }
    const s = median(shoalT) / 1000;
    const m = median(manualT) / 1000;
    process.stdout.write(`\n| ${sizeMiB} MiB volume, median of ${rounds} | time |\n|---|---|\n`);
    process.stdout.write(`| shoal-csi over gRPC: CreateVolume + ControllerPublish + NodeStage + NodePublish | ${(s * 1000).toFixed(0)} ms |\n`);
    process.stdout.write(`| ... CreateVolume / ControllerPublishVolume / NodeStageVolume / NodePublishVolume | ${steps.map((x) => median(x).toFixed(0)).join(' / ')} ms |\n`);
    process.stdout.write(`| by hand, one shell: truncate, losetup, mkfs.ext4, mount, mount --bind | ${(m * 1000).toFixed(0)} ms |\n`);
    process.stdout.write(`| fastest round of each (a busy machine's noise left out) | shoal ${Math.min(...shoalT).toFixed(0)} ms, by hand ${Math.min(...manualT).toFixed(0)} ms |\n\n`);

    // Sequential writes: in a runc container through a published volume, and on a loop device.
    const rootfs = join(base, 'rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    copyFileSync('/bin/busybox', join(rootfs, 'bin', 'busybox'));
    spawnSync('chmod', ['755', join(rootfs, 'bin', 'busybox')]);
    for (const a of ['dd', 'sh']) symlinkSync('busybox', join(rootfs, 'bin', a));
    for (const dir of ['proc', 'dev', 'sys', 'data']) mkdirSync(join(rootfs, dir), { recursive: true });
    // The same script times dd on both sides, by the kernel's clock (/proc/uptime), so neither
    // side's figure includes starting a process or a container.
    const ddScript = (of: string, dd = 'dd') => `read a _ < /proc/uptime; ${dd} if=/dev/zero of=${of} bs=1M count=${ddMiB} oflag=direct 2>/dev/null; read b _ < /proc/uptime; echo "$a $b"`;
    const parseDd = (out: string) => {
      const mm = /^([\d.]+) ([\d.]+)$/m.exec(out.trim());
      if (!mm) throw new Error(`cannot read the dd timing from: ${out.trim().slice(-300)}`);
      const secs = Number(mm[2]) - Number(mm[1]);
      if (!(secs > 0)) throw new Error(`dd took ${secs} s by /proc/uptime (too short to time: use a larger --dd-mib)`);
      return (ddMiB * 1024 * 1024) / secs / 1e6;
    };
    const inContainer = async () => {
      const v = await shoalUp();
      const bundle = join(base, `bundle-${n}`);
      mkdirSync(bundle);
      const spec = runcBundleSpec(rootfs, ['/bin/sh', '-c', ddScript('/data/dd.out')]) as { mounts: object[] };
      spec.mounts.push({ destination: '/data', type: 'bind', source: v.target, options: ['rbind', 'rw'] });
      writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
      const r = spawnSync('runc', ['--root', runcRoot, 'run', '--bundle', bundle, `shoal-bench-dd-${process.pid}-${n}`], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`runc run (dd) failed (${r.status}): ${r.stderr}`);
      const mbps = parseDd(r.stderr + r.stdout);
      await shoalDown(v);
      return mbps;
    };
    const onLoop = () => {
      const d = join(base, 'raw', String(++n));
      mkdirSync(d, { recursive: true });
      const dev = sh(`truncate -s ${size} ${d}/image; losetup --find --show --direct-io=on ${d}/image`).trim();
      try {
        const r = spawnSync('busybox', ['sh', '-c', ddScript(dev, 'busybox dd')], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`dd on ${dev} failed: ${r.stderr}`);
        return parseDd(r.stderr + r.stdout);
      } finally { sh(`losetup -d ${dev}; rm -rf ${d}`); }
    };
    const onVolumeHost = async () => {
      const v = await shoalUp();
      const r = spawnSync('busybox', ['sh', '-c', ddScript(join(v.target, 'dd.out'), 'busybox dd')], { encoding: 'utf8' });
      await shoalDown(v);
      return parseDd(r.stdout);
    };
    const cont: number[] = [];
    const host: number[] = [];
    const raw: number[] = [];
    for (let r = 0; r < ddRounds; r++) {
      const sides = [async () => cont.push(await inContainer()), async () => host.push(await onVolumeHost()), async () => raw.push(onLoop())];
      for (let k = 0; k < 3; k++) await sides[(k + r) % 3]!();
      process.stdout.write(`  dd round ${r + 1}: container through the volume ${cont[r]!.toFixed(0)} MB/s, host on the volume ${host[r]!.toFixed(0)} MB/s, loop device ${raw[r]!.toFixed(0)} MB/s; load ${load()}\n`);
    }
    process.stdout.write(`\n| sequential write, dd bs=1M count=${ddMiB} oflag=direct, median of ${ddRounds} | MB/s |\n|---|---|\n`);
    process.stdout.write(`| in a runc container, into a file on a published volume (ext4 on loop, direct I/O to the image) | ${median(cont).toFixed(0)} |\n`);
    process.stdout.write(`| on the host, into a file on a published volume (the same, without the container) | ${median(host).toFixed(0)} |\n`);
    process.stdout.write(`| on the host, onto a loop device directly (same image setup, no filesystem) | ${median(raw).toFixed(0)} |\n\n`);
    process.stdout.write(`volume-dd: container ${median(cont).toFixed(0)} MB/s, loop device ${median(raw).toFixed(0)} MB/s, ratio ${(median(cont) / median(raw)).toFixed(2)}\n`);
    process.stdout.write(`volume-driver-vs-manual: shoal-csi ${s.toFixed(3)} s, manual ${m.toFixed(3)} s, ratio ${(s / m).toFixed(2)}\n`);

    if (clusterRounds > 0) {
      process.stdout.write(`\nthrough a cluster: lab up (1 manager, 1 worker); load ${load()}\n`);
      const cluster = await ClusterVolumes.up((l) => process.stdout.write(`  ${l}\n`));
      try {
        await cluster.round(size); // warm-up, not counted: the image pull, first use of each path
        manualDown(manualUp());
        const cT: number[] = [];
        const mT: number[] = [];
        for (let r = 0; r < clusterRounds; r++) {
          const sides = [async () => cT.push(await cluster.round(size)), async () => { const x = manualUp(); mT.push(x.total); manualDown(x); }];
          if (r % 2) sides.reverse();
          for (const f of sides) await f();
          process.stdout.write(`  cluster round ${r + 1}: shoal ${cT[r]!.toFixed(0)} ms, manual ${mT[r]!.toFixed(0)} ms; load ${load()}\n`);
        }
        const cs = median(cT) / 1000;
        const cm = median(mT) / 1000;
        process.stdout.write(`\n| ${sizeMiB} MiB volume through the cluster, median of ${clusterRounds} | time |\n|---|---|\n`);
        process.stdout.write(`| shoal: CreateVolume (control API) until provisioned, CreateService with the mount, until the worker shows the publish mount | ${(cs * 1000).toFixed(0)} ms |\n`);
        process.stdout.write(`| by hand, one shell: truncate, losetup, mkfs.ext4, mount, mount --bind | ${(cm * 1000).toFixed(0)} ms |\n\n`);
        process.stdout.write(`load average at the end: ${load()}\n`);
        process.stdout.write(`volume-vs-manual: shoal ${cs.toFixed(3)} s, manual ${cm.toFixed(3)} s, ratio ${(cs / cm).toFixed(2)}\n`);
      } finally {
        for (const left of await cluster.down()) process.stderr.write(`volume-vs-manual: could not remove ${left}\n`);
      }
    } else process.stdout.write(`load average at the end: ${load()}\n`);
  } finally {
    await cleanup();
  }
}

main().catch((e) => { if (interrupted) return; process.stderr.write(`volume-vs-manual: ${(e as Error).message}\n`); process.exit(1); });
