// The lab's day-to-day commands: status, exec on a host, stop/start a node's daemon, and the
// target the CLI uses for `shoal --lab ...`.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { labName } from './names.js';
import { labNetnsList, netnsExists, pidsIn } from './netns.js';
import { findNode } from './plan.js';
import { isAlive, signal, waitGone } from './procs.js';
import { startDaemon } from './shoald.js';
import { readState, writeState, type LabNode, type LabState } from './state.js';

/** Environment variable naming the lab directory (instead of --lab-dir). */
export const LAB_DIR_ENV = 'SHOAL_LAB_DIR';

export function loadLab(labDir: string): LabState {
  const dir = resolve(labDir);
  const s = readState(dir);
  if (!s) {
    const nss = labNetnsList(labName(dir));
    const hint = nss.length > 0 ? ` (but ${nss.length} of its network namespaces exist: a crashed \`lab up\`? remove them with \`shoal lab down --lab-dir ${dir}\`)` : '; start one with `shoal lab up`';
    throw new Error(`no lab in ${dir}${hint}`);
  }
  return s;
}

export interface NodeStatus {
  name: string;
  role: string;
  netns: string;
  address: string;
  pid: number | null;
  running: boolean;
  netnsPresent: boolean;
  stateDir: string;
  logFile: string;
}

export function labStatus(s: LabState): { name: string; labDir: string; phase: string; bridgeNetns: string; subnet: string; nodes: NodeStatus[] } {
  return {
    name: s.name,
    labDir: s.labDir,
    phase: s.phase,
    bridgeNetns: s.bridgeNetns,
    subnet: s.subnet,
    nodes: s.nodes.map((n) => ({
      name: n.name,
      role: n.role,
      netns: n.netns,
      address: n.address,
      pid: n.proc && isAlive(n.proc) ? n.proc.pid : null,
      running: isAlive(n.proc),
      netnsPresent: netnsExists(n.netns),
      stateDir: n.stateDir,
      logFile: n.logFile,
    })),
  };
}

/** Runs CMD on a lab host with the terminal attached; resolves to its exit status. Inside,
 * SHOAL_STATE_DIR points at the host's node and the lab's `bin/shoal` is first on PATH, so a
 * plain `shoal ...` there talks to that node. */
export function labExec(s: LabState, node: string, cmd: string[]): Promise<number> {
  const n = findNode(s, node);
  if (cmd.length === 0) throw new Error('lab exec needs a command after `--`, e.g. `shoal lab exec manager-1 -- ip addr`');
  if (!netnsExists(n.netns)) throw new Error(`${n.name}'s network namespace ${n.netns} does not exist; the lab is incomplete (see \`shoal lab status\`)`);
  return new Promise((resolveExit, reject) => {
    const bin = join(s.labDir, 'bin');
    const PATH = existsSync(bin) ? `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` : process.env.PATH;
    const child = spawn('nsenter', [`--net=/run/netns/${n.netns}`, '--', ...cmd], { stdio: 'inherit', env: { ...process.env, PATH, SHOAL_STATE_DIR: n.stateDir } });
    child.once('error', (e) => reject(new Error(`could not run ${cmd[0]} on ${n.name}: ${e.message}`)));
    child.once('exit', (code, sig) => resolveExit(code ?? (sig ? 128 + (({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2 } as Record<string, number>)[sig] ?? 1) : 1)));
  });
}

/** Stops a node's shoald (SIGTERM by default; SIGKILL to simulate a crash). */
export async function labStop(s: LabState, node: string, sig: NodeJS.Signals): Promise<{ pid: number } | undefined> {
  const n = findNode(s, node);
  if (!n.proc || !isAlive(n.proc)) return undefined;
  const pid = n.proc.pid;
  signal(n.proc, sig);
  if (!(await waitGone([pid], 15_000))) throw new Error(`${n.name}'s shoald (pid ${pid}) did not exit within 15 s of ${sig}; try --signal KILL`);
  return { pid };
}

/** Starts a stopped node's shoald again, with the same state directory (same identity). */
export async function labStart(s: LabState, node: string): Promise<LabNode> {
  const n = findNode(s, node);
  if (!netnsExists(n.netns)) throw new Error(`${n.name}'s network namespace ${n.netns} does not exist; the lab is incomplete, rebuild it (lab down, lab up)`);
  // The recorded pid may be stale (a lost update, a hand-started daemon): ask the namespace.
  const live = shoaldIn(n);
  if (live) throw new Error(`${n.name}'s shoald is already running (pid ${live}); stop it first with \`shoal lab stop ${n.name}\``);
  await startDaemon(n, s.name, undefined, s.dht?.bootstrap);
  writeState(s);
  return n;
}

/** Where `shoal --lab` sends control-API calls: a manager whose daemon runs. Its local Unix
 * socket (<state dir>/shoald.sock) is a file, so the CLI reaches it from any namespace; `netns`
 * is given for callers that prefer to run inside the host. */
export interface LabTarget {
  node: string;
  netns: string;
  address: string;
  stateDir: string;
  socket: string;
}

export function labTarget(labDir: string): LabTarget {
  const s = loadLab(labDir);
  const managers = s.nodes.filter((n) => n.role === 'manager');
  const live = managers.find((n) => isAlive(n.proc) && existsSync(join(n.stateDir, 'shoald.sock')));
  if (!live) {
    throw new Error(`no manager of the lab in ${s.labDir} is running (${managers.map((m) => m.name).join(', ')}); see \`shoal lab status\` or start one with \`shoal lab start NODE\``);
  }
  return { node: live.name, netns: live.netns, address: live.address, stateDir: live.stateDir, socket: join(live.stateDir, 'shoald.sock') };
}

/** A shoald of this node running in its namespace, whatever the state file says. */
function shoaldIn(n: LabNode): number | undefined {
  for (const pid of pidsIn(n.netns)) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (cmd.some((a) => a.endsWith('node/main.js')) && cmd[cmd.indexOf('--state-dir') + 1] === n.stateDir) return pid;
    } catch {
      /* gone */
    }
  }
  return undefined;
}
