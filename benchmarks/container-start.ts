// Container start: N pods with one container each through shoal-runtime's CRI socket (a real
// gRPC client: RunPodSandbox + CreateContainer + StartContainer, one after the other), against
// N containers started with plain `runc run -d` from the same image root, and against
// Debian's containerd (its CRI plugin) driven by the same client with the same pod and
// container configs. All sequential, the systems alternating in blocks of 5.
//
// Both runtimes run inside a network namespace of the benchmark's own, each with the same CNI
// chain (Debian's bridge + host-local + portmap; containerd adds loopback, as shoal-runtime
// does), pulling the same image from a docker-registry in that namespace.
//   npm run bench:start -- --count 50
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startContainerd, type ContainerdPeer } from './containerd-peer.js';
import { startRegistry, type Registry } from '../runtime/testing/registry.js';
import { cgroupVersion } from '../runtime/cgroups.js';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupRoot } from '../runtime/testing/cleanup.js';
import { startRuntime } from '../runtime/testing/runtime-proc.js';
import { runcBundleSpec } from './container-runc-spec.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) { process.stderr.write(`${name} needs a positive integer\n`); process.exit(2); }
  return v;
}

let interrupted = false;

/** Removes a cgroup and everything under it, in every hierarchy (deepest first). */
function removeCgroupTree(path: string): void {
  const roots = cgroupVersion() === 2 ? ['/sys/fs/cgroup'] : readdirSync('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c));
  for (const r of roots) {
    const walk = (d: string) => {
      if (!existsSync(d)) return;
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
      try { rmdirSync(d); } catch { /* busy or gone */ }
    };
    walk(join(r, path));
  }
}

function cniConf(name: string, bridge: string, subnet: string, ipamDir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0', name,
    plugins: [
      { type: 'bridge', bridge, isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: ipamDir } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  });
}

function containerdVersion(): string {
  return /containerd\S* \S+ (\S+)/.exec(spawnSync('containerd', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? '?';
}

async function main(): Promise<void> {
  const count = arg('--count', 50);
  const base = mkdtempSync(join(tmpdir(), `shoal-bench-start-${process.pid}-`));
  const root = join(base, 'root');
  const runcRoot = join(base, 'runc-raw');
  let rt: Awaited<ReturnType<typeof startRuntime>> | undefined;
  let cd: ContainerdPeer | undefined;
  let reg: Registry | undefined;
  const netns = `shoal-bench-${process.pid}`;
  const nsPath = `/var/run/netns/${netns}`;
  const cgroupBase = `/shoal-bench-${process.pid}`;
  // Everything the run made goes, also when it is interrupted (SIGINT, SIGTERM) half-way:
  // runc's containers found by listing (a runc interrupted mid-create is not in any list of
  // ours), the raw side's root mount, containerd with its pods, shims and mounts, and through
  // cleanupRoot the runtime's containers, monitors, overlay roots, namespaces and cgroups; then
  // the registry, the network namespace and the pods' cgroups.
  let cleaning: Promise<void> | undefined;
  const cleanup = () => cleaning ??= (async () => {
    if (rt) await rt.kill('SIGKILL');
    if (cd) await cd.stop().catch((e) => process.stderr.write(`container-start: containerd cleanup: ${(e as Error).message}\n`));
    // A request the runtime's shim had under way finishes within moments; let it, so that
    // nothing it makes appears after the sweep below.
    await new Promise((r) => setTimeout(r, 300));
    if (existsSync(runcRoot)) {
      const ids = spawnSync('runc', ['--root', runcRoot, 'list', '-q'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
      for (const id of ids) spawnSync('runc', ['--root', runcRoot, 'delete', '-f', id]);
    }
    spawnSync('umount', [join(base, 'raw-rootfs')], { stdio: 'ignore' });
    cleanupRoot(root);
    if (reg) await reg.stop();
    spawnSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
    removeCgroupTree(cgroupBase);
    rmSync(base, { recursive: true, force: true });
  })();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      interrupted = true;
      process.stderr.write(`container-start: ${sig}: cleaning up ${base}\n`);
      void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
  const say = (m: string) => process.stderr.write(`container-start: ${m}\n`);
  try {
    say(`network namespace ${netns}, registry, CNI configs, pause image`);
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('nsenter', [`--net=${nsPath}`, '--', 'ip', 'link', 'set', 'lo', 'up']);
    reg = await startRegistry(undefined, { netns: nsPath });
    const pauseBin = join(base, 'pause');
    execFileSync('gcc', ['-O2', '-static', '-o', pauseBin, fileURLToPath(new URL('../../benchmarks/pause.c', import.meta.url))]);
    execFileSync('nsenter', [`--net=${nsPath}`, '--', process.execPath, fileURLToPath(new URL('./push-images.js', import.meta.url)), reg.host, pauseBin], { stdio: ['ignore', 'ignore', 'inherit'] });
    const tag = process.pid % 10000;
    for (const [side, net] of [['shoal', 251], ['containerd', 252]] as const) {
      mkdirSync(join(base, `net.d-${side}`));
      writeFileSync(join(base, `net.d-${side}`, '10-bench.conflist'), cniConf(`bench-${side}`, `sb${side[0]}${tag}`, `10.${net}.0.0/16`, join(base, `ipam-${side}`)));
    }
    const image = { image: `${reg.host}/shoal/busybox:1` };
    say('starting shoal-runtime and containerd');
    rt = await startRuntime(join(base, 'cri.sock'), root, ['--insecure-registry', reg.host, '--cni-conf-dir', join(base, 'net.d-shoal'), '--cni-bin-dir', '/usr/lib/cni'], { netns: nsPath });
    cd = await startContainerd(join(base, 'containerd'), nsPath, { registry: reg.host, sandboxImage: `${reg.host}/shoal/pause:1`, cniConfDir: join(base, 'net.d-containerd'), cniBinDir: '/usr/lib/cni' });
    const c = rt.client;
    await c.img.PullImage({ image });
    await cd.client.img.PullImage({ image });
    await cd.client.img.PullImage({ image: { image: `${reg.host}/shoal/pause:1` } });

    const phase = { run: 0n, create: 0n, start: 0n };
    const cdPhase = { run: 0n, create: 0n, start: 0n };
    // The same pod and container configs for both runtimes (each pod under a cgroup of the
    // benchmark's own, removed at the end).
    const startPodOn = async (cl: typeof c, side: string, ph: typeof phase, i: number) => {
      const config = { metadata: { name: `bench-${i}`, uid: `bench-${side}-${i}`, namespace: 'bench' }, hostname: `bench-${i}`, linux: { cgroup_parent: `${cgroupBase}/${side}-${i}` } };
      const a = process.hrtime.bigint();
      const { pod_sandbox_id } = await cl.rt.RunPodSandbox({ config });
      const b = process.hrtime.bigint();
      const { container_id } = await cl.rt.CreateContainer({ pod_sandbox_id, sandbox_config: config, config: { metadata: { name: 'main' }, image, command: ['sleep', '100000'] } });
      const d = process.hrtime.bigint();
      await cl.rt.StartContainer({ container_id });
      const e = process.hrtime.bigint();
      if (i >= 0) { ph.run += b - a; ph.create += d - b; ph.start += e - d; }
      return pod_sandbox_id as string;
    };
    const startPod = (i: number) => startPodOn(c, 'shoal', phase, i);
    const startCdPod = (i: number) => startPodOn(cd!.client, 'containerd', cdPhase, i);
    // Warm-up (not counted): first-use costs such as loading runc and the page cache.
    await c.rt.RemovePodSandbox({ pod_sandbox_id: await startPod(-1) });
    const warm = await startCdPod(-1);
    await cd.client.rt.StopPodSandbox({ pod_sandbox_id: warm });
    await cd.client.rt.RemovePodSandbox({ pod_sandbox_id: warm });

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
    const cdPods: string[] = [];
    let shoalNs = 0n;
    let runcNs = 0n;
    let cdNs = 0n;
    for (let done = 0; done < count;) {
      const k = Math.min(5, count - done);
      const t0 = process.hrtime.bigint();
      for (let i = done; i < done + k; i++) pods.push(await startPod(i));
      const t1 = process.hrtime.bigint();
      for (let i = done; i < done + k; i++) runOne(`shoal-bench-${process.pid}-${i}`);
      const t2 = process.hrtime.bigint();
      for (let i = done; i < done + k; i++) cdPods.push(await startCdPod(i));
      const t3 = process.hrtime.bigint();
      shoalNs += t1 - t0;
      runcNs += t2 - t1;
      cdNs += t3 - t2;
      done += k;
      say(`${done}/${count} pods on each`);
    }
    const cdS = Number(cdNs) / 1e9;
    const cdRunning = (await cd.client.rt.ListContainers({ filter: { state: { state: 1 } } })).containers.length;
    if (cdRunning !== count) throw new Error(`expected ${count} running containers in containerd, found ${cdRunning}`);
    const ips = new Set<string>();
    for (const p of pods) ips.add((await c.rt.PodSandboxStatus({ pod_sandbox_id: p })).status.network.ip);
    if (ips.size !== count || [...ips].some((ip) => !ip)) throw new Error(`expected ${count} distinct pod IPs from the CNI chain on shoal-runtime, got ${ips.size}`);
    const shoalS = Number(shoalNs) / 1e9;
    const runcS = Number(runcNs) / 1e9;
    const running = (await c.rt.ListContainers({ filter: { state: { state: 1 } } })).containers.length;
    if (running !== count) throw new Error(`expected ${count} running containers through CRI, found ${running}`);

    process.stdout.write(`\n| what (N=${count}, sequential) | total | per container |\n|---|---|---|\n`);
    process.stdout.write(`| shoal-runtime via CRI: RunPodSandbox + CreateContainer + StartContainer | ${shoalS.toFixed(2)} s | ${(shoalS / count * 1000).toFixed(1)} ms |\n`);
    const ms = (x: bigint) => (Number(x) / 1e6 / count).toFixed(1);
    process.stdout.write(`| ... of which RunPodSandbox / CreateContainer / StartContainer | | ${ms(phase.run)} / ${ms(phase.create)} / ${ms(phase.start)} ms |\n`);
    const cms = (x: bigint) => (Number(x) / 1e6 / count).toFixed(1);
    process.stdout.write(`| containerd ${containerdVersion()} via CRI: the same three calls | ${cdS.toFixed(2)} s | ${(cdS / count * 1000).toFixed(1)} ms |\n`);
    process.stdout.write(`| ... of which RunPodSandbox / CreateContainer / StartContainer | | ${cms(cdPhase.run)} / ${cms(cdPhase.create)} / ${cms(cdPhase.start)} ms |\n`);
    process.stdout.write(`| runc run -d | ${runcS.toFixed(2)} s | ${(runcS / count * 1000).toFixed(1)} ms |\n\n`);
    process.stdout.write(`load average at the end: ${readFileSync('/proc/loadavg', 'utf8').trim()}\n`);
    process.stdout.write(`container-start N=${count}: shoal ${shoalS.toFixed(2)} s, runc ${runcS.toFixed(2)} s, ratio ${(shoalS / runcS).toFixed(2)}\n`);
    process.stdout.write(`cri-vs-containerd N=${count}: shoal ${shoalS.toFixed(2)} s, containerd ${cdS.toFixed(2)} s, ratio ${(shoalS / cdS).toFixed(2)}\n`);

    if (process.env['SHOAL_TRACE']) {
      // The runtime prints its per-step sums on SIGUSR2 (runtime/trace.ts).
      const before = rt.stderr().length;
      rt.proc.kill('SIGUSR2');
      for (let i = 0; i < 100 && !rt.stderr().slice(before).includes('trace\n'); i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 50));
      process.stdout.write(rt.stderr().slice(before));
    }
    for (const p of pods) await c.rt.RemovePodSandbox({ pod_sandbox_id: p });
    for (const p of cdPods) { await cd.client.rt.StopPodSandbox({ pod_sandbox_id: p }); await cd.client.rt.RemovePodSandbox({ pod_sandbox_id: p }); }
  } finally {
    if (rt) await rt.kill('SIGTERM');
    await cleanup();
  }
}

main().catch((e) => { if (interrupted) return; /* the signal handler exits once clean */ process.stderr.write(`container-start: ${(e as Error).message}\n`); process.exit(1); });
