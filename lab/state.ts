// The lab's one state file (<lab dir>/lab.json): names, namespaces, addresses, pids, state
// directories, tokens. Written atomically and fsynced, so a crash mid-`lab up` leaves either the
// previous version or the new one, never a torn file.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ProcRef } from './procs.js';

export const STATE_FILE = 'lab.json';
/** Written first by `lab up`: marks a directory as the lab's own, so `lab down` may delete it whole. */
export const MARKER_FILE = '.shoal-lab';

export type Role = 'manager' | 'worker';

export interface LabNode {
  name: string;
  role: Role;
  netns: string;
  /** The bridge-side end of its veth (inside the bridge namespace). */
  port: string;
  address: string;
  stateDir: string;
  logFile: string;
  /** The daemon's command line, without the nsenter into its namespace, to restart it the same way. */
  argv: string[];
  proc?: ProcRef;
}

export interface LabState {
  version: 1;
  name: string;
  labDir: string;
  bridgeNetns: string;
  subnet: string;
  /** 'building' until every node is ready, then 'ready'. */
  phase: 'building' | 'ready';
  createdAt: string;
  nodes: LabNode[];
  tokens?: { worker: string; manager: string };
  /** Address other nodes join (the first manager's). */
  joinAddress?: string;
  /** The lab's image registry (lab/registry.ts). */
  registry?: { netns: string; address: string; port: number; image: string; logFile: string; proc?: ProcRef };
  /** How nodes find a manager to join: its address (default), or the join token on the lab's
   * own DHT (`lab up --discovery dht`, lab/dht.ts). */
  discovery?: 'address' | 'dht';
  /** The lab's DHT bootstrap nodes (lab/dht.ts), with --discovery dht. */
  dht?: { netns: string; bootstrap: string; logFile: string; proc?: ProcRef };
}

export function statePath(labDir: string): string {
  return join(labDir, STATE_FILE);
}

export function readState(labDir: string): LabState | undefined {
  const p = statePath(labDir);
  if (!existsSync(p)) return undefined;
  let raw: string;
  try {
    raw = readFileSync(p, 'utf8');
  } catch (e) {
    throw new Error(`cannot read lab state ${p}: ${(e as Error).message}`);
  }
  let s: LabState;
  try {
    s = JSON.parse(raw) as LabState;
  } catch (e) {
    throw new Error(`lab state ${p} is not valid JSON (${(e as Error).message}); run \`shoal lab down --lab-dir ${labDir}\` to remove the lab`);
  }
  if (s.version !== 1 || !Array.isArray(s.nodes)) {
    throw new Error(`lab state ${p} has an unknown format; run \`shoal lab down --lab-dir ${labDir}\` to remove the lab`);
  }
  return s;
}

export function writeState(s: LabState): void {
  const p = statePath(s.labDir);
  const tmp = `${p}.tmp`;
  const fd = openSync(tmp, 'w', 0o600); // tokens inside: root only
  try {
    writeSync(fd, JSON.stringify(s, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, p);
  fsyncDir(dirname(p));
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}
