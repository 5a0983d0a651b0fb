// `shoal lab up`: plans the lab, builds its network, starts one shoald per host, runs
// `shoal init` on the first manager and `shoal join` on the others, and waits until `node ls`
// shows every node ready. Progress is printed as it goes; on failure the half-built lab stays for
// inspection and `shoal lab down` removes it.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { labName } from './names.js';
import { labNetnsList } from './netns.js';
import { tryRun } from './sh.js';
import { buildNetwork, faultPoint } from './network.js';
import { planLab } from './plan.js';
import { isAlive, sleep } from './procs.js';
import { API_PORT, checkInstalled, cli, joinNode, nodeList, startDaemon, writeShoalWrapper, type NodeRow } from './shoald.js';
import { MARKER_FILE, STATE_FILE, ensureDir, fsyncDir, readState, writeState, type LabState } from './state.js';
import { LAB_IMAGE, startLabRegistry } from './registry.js';
import { startLabDht } from './dht.js';

export interface UpOptions {
  labDir: string;
  managers: number;
  workers: number;
  log: (line: string) => void;
  /** How long to wait for all nodes to be ready after the last join. */
  readyTimeoutMs?: number;
  /** Replicas of the demo service started at the end (0: none). */
  demoReplicas?: number;
  /** How the other nodes find a manager: by its address (default), or by the join token alone on
   * the lab's own DHT. */
  discovery?: 'address' | 'dht';
}

export const DEMO_SERVICE = 'demo';
/** The demo's published port, on every node (the routing mesh). */
export const DEMO_PORT = 8080;

/** `lab up` refused before it made anything: nothing half-built to point at. */
export class LabPreflightError extends Error {}

/** Refuses to build over an existing lab or into a directory that is not a lab's. */
export function preflight(labDir: string): void {
  const dir = resolve(labDir);
  if (process.getuid && process.getuid() !== 0) throw new LabPreflightError('shoal lab needs root (it creates network namespaces); run it with sudo');
  if (!tryRun(['ip', '-V']).ok) throw new LabPreflightError('shoal lab needs the `ip` command of iproute2 (apt-get install iproute2)');
  let existing: LabState | undefined;
  try {
    existing = readState(dir);
  } catch {
    existing = undefined;
  }
  const nss = labNetnsList(labName(dir));
  if (existing || nss.length > 0) {
    throw new LabPreflightError(`a lab already exists in ${dir} (${nss.length} network namespace(s)${existing ? ', state file present' : ''}); remove it first with \`shoal lab down --lab-dir ${dir}\``);
  }
  if (existsSync(dir)) {
    const entries = readdirSync(dir).filter((e) => e !== MARKER_FILE);
    if (entries.length > 0 && !existsSync(join(dir, MARKER_FILE))) {
      throw new LabPreflightError(`${dir} is not empty and is not a lab directory (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); choose another --lab-dir`);
    }
    if (entries.length > 0) {
      throw new LabPreflightError(`${dir} holds leftovers of an earlier lab (${entries.slice(0, 3).join(', ')}); remove them with \`shoal lab down --lab-dir ${dir}\``);
    }
  }
}

export async function labUp(o: UpOptions): Promise<{ state: LabState; nodes: NodeRow[] }> {
  const s = planLab(o.labDir, o.managers, o.workers);
  const byDht = o.discovery === 'dht';
  s.discovery = o.discovery ?? 'address';
  preflight(s.labDir);
  checkInstalled();
  const t0 = Date.now();
  const step = (msg: string) => o.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}`);

  ensureDir(s.labDir);
  writeFileSync(join(s.labDir, MARKER_FILE), 'made by `shoal lab up`; `shoal lab down` removes this directory\n');
  fsyncDir(s.labDir);
  writeState(s); // the plan first: `lab down` knows every name before anything exists
  writeShoalWrapper(s.labDir);
  step(`lab "${s.name}" in ${s.labDir}: ${o.managers} manager(s), ${o.workers} worker(s)${byDht ? ', joining by token on the lab DHT' : ''}`);

  buildNetwork(s, step);
  await startLabRegistry(s, step);
  writeState(s);
  if (byDht) {
    await startLabDht(s, step);
    writeState(s);
  }

  // Daemons are independent until init/join, so start them all at once.
  step(`starting ${s.nodes.length} shoald daemons`);
  await Promise.all(
    s.nodes.map(async (n) => {
      await startDaemon(n, s.name, undefined, s.dht?.bootstrap);
      step(`shoald on ${n.name} ready (pid ${n.proc!.pid}, log ${n.logFile})`);
    }),
  );
  writeState(s);
  faultPoint('after-daemons', s.nodes.length);

  const [first, ...rest] = s.nodes;
  if (!first) throw new Error('a lab needs at least one manager');
  const init = JSON.parse(await cli(first, ['init', '--format', 'json'])) as { workerToken?: string; managerToken?: string };
  if (!init.workerToken || !init.managerToken) throw new Error(`\`shoal init --format json\` on ${first.name} printed no join tokens`);
  const worker = init.workerToken;
  const manager = init.managerToken;
  s.tokens = { worker, manager };
  const joinAddress = `${first.address}:${API_PORT}`;
  s.joinAddress = joinAddress;
  writeState(s);
  step(`cluster initialised on ${first.name} (${joinAddress})`);

  // With --discovery dht the others get the token only: their shoald finds a manager on the DHT.
  const via = byDht ? undefined : joinAddress;
  const how = byDht ? ' (found on the DHT by the token)' : '';
  // Managers one at a time (each is a raft membership change); workers meanwhile, all together.
  const managersJoin = (async () => {
    for (const n of rest.filter((x) => x.role === 'manager')) {
      await joinNode(n, manager, via);
      step(`${n.name} joined as manager${how}`);
    }
  })();
  const workersJoin = Promise.all(
    rest
      .filter((x) => x.role === 'worker')
      .map(async (n) => {
        await joinNode(n, worker, via);
        step(`${n.name} joined as worker${how}`);
      }),
  );
  await Promise.all([managersJoin, workersJoin]);

  step('waiting until every node is ready');
  const rows = await waitAllReady(s, o.readyTimeoutMs ?? 120_000, step);
  s.phase = 'ready';
  writeState(s);
  step(`all ${rows.length} nodes ready`);
  const demo = o.demoReplicas ?? Math.max(2, 2 * o.workers);
  if (demo > 0) {
    step(`starting the demo service: ${demo} replicas of ${LAB_IMAGE}${o.workers > 0 ? ' on the workers' : ''}`);
    // Published through the routing mesh: port 8080 of every node answers; tasks reach it as `demo`.
    const args = ['service', 'create', '--name', DEMO_SERVICE, '--replicas', String(demo), '--publish', `${DEMO_PORT}:80`, '--timeout', '2m'];
    if (o.workers > 0) args.push('--constraint', 'node.role==worker');
    args.push(LAB_IMAGE, 'sh', '-c', 'echo "demo task $SHOAL_TASK_NAME on $SHOAL_NODE_HOSTNAME"; exec httpd -f -p 80 -h /www');
    const outText = await cli(first, args, 180_000);
    for (const line of outText.trimEnd().split('\n').slice(1)) step(`demo: ${line}`);
  }
  return { state: s, nodes: rows };
}

/** Polls `node ls` on a live manager until it lists every lab node as ready. */
export async function waitAllReady(s: LabState, timeoutMs: number, progress: (line: string) => void = () => {}): Promise<NodeRow[]> {
  const end = Date.now() + timeoutMs;
  let last = '';
  let shown = '';
  for (;;) {
    for (const m of s.nodes.filter((n) => n.role === 'manager' && isAlive(n.proc))) {
      try {
        const rows = await nodeList(m);
        const ready = rows.filter((r) => r.status === 'ready');
        if (ready.length === s.nodes.length && s.nodes.every((n) => rows.some((r) => r.hostname === n.name && r.status === 'ready'))) return rows;
        last = `${ready.length}/${s.nodes.length} ready: ${rows.map((r) => `${r.hostname}=${r.status}`).join(' ')}`;
        if (last !== shown) progress((shown = last));
      } catch (e) {
        last = (e as Error).message;
      }
      break;
    }
    if (Date.now() > end) throw new Error(`not every node became ready within ${timeoutMs / 1000} s (${last}); logs are in ${join(s.labDir, 'logs')}`);
    await sleep(250);
  }
}

export { STATE_FILE };
