// Shared by the services tests on a real lab: the shoal CLI against the lab (asynchronous, so a
// test can act while a command runs), a service's tasks as `service ps --format json` shows them,
// and what really runs on each lab host, seen two ways: through the node's CRI socket (the
// runtime's own listing) and through runc itself.
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { criClient } from '../node/cri/client.js';
import { readState, type LabNode } from '../lab/state.js';
import { CLI_MAIN, labDirFor } from './lab-helpers.js';

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TaskRow {
  id: string;
  name: string;
  slot: number;
  node: string | null;
  nodeId: string | null;
  desiredState: string;
  state: string;
  message: string;
  error: string;
  exitCode: number | null;
  oomKilled: boolean;
  containerId: string | null;
  serviceId: string;
  timestamps: Record<string, string>;
}

interface ClusterView {
  leader: { hostname: string };
  managers: { hostname: string; voter: boolean; reachability: string; match: number; lag: number }[];
}

export class Lab {
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(t: { teardown: (fn: () => unknown) => void }, tag: string) {
    this.dir = labDirFor(t, tag);
    this.env = { ...process.env, SHOAL_LAB_DIR: this.dir };
  }

  /** `shoal ARGS` in the root namespace (with --lab where the test says so). */
  /** The CLI's own --timeout bounds what it waits for; this only stops a CLI that hangs. */
  shoal(args: string[], timeoutMs = 20 * 60_000, env: Record<string, string> = {}): Promise<Ran> {
    return new Promise((resolve) => {
      execFile(process.execPath, [CLI_MAIN, ...args], { env: { ...this.env, ...env }, timeout: timeoutMs, maxBuffer: 32 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }

  async ok(args: string[], timeoutMs?: number): Promise<string> {
    const r = await this.shoal(args, timeoutMs);
    if (r.code !== 0) throw new Error(`shoal ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  async tasks(service: string): Promise<TaskRow[]> {
    const r = await this.shoal(['--lab', 'service', 'ps', service, '--format', 'json'], 30_000);
    if (r.code !== 0) throw new Error(`service ps ${service}: ${r.stderr}`);
    return JSON.parse(r.stdout) as TaskRow[];
  }

  /** The tasks that should run now: the newest of each slot (or node), wanted running. */
  async live(service: string): Promise<TaskRow[]> {
    return (await this.tasks(service)).filter((t) => t.desiredState === 'running');
  }

  /**
   * The leader's name once it sees `n` managers as voters that answer it (raft reachability
   * is the leader's recent contact: a manager restarted, or one slow for an election timeout on
   * a loaded machine, is briefly unreachable, and membership changes are refused meanwhile).
   */
  async leaderWithReachableVoters(n: number): Promise<{ leader: string; waitedMs: number }> {
    const t0 = Date.now();
    const leader = await eventually(`a leader that sees all ${n} managers as reachable voters`, async (saw) => {
      const c = JSON.parse(await this.ok(['--lab', 'cluster', 'inspect', '--format', 'json'])) as ClusterView;
      saw({ leader: c.leader.hostname, managers: c.managers.map((m) => `${m.hostname} ${m.voter ? 'voter' : 'learner'} ${m.reachability} match ${m.match} lag ${m.lag}`) });
      const ok = c.leader.hostname && c.managers.length === n && c.managers.every((m) => m.voter && m.reachability === 'reachable' && m.match > 0);
      return ok ? c.leader.hostname : undefined;
    });
    return { leader, waitedMs: Date.now() - t0 };
  }

  node(name: string): LabNode {
    const n = readState(this.dir)!.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no lab node ${name}`);
    return n;
  }

  nodes(): LabNode[] {
    return readState(this.dir)!.nodes;
  }

  /** Running containers on a host as runc sees them (its own state dir under the runtime's root). */
  runcRunning(node: string): string[] {
    const root = join(this.node(node).stateDir, 'runtime', 'runc');
    const r = spawnSync('runc', ['--root', root, 'list', '--format', 'json'], { encoding: 'utf8' });
    if (r.status !== 0) return [];
    const list = (JSON.parse(r.stdout || 'null') ?? []) as { id: string; status: string }[];
    return list.filter((c) => c.status === 'running').map((c) => c.id).sort();
  }

  /** True once the host's runtime answers on its CRI socket. */
  async criAnswers(node: string): Promise<boolean> {
    const c = criClient(join(this.node(node).stateDir, 'cri.sock'), 10_000);
    try {
      await c.runtime.ListContainers({});
      return true;
    } catch {
      return false;
    } finally {
      c.close();
    }
  }

  /**
   * Running containers of a service on a host with the task and slot each belongs to (their CRI
   * labels), through the host's CRI socket. Unlike criRunning, a runtime that does not answer is
   * an error, not "none": a count that silently left out a busy host would be wrong.
   */
  async criContainers(node: string, serviceId: string): Promise<{ id: string; taskId: string; slot: number; node: string }[]> {
    const c = criClient(join(this.node(node).stateDir, 'cri.sock'), 10_000);
    try {
      const r = await c.runtime.ListContainers({ filter: { label_selector: { 'io.shoal.managed': 'true', 'io.shoal.service.id': serviceId }, state: { state: 1 } } });
      return ((r.containers ?? []) as { id: string; labels?: Record<string, string> }[])
        .map((x) => ({ id: x.id, taskId: x.labels?.['io.shoal.task.id'] ?? '', slot: Number(x.labels?.['io.shoal.task.slot'] ?? 0), node }))
        .sort((a, b) => a.slot - b.slot || (a.id < b.id ? -1 : 1));
    } catch (e) {
      throw new Error(`${node}'s runtime did not list its containers: ${(e as Error).message}`);
    } finally {
      c.close();
    }
  }

  /** Running containers of a service on a host, through the host's CRI socket. */
  async criRunning(node: string, serviceId?: string): Promise<string[]> {
    const c = criClient(join(this.node(node).stateDir, 'cri.sock'), 10_000);
    try {
      const sel: Record<string, string> = { 'io.shoal.managed': 'true' };
      if (serviceId) sel['io.shoal.service.id'] = serviceId;
      const r = await c.runtime.ListContainers({ filter: { label_selector: sel, state: { state: 1 } } });
      return ((r.containers ?? []) as { id: string }[]).map((x) => x.id).sort();
    } catch {
      return []; // a stopped daemon's runtime has no socket
    } finally {
      c.close();
    }
  }
}

/** A compact line per task (name, node, state/desired state, readiness, error), for failures. */
export function describeTasks(ts: TaskRow[]): string {
  return ts
    .map((x) => {
      const r = x as TaskRow & { ready?: boolean | null; upToDate?: boolean };
      return `${x.name}@${x.node ?? '-'} ${x.state}/${x.desiredState}${r.ready === false ? ' not-ready' : ''}${r.upToDate === false ? ' old-spec' : ''}${x.error ? ` (${x.error.slice(0, 120)})` : ['orphaned', 'preparing', 'starting'].includes(x.state) && x.message ? ` (${x.message.slice(0, 160)})` : ''}`;
    })
    .join('; ');
}

function describe(v: unknown): string {
  if (Array.isArray(v) && v.every((x) => x && typeof x === 'object' && 'slot' in x && 'state' in x)) return `${v.length} task(s): ${describeTasks(v as TaskRow[])}`;
  // JSON.stringify gives undefined (not a string) for undefined and functions.
  const s = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  return s.length > 2000 ? `${s.slice(0, 2000)}...` : s;
}

/**
 * Polls `f` until it returns something truthy; the deadline only turns a hang into a failure,
 * which says what was last seen: `f` passes what it looked at through `saw` (tasks are shown a
 * line each), or throws. Each poll is a CLI process (a few hundred ms of CPU), so once a second.
 */
export async function eventually<T>(what: string, f: (saw: <V>(v: V) => V) => Promise<T | undefined | false | null>, ms = 120_000, every = 1000): Promise<T> {
  const end = Date.now() + ms;
  let last = '(nothing yet)';
  let seen: string | undefined;
  const saw = <V>(v: V): V => {
    seen = describe(v);
    return v;
  };
  for (;;) {
    seen = undefined;
    try {
      const v = await f(saw);
      if (v) return v;
      last = seen ?? JSON.stringify(v);
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}; last seen: ${last}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Exactly `n` live tasks, all running, one per slot: what `converged` means. */
export function converged(tasks: TaskRow[], n: number): boolean {
  const live = tasks.filter((t) => t.desiredState === 'running');
  const slots = new Set(live.map((t) => t.slot));
  return live.length === n && slots.size === n && live.every((t) => t.state === 'running');
}
