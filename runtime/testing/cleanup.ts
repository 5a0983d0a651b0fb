// Test helper: removes everything a runtime root may hold, also after a failed test: runc
// containers, their monitors, mounts under the root (overlay roots, namespace files), pod
// cgroups, files.
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, rmdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export function cleanupRoot(root: string): void {
  const runcRoot = join(root, 'runc');
  if (existsSync(runcRoot)) {
    const ids = spawnSync('runc', ['--root', runcRoot, 'list', '-q'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const id of ids) spawnSync('runc', ['--root', runcRoot, 'delete', '-f', id]);
  }
  // Monitors (shoal-shim, named shoal-monitor, working in their bundle directory) would wait
  // for a runtime to collect their container's exit forever: end them and their process group;
  // and pods' infra processes (shoal-pause, working in their sandbox directory).
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const comm = readFileSync(`/proc/${p}/comm`, 'utf8').trim();
      if (comm !== 'shoal-monitor' && comm !== 'shoal-pause') continue;
      if (readlinkSync(`/proc/${p}/cwd`).startsWith(root + '/')) process.kill(-Number(p), 'SIGKILL');
    } catch { /* gone, or not a monitor of ours */ }
  }
  const cgroups: string[] = [];
  const sbDir = join(root, 'sandboxes');
  if (existsSync(sbDir)) {
    for (const id of readdirSync(sbDir)) {
      try { cgroups.push((JSON.parse(readFileSync(join(sbDir, id, 'meta.json'), 'utf8')) as { cgroupParent: string }).cgroupParent); } catch { /* none */ }
    }
  }
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === root || m.startsWith(root + '/')).sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  // After the pods' cgroups, the test's own pod parents (startRuntime's /shoal-test-<pid>-<n>).
  try { cgroups.push(...readFileSync(join(root, '.test-cgroup-parents'), 'utf8').split('\n').filter(Boolean)); } catch { /* none */ }
  for (const cg of cgroups) {
    for (const ctl of readdirSync('/sys/fs/cgroup')) {
      const d = join('/sys/fs/cgroup', ctl, cg);
      if (!existsSync(d)) continue;
      for (const sub of readdirSync(d, { withFileTypes: true })) if (sub.isDirectory()) { try { rmdirSync(join(d, sub.name)); } catch { /* busy */ } }
      try { rmdirSync(d); } catch { /* busy */ }
    }
  }
  rmSync(root, { recursive: true, force: true });
}
