// What the lab's tasks leave on the machine once their daemons are stopped: runc containers (they
// live in pod namespaces, not in the lab's, and outlive shoald and the runtime by design), their
// processes, and the cgroups the lab's runtimes made under the lab's own cgroup parent.
import { existsSync, readdirSync, readlinkSync, rmdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { labCgroup } from './names.js';
import { procState } from './netns.js';
import { tryRun } from './sh.js';

const CGROUP_ROOT = '/sys/fs/cgroup';

/** Every state directory of the lab's nodes (from the directory itself: the state file may be lost). */
function nodeStateDirs(labDir: string): string[] {
  const nodes = join(labDir, 'nodes');
  try {
    return readdirSync(nodes).map((n) => join(nodes, n));
  } catch {
    return [];
  }
}

/** Processes whose root or working directory lies under `dir` (containers, their monitors). */
export function procsUnder(dir: string): number[] {
  const abs = resolve(dir) + '/';
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      const root = readlinkSync(`/proc/${p}/root`);
      const cwd = readlinkSync(`/proc/${p}/cwd`);
      if ((root + '/').startsWith(abs) || (cwd + '/').startsWith(abs)) out.push(Number(p));
    } catch {
      /* gone, or a kernel thread */
    }
  }
  return out;
}

/** Stops and deletes every runc container of the lab's nodes, and kills what still runs in them. */
export async function removeLabContainers(labDir: string, log: (s: string) => void): Promise<number> {
  let n = 0;
  for (const sd of nodeStateDirs(labDir)) {
    const runcRoot = join(sd, 'runtime', 'runc');
    if (!existsSync(runcRoot)) continue;
    const ids = tryRun(['runc', '--root', runcRoot, 'list', '-q']).out.split('\n').filter(Boolean);
    for (const id of ids) {
      if (tryRun(['runc', '--root', runcRoot, 'delete', '--force', id]).ok) n++;
    }
  }
  // A container runc lost track of (its state removed by hand) is still found by its root.
  let left = procsUnder(labDir);
  for (let round = 0; round < 3 && left.length > 0; round++) {
    for (const p of left) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    const end = Date.now() + 3000;
    while (left.some((p) => procState(p) !== undefined) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    left = procsUnder(labDir);
  }
  if (n > 0) log(`removed ${n} container(s) of the lab's tasks`);
  return n;
}

/** Removes the lab's cgroup tree (every controller), deepest first; returns what could not go. */
export function removeLabCgroups(lab: string): string[] {
  return removeCgroupTree(labCgroup(lab));
}

/** Removes cgroup `path` (e.g. /shoal-test-1) and everything below it in every controller. */
export function removeCgroupTree(path: string): string[] {
  const left: string[] = [];
  let ctls: string[] = [];
  try {
    ctls = readdirSync(CGROUP_ROOT);
  } catch {
    return left;
  }
  for (const ctl of ctls) {
    const top = join(CGROUP_ROOT, ctl, path);
    if (!existsSync(top)) continue;
    const dirs: string[] = [];
    const walk = (d: string) => {
      dirs.push(d);
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    };
    try {
      walk(top);
    } catch {
      /* raced with a removal */
    }
    for (const d of dirs.sort((a, b) => b.length - a.length)) {
      try {
        rmdirSync(d);
      } catch {
        /* busy: reported below */
      }
    }
    if (existsSync(top)) left.push(`cgroup ${top}`);
  }
  return left;
}
