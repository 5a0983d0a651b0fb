// Shared by the lab tests with volumes: where a volume is mounted now and what holds it, read
// from the machine itself (the root mount namespace's table, where every lab host's mounts are,
// and losetup), and a sampler that keeps the worst moment while something races.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { volumePaths } from '../csi/client.js';
import type { Lab } from './services-helpers.js';

export const DRIVER = 'block.csi.shoal.io';

/** The lab's shared CSI pool (every host's driver serves it). */
export const poolOf = (lab: Lab) => join(lab.dir, 'csi-pool');

/** Loop devices whose backing file is node `nodeId`'s link to a pool image. */
export function loopsOf(lab: Lab, nodeId: string): string[] {
  const r = spawnSync('losetup', ['--list', '--noheadings', '--raw', '--output', 'NAME,BACK-FILE'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.includes(poolOf(lab)) && l.includes(`/nodes/${nodeId}.img`)).map((l) => l.split(/\s+/)[0]!);
}

/** Mounts under a host's CSI directory (staging and publish paths; not the directory itself). */
export function csiMounts(lab: Lab, host: string): string[] {
  const dir = join(lab.node(host).stateDir, 'csi') + '/';
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(dir));
}

/** Where the volume is mounted now: its publish targets (`host:taskId`) and the hosts it is staged on. */
export function mountsOfVolume(lab: Lab, csiId: string): { targets: string[]; staged: string[] } {
  const points = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '');
  const targets: string[] = [];
  const staged: string[] = [];
  for (const h of lab.nodes().map((n) => n.name)) {
    const p = volumePaths(lab.node(h).stateDir, DRIVER, csiId, 'x');
    const pub = dirname(p.target) + '/';
    for (const m of points) if (m.startsWith(pub)) targets.push(`${h}:${m.slice(pub.length)}`);
    if (points.includes(p.staging)) staged.push(h);
  }
  return { targets: [...new Set(targets)], staged };
}

/** Samples mountsOfVolume every 50 ms until stopped; keeps the worst moment (most targets, most staging hosts). */
export function sampleMounts(lab: Lab, csiId: string): { stop(): { worst: { targets: string[]; staged: string[] }; samples: number } } {
  let worst = { targets: [] as string[], staged: [] as string[] };
  let samples = 0;
  const timer = setInterval(() => {
    const m = mountsOfVolume(lab, csiId);
    samples++;
    if (m.targets.length > worst.targets.length || m.staged.length > worst.staged.length) worst = m;
  }, 50);
  return { stop: () => (clearInterval(timer), { worst, samples }) };
}

/** A file on the volume as the task's publish target on its host shows it. */
export function readOnVolume(lab: Lab, task: { id: string; node: string | null }, csiId: string, file: string): string {
  return readFileSync(join(volumePaths(lab.node(task.node!).stateDir, DRIVER, csiId, task.id).target, file), 'utf8').trim();
}

/** `volume ls --format json`. */
export async function volumesOf(lab: Lab): Promise<any[]> {
  return JSON.parse(await lab.ok(['--lab', 'volume', 'ls', '--format', 'json']));
}
