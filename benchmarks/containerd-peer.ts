// The benchmark's containerd: Debian's containerd with its CRI plugin, started inside the
// benchmark's own network namespace with a state directory of its own (root, state, socket,
// CNI config), restrict_oom_score_adj (no process here may lower its oom_score_adj), a
// sandbox (pause) image from the benchmark's registry, and removed afterwards: pods, shims,
// mounts, files.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { criClient, type CriClient } from '../runtime/testing/cri-client.js';

export interface ContainerdPeer { client: CriClient; socket: string; stderr(): string; stop(): Promise<void> }

export async function startContainerd(dir: string, netns: string, opts: { registry: string; sandboxImage: string; cniConfDir: string; cniBinDir: string }): Promise<ContainerdPeer> {
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'containerd.sock');
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  writeFileSync(join(dir, 'config.toml'), `version = 2
root = "${join(dir, 'root')}"
state = "${join(dir, 'state')}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.internal.v1.opt"]
  path = "${join(dir, 'opt')}"
[${cri}]
  sandbox_image = "${opts.sandboxImage}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
[${cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[${cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[${cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[${cri}.cni]
  bin_dir = "${opts.cniBinDir}"
  conf_dir = "${opts.cniConfDir}"
[${cri}.registry.mirrors."${opts.registry}"]
  endpoint = ["http://${opts.registry}"]
`);
  const proc: ChildProcess = spawn('nsenter', [`--net=${netns}`, '--', 'containerd', '--config', join(dir, 'config.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-20000); });
  const client = criClient(socket);
  const deadline = Date.now() + 30000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`containerd exited at startup (${proc.exitCode}): ${err.slice(-2000)}`);
    try { await client.rt.Version({ version: 'v1' }); break; } catch { /* not yet */ }
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`containerd did not answer CRI within 30 s: ${err.slice(-2000)}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  const stop = async () => {
    // Pods first, through CRI, so containerd ends its shims and unmounts what it mounted.
    try {
      for (const p of (await client.rt.ListPodSandbox({})).items) {
        await client.rt.StopPodSandbox({ pod_sandbox_id: p.id }).catch(() => {});
        await client.rt.RemovePodSandbox({ pod_sandbox_id: p.id }).catch(() => {});
      }
    } catch { /* containerd already gone */ }
    client.close();
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
    // Shims of this instance (their command line names our socket), then its mounts.
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        if (cmd.startsWith('/usr/bin/containerd-shim') && cmd.includes(socket)) process.kill(Number(p), 'SIGKILL');
      } catch { /* gone */ }
    }
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(dir + '/')).sort((a, b) => b.length - a.length);
    for (const m of mounts) spawnSync('umount', ['-l', m]);
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  };
  return { client, socket, stderr: () => err, stop };
}
