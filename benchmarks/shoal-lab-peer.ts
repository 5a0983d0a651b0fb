// shoal's side of bench:replicas and bench:failover: a cluster in the one-box lab, driven through
// the lab's public interface: `shoal lab up|stop|down --lab-dir DIR` and `shoal --lab --lab-dir
// DIR service create|rm`, `node update` (this checkout's dist/cli/main.js, not whatever `shoal` is
// on the PATH). The image is the one the lab's registry serves (lab.json's registry.image).
//
// Watching: the tasks and nodes `service ps --format json` and `node ls --format json` print,
// read through the same control client and JSON mapping the CLI uses (cli/client.ts,
// cli/service.ts taskJson, cli/format.ts nodeJson) on the socket `shoal --lab` picks, without a
// process per look: a `shoal` process takes 0.5 s of CPU to start, several seconds on a loaded
// machine, which would make the poll far coarser than the Docker side's (its API, every 100 ms)
// and load the 2 cores while shoal works. The times reported are the systems' own records of
// when each task reached running (tasks' `timestamps.running`), so the poll only decides when
// to stop looking.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { call, controlClient } from '../cli/client.js';
import { nodeJson } from '../cli/format.js';
import { taskJson } from '../cli/service.js';
import { labCgroup, labName } from '../lab/names.js';
import { labTarget } from '../lab/ops.js';
import { procState } from '../lab/netns.js';
import { sleep } from '../lab/procs.js';
import { BENCH_CMD } from './swarm-peer.js';

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'cli', 'main.js');
/** What the lab's registry serves, if lab.json does not say (lab/registry.ts LAB_IMAGE). */
const DEFAULT_IMAGE = '10.99.0.2:5000/busybox:1';

export type ShoalTask = ReturnType<typeof taskJson>;
export type ShoalNode = ReturnType<typeof nodeJson>;

const active = new Set<string>();
let seq = 0;

/** `shoal lab down --lab-dir DIR`; what it could not remove. */
function labDown(dir: string): string[] {
  if (!active.has(dir)) return [];
  const r = spawnSync(process.execPath, [CLI, 'lab', 'down', '--lab-dir', dir], { encoding: 'utf8', timeout: 120_000 });
  active.delete(dir);
  return r.status === 0 ? [] : [`lab ${dir} (lab down: ${(r.stderr || r.stdout || r.error?.message || '').trim().split('\n').slice(-3).join(' / ')})`];
}

/** The shoal CLI processes running now: a `lab up` still building must stop before `lab down`
 * removes the lab, or it would go on creating what the removal just swept. */
const children = new Set<ChildProcess>();

/** `shoal lab down` for every lab this process has up (for signal handlers). */
export async function downActiveLabs(): Promise<string[]> {
  for (const c of children) c.kill('SIGKILL');
  const end = Date.now() + 5000;
  while ([...children].some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < end) await sleep(20);
  return [...active].flatMap(labDown);
}

function runCli(args: string[], timeoutMs = 120_000, onLine?: (l: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(c);
    c.on('exit', () => children.delete(c));
    let out = '';
    let err = '';
    let partial = '';
    c.stdout.on('data', (d: Buffer) => {
      out += d;
      if (!onLine) return;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const l of lines) onLine(l);
    });
    c.stderr.on('data', (d: Buffer) => (err += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', (e) => { clearTimeout(timer); reject(e); });
    c.on('close', (code, sig) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`shoal ${args.join(' ')} failed (${code ?? sig}): ${(err || out).trim().split('\n').slice(-8).join('\n')}`));
    });
  });
}

export interface ReplicasResult {
  seconds: number;
  observedSeconds: number;
}

export interface FailoverResult {
  downSeconds: number;
  seconds: number;
  observedSeconds: number;
}

export class ShoalLab {
  private services = new Set<string>();
  private client?: ReturnType<typeof controlClient>;
  private clientSocket = '';

  private constructor(readonly dir: string, readonly image: string, private readonly log: (s: string) => void) {}

  /** `shoal lab up` with `managers` + `workers` and no demo service; progress goes to `log`. */
  static async up(o: { managers: number; workers: number; log?: (s: string) => void }): Promise<ShoalLab> {
    const log = o.log ?? (() => {});
    const dir = join(tmpdir(), `shoal-bench-lab-${process.pid}-${++seq}`);
    active.add(dir);
    const t0 = Date.now();
    try {
      await runCli(['lab', 'up', '--lab-dir', dir, '--managers', String(o.managers), '--workers', String(o.workers), '--demo', '0'], 300_000, (l) => {
        if (/^\[\s*[\d.]+s\]/.test(l)) log(`shoal: ${l}`);
      });
    } catch (e) {
      const left = labDown(dir);
      throw new Error(`${(e as Error).message}${left.length ? `\n(could not remove: ${left.join(', ')})` : ''}`);
    }
    let image = DEFAULT_IMAGE;
    try {
      image = (JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8')) as { registry?: { image?: string } }).registry?.image ?? DEFAULT_IMAGE;
    } catch { /* the default */ }
    log(`shoal: lab of ${o.managers} manager(s) + ${o.workers} worker(s) ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (${dir}); image ${image}`);
    return new ShoalLab(dir, image, log);
  }

  shoal(args: string[], timeoutMs = 120_000): Promise<string> {
    return runCli(['--lab', '--lab-dir', this.dir, ...args], timeoutMs);
  }

  /** A control client on the socket `shoal --lab` would use now (a live manager's). */
  private ctl(): ReturnType<typeof controlClient> {
    const t = labTarget(this.dir);
    if (!this.client || this.clientSocket !== t.socket) {
      this.client?.close();
      this.client = controlClient({ stateDir: t.stateDir });
      this.clientSocket = t.socket;
    }
    return this.client;
  }

  /** A control-API call on the manager `shoal --lab` would use (no CLI process per call). */
  api(method: string, req: object, timeoutMs = 30_000): Promise<any> {
    return call(this.ctl(), method, req, timeoutMs);
  }

  /** What `shoal --lab service ps NAME --format json` prints. */
  async tasks(service: string): Promise<ShoalTask[]> {
    return ((await call(this.ctl(), 'ListTasks', { service, node: '' }, 10_000)).tasks ?? []).map(taskJson);
  }

  /** What `shoal --lab node ls --format json` prints. */
  async nodes(): Promise<ShoalNode[]> {
    return ((await call(this.ctl(), 'ListNodes', {}, 10_000)).nodes ?? []).map(nodeJson);
  }

  static running(tasks: ShoalTask[], o: { on?: string; notOn?: string } = {}): ShoalTask[] {
    return tasks.filter((t) => t.desiredState === 'running' && t.state === 'running' && (!o.on || t.node === o.on) && (!o.notOn || t.node !== o.notOn));
  }

  private static problems(tasks: ShoalTask[]): string {
    const s = [...new Set(tasks.filter((t) => t.desiredState === 'running' && t.state !== 'running').map((t) => `${t.state}${t.error ? `: ${t.error}` : t.message ? ` (${t.message})` : ''}`))];
    return s.length ? ` (others: ${s.slice(0, 4).join('; ')})` : '';
  }

  async createService(p: { name: string; replicas: number; constraints?: string[] }): Promise<number> {
    this.services.add(p.name);
    const args = ['service', 'create', '--detach', '--name', p.name, '--replicas', String(p.replicas), '--stop-grace-period', '1s'];
    for (const c of p.constraints ?? []) args.push('--constraint', c);
    const t0 = Date.now();
    await this.shoal([...args, this.image, ...BENCH_CMD]);
    return t0;
  }

  async waitRunning(service: string, n: number, o: { on?: string; notOn?: string; timeoutMs?: number } = {}): Promise<{ tasks: ShoalTask[]; seenAt: number }> {
    const ms = o.timeoutMs ?? 180_000;
    const end = Date.now() + ms;
    for (;;) {
      const all = await this.tasks(service);
      const run = ShoalLab.running(all, o);
      if (run.length >= n) return { tasks: run, seenAt: Date.now() };
      if (Date.now() > end) throw new Error(`shoal: ${service}: ${run.length}/${n} tasks running after ${ms / 1000} s${ShoalLab.problems(all)}`);
      await sleep(100);
    }
  }

  private static lastRunning(tasks: ShoalTask[]): number {
    return Math.max(...tasks.map((t) => {
      const at = t.timestamps['running'];
      if (!at) throw new Error(`shoal: task ${t.name} is running but has no running timestamp`);
      return Date.parse(at);
    }));
  }

  async timeReplicas(service: string, n: number): Promise<ReplicasResult> {
    const t0 = await this.createService({ name: service, replicas: n });
    const { tasks, seenAt } = await this.waitRunning(service, n);
    return { seconds: (ShoalLab.lastRunning(tasks) - t0) / 1000, observedSeconds: (seenAt - t0) / 1000 };
  }

  /** Processes in the pod cgroups of `node` (or of every node): the tasks' containers. */
  podPids(node?: string): number[] {
    const root = join('/sys/fs/cgroup/pids', labCgroup(labName(this.dir), node));
    const pids: number[] = [];
    const walk = (d: string): void => {
      let ents: import('node:fs').Dirent[];
      try {
        ents = readdirSync(d, { withFileTypes: true });
      } catch {
        return;
      }
      try {
        for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l.trim() && procState(Number(l)) !== undefined) pids.push(Number(l));
      } catch { /* gone */ }
      for (const e of ents) if (e.isDirectory()) walk(join(d, e.name));
    };
    if (existsSync(root)) walk(root);
    return pids;
  }

  private async until(what: string, ms: number, f: () => Promise<boolean> | boolean): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      if (await Promise.resolve().then(f).catch(() => false)) return;
      if (Date.now() > end) throw new Error(`shoal: ${what}: not within ${ms / 1000} s`);
      await sleep(250);
    }
  }

  /** `shoal service rm`, then waits until no task container is left on the lab's nodes. */
  async removeService(service: string): Promise<void> {
    await this.shoal(['service', 'rm', service]);
    this.services.delete(service);
    await this.until(`${service}'s containers to go`, 90_000, () => this.podPids().length === 0);
  }

  /**
   * The same procedure as the Swarm side (swarm-peer.ts failover): N replicas constrained to
   * workers, worker-2 drained (its tasks move to worker-1) until its containers are gone, set
   * active again, 2 s with all N on worker-1; then `shoal lab stop worker-1 --signal KILL`. The
   * clock starts when that shoald is gone (seen every 5 ms), not when the CLI was called.
   */
  async failover(service: string, n: number): Promise<FailoverResult> {
    await this.createService({ name: service, replicas: n, constraints: ['node.role==worker'] });
    await this.waitRunning(service, n);
    await this.shoal(['node', 'update', '--availability', 'drain', 'worker-2']);
    await this.waitRunning(service, n, { on: 'worker-1' });
    await this.until(`${service}'s containers to leave worker-2`, 60_000, () => this.podPids('worker-2').length === 0);
    await this.shoal(['node', 'update', '--availability', 'active', 'worker-2']);
    await sleep(2000);
    const before = ShoalLab.running(await this.tasks(service));
    if (before.length !== n || before.some((t) => t.node !== 'worker-1')) throw new Error(`shoal: before the kill, expected ${n} tasks running on worker-1; found ${before.length} running, ${before.filter((t) => t.node !== 'worker-1').length} elsewhere`);

    const state = JSON.parse(readFileSync(join(this.dir, 'lab.json'), 'utf8')) as { nodes: { name: string; proc?: { pid: number } }[] };
    const pid = state.nodes.find((x) => x.name === 'worker-1')?.proc?.pid;
    if (!pid || procState(pid) === undefined) throw new Error('shoal: worker-1\'s shoald is not running before the kill');
    this.log(`shoal: ${n} tasks running on worker-1; shoal lab stop worker-1 --signal KILL (shoald pid ${pid})`);
    const stopping = runCli(['lab', 'stop', 'worker-1', '--signal', 'KILL', '--lab-dir', this.dir]);
    stopping.catch(() => undefined);
    const killEnd = Date.now() + 30_000;
    while (procState(pid) !== undefined) {
      if (Date.now() > killEnd) throw new Error(`shoal: worker-1's shoald (pid ${pid}) still runs 30 s after \`lab stop --signal KILL\``);
      await sleep(5);
    }
    const t0 = Date.now();
    await stopping;

    let downAt: number | undefined;
    let seenAt: number | undefined;
    let tasks: ShoalTask[] = [];
    const end = t0 + 180_000;
    while (downAt === undefined || seenAt === undefined) {
      if (downAt === undefined && (await this.nodes()).find((x) => x.hostname === 'worker-1')?.status === 'down') downAt = Date.now();
      if (seenAt === undefined) {
        const all = await this.tasks(service);
        const moved = ShoalLab.running(all, { notOn: 'worker-1' });
        if (moved.length >= n) {
          seenAt = Date.now();
          tasks = moved;
        } else if (Date.now() > end) {
          throw new Error(`shoal: ${moved.length}/${n} tasks running off worker-1 ${(Date.now() - t0) / 1000} s after the kill${ShoalLab.problems(all)}`);
        }
      }
      if (Date.now() > end) throw new Error(`shoal: worker-1 not marked down ${(Date.now() - t0) / 1000} s after the kill`);
      await sleep(100);
    }
    return { downSeconds: (downAt - t0) / 1000, seconds: (ShoalLab.lastRunning(tasks) - t0) / 1000, observedSeconds: (seenAt - t0) / 1000 };
  }

  /** `shoal lab down` (every process, container, namespace, mount, cgroup and file of the lab). */
  async down(): Promise<string[]> {
    this.client?.close();
    this.client = undefined;
    return labDown(this.dir);
  }
}
