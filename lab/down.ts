// `shoal lab down`: removes every process, namespace, mount and file a lab made. It works from
// the names alone (the lab's name derives from its directory), so it also cleans up after a
// `lab up` that crashed half-way or a lost state file.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bridgeNetns, labName } from './names.js';
import { labNetnsList, pidsIn, procState } from './netns.js';
import { isAlive, sleep, waitGone } from './procs.js';
import { tryRun } from './sh.js';
import { removeLabCgroups, removeLabContainers } from './containers.js';
import { MARKER_FILE, STATE_FILE, readState, type LabState } from './state.js';

export interface DownReport {
  killed: number[];
  netnsRemoved: string[];
  unmounted: string[];
  filesRemoved: boolean;
  /** What could not be removed; empty when the lab is entirely gone. */
  leftovers: string[];
}

/** Mount points at or below `dir` in our mount namespace, deepest first. */
export function mountsUnder(dir: string): string[] {
  const abs = resolve(dir);
  let info = '';
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const points = info
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p)
    .map((p) => p.replace(/\\040/g, ' '))
    .filter((p) => p === abs || p.startsWith(abs + '/'));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

function allLabPids(lab: string, state: LabState | undefined): number[] {
  const pids = new Set<number>();
  for (const ns of labNetnsList(lab)) for (const p of pidsIn(ns)) pids.add(p);
  // A daemon recorded in the state file whose namespace is already gone still counts.
  for (const n of state?.nodes ?? []) if (n.proc && isAlive(n.proc)) pids.add(n.proc.pid);
  for (const p of [state?.registry?.proc, state?.dht?.proc]) if (p && isAlive(p)) pids.add(p.pid);
  pids.delete(process.pid);
  return [...pids];
}

export async function labDown(labDir: string, log: (s: string) => void = () => {}): Promise<DownReport> {
  const dir = resolve(labDir);
  const lab = labName(dir);
  let state: LabState | undefined;
  try {
    state = readState(dir);
  } catch (e) {
    log(`warning: ${(e as Error).message}; removing the lab by its names instead`);
  }
  const report: DownReport = { killed: [], netnsRemoved: [], unmounted: [], filesRemoved: false, leftovers: [] };

  // 1. Processes: SIGTERM first so daemons can close cleanly, then SIGKILL what remains.
  let pids = allLabPids(lab, state);
  if (pids.length > 0) log(`stopping ${pids.length} lab process(es): ${pids.join(' ')}`);
  for (const p of pids) tryKill(p, 'SIGTERM');
  if (!(await waitGone(pids, 5000))) {
    for (const p of pids) if (procState(p) !== undefined) tryKill(p, 'SIGKILL');
    await waitGone(pids, 5000);
  }
  report.killed = pids;
  // Anything started in a lab namespace while we waited (a restart racing with us).
  for (let round = 0; round < 3; round++) {
    const more = allLabPids(lab, state).filter((p) => procState(p) !== undefined);
    if (more.length === 0) break;
    for (const p of more) tryKill(p, 'SIGKILL');
    await waitGone(more, 5000);
    report.killed.push(...more);
  }

  // 2. The tasks' containers: they live in pod namespaces of their own and outlive their
  // daemons by design, so they are found through runc and by their root under the lab directory.
  await removeLabContainers(dir, log);

  // 3. Mounts under the lab directory (overlay roots, the runtimes' namespace files, ...).
  for (const m of mountsUnder(dir)) {
    if (tryRun(['umount', '-l', m]).ok) report.unmounted.push(m);
    else report.leftovers.push(`mount ${m}`);
  }

  // 3b. Loop devices of the lab's CSI pool (volumes staged on lab hosts): their backing files
  // are under the lab directory.
  for (const l of loopDevicesUnder(dir)) {
    if (tryRun(['losetup', '-d', l]).ok) report.unmounted.push(l);
    else report.leftovers.push(`loop device ${l}`);
  }

  // 4. Namespaces: hosts first (their veths go with them), the bridge's last.
  const br = bridgeNetns(lab);
  const nss = labNetnsList(lab).sort((a, b) => (a === br ? 1 : b === br ? -1 : a.localeCompare(b)));
  for (const ns of nss) {
    let ok = tryRun(['ip', 'netns', 'del', ns]).ok;
    if (!ok) {
      await sleep(200);
      ok = tryRun(['ip', 'netns', 'del', ns]).ok;
    }
    if (ok) report.netnsRemoved.push(ns);
    else report.leftovers.push(`network namespace ${ns}`);
  }
  if (report.netnsRemoved.length > 0) log(`removed ${report.netnsRemoved.length} network namespace(s)`);

  // 5. The cgroups the lab's runtimes made (all under the lab's own parent).
  report.leftovers.push(...removeLabCgroups(lab));

  // 6. Files. A directory `lab up` marked as its own goes whole. Without the mark, only what a
  // valid state file of this very directory names as the lab's; a foreign directory is left alone.
  // Never while something is still mounted under it: a recursive delete would go into the mount.
  const stillMounted = mountsUnder(dir);
  if (stillMounted.length > 0) {
    report.leftovers.push(`files in ${dir} (kept: ${stillMounted.join(', ')} still mounted; unmount, then run \`shoal lab down\` again)`);
  } else if (existsSync(dir)) {
    if (existsSync(join(dir, MARKER_FILE))) {
      rmSync(dir, { recursive: true, force: true });
      report.filesRemoved = true;
      if (existsSync(dir)) report.leftovers.push(`files in ${dir}`);
    } else if (state && state.labDir === dir) {
      for (const f of [STATE_FILE, `${STATE_FILE}.tmp`, 'nodes', 'logs', 'bin']) rmSync(join(dir, f), { recursive: true, force: true });
      try {
        if (readdirSync(dir).length === 0) rmdirSync(dir);
      } catch {
        /* not ours to insist on */
      }
      report.filesRemoved = true;
    }
  }

  for (const p of allLabPids(lab, undefined)) report.leftovers.push(`process ${p}`);
  for (const ns of labNetnsList(lab)) if (!report.leftovers.includes(`network namespace ${ns}`)) report.leftovers.push(`network namespace ${ns}`);
  return report;
}

function tryKill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** Loop devices whose backing file is under `dir`. */
function loopDevicesUnder(dir: string): string[] {
  const r = spawnSync('losetup', ['--list', '--noheadings', '--raw', '--output', 'NAME,BACK-FILE'], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  const root = dir.endsWith('/') ? dir : `${dir}/`;
  return r.stdout.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 2 && f[1]!.replace(/ \(deleted\)$/, '').startsWith(root)).map((f) => f[0]!);
}
