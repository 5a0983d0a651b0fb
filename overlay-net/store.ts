// The plugin's durable record under --state: the cluster view it last accepted (with its
// version) and the pods it attached. Written whole: tmp file, fsync, rename, fsync of the folder.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterState } from '../proto/network/types.js';
import type { Endpoint } from './pod.js';
import { emptyState, normState } from './state.js';

export interface Saved {
  version: number;
  state: ClusterState;
  endpoints: Endpoint[];
}

const FILE = 'network-state.json';

export function loadSaved(dir: string): Saved {
  let text: string;
  try {
    text = readFileSync(join(dir, FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 0, state: emptyState(), endpoints: [] };
    throw e;
  }
  let j: Saved;
  try {
    j = JSON.parse(text) as Saved;
  } catch (e) {
    throw new Error(`${join(dir, FILE)} is not valid JSON (${(e as Error).message}); move it away to start from an empty state (the reconcile then removes every pod interface the plugin made)`);
  }
  return { version: Number(j.version ?? 0), state: normState(j.state), endpoints: Array.isArray(j.endpoints) ? j.endpoints : [] };
}

export function save(dir: string, s: Saved): void {
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `${FILE}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(s));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, FILE));
  const d = openSync(dir, 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}
