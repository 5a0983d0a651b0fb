// `shoal service ...` and `shoal task ...`: services and tasks through the control API. create
// and scale wait for the service to converge and show each slot's progress (--detach returns at
// once); logs stream the tasks' container output through the managers.
import { CliError, call, controlClient, type Target } from './client.js';
import { duration, bytes, cpus, splitWords } from './units.js';
import { table } from './format.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

export interface Flags {
  one(k: string): string | undefined;
  all(k: string): string[];
  has(k: string): boolean;
}

export const SERVICE_FLAGS = [
  'name', 'replicas', 'mode', 'completions', 'max-concurrent', 'env', 'workdir', 'user', 'label', 'constraint', 'placement-pref',
  'reserve-cpu', 'reserve-memory', 'limit-cpu', 'limit-memory', 'restart-condition', 'restart-delay', 'restart-max-attempts', 'restart-window',
  'stop-grace-period', 'stop-signal', 'entrypoint', 'sidecar', 'init', 'detach', 'timeout', 'follow', 'tail', 'timestamps', 'service', 'node', 'quiet',
];
export const SERVICE_BOOL = ['detach', 'follow', 'timestamps', 'quiet'];

export function taskJson(t: any) {
  const ts: Record<string, string> = {};
  for (const [k, v] of Object.entries(t.timestamps ?? {})) ts[k] = new Date(Number(v)).toISOString();
  return {
    id: t.id,
    name: t.name,
    service: t.service_name,
    serviceId: t.service_id,
    slot: Number(t.slot),
    node: t.node_hostname || null,
    nodeId: t.node_id || null,
    desiredState: t.desired_state,
    state: t.state,
    message: t.message,
    error: t.err,
    image: t.image,
    containerId: t.container_id || null,
    podId: t.pod_id || null,
    exitCode: t.exit_code === null || t.exit_code === undefined ? null : Number(t.exit_code),
    oomKilled: !!t.oom_killed,
    timestamps: ts,
    serviceVersion: Number(t.service_version),
  };
}

function serviceJson(s: any) {
  const sp = s.spec;
  return {
    id: s.id,
    name: s.name,
    labels: s.labels ?? {},
    mode: sp.mode,
    replicas: sp.replicas ?? null,
    completions: sp.completions ?? null,
    maxConcurrent: sp.max_concurrent ?? null,
    image: sp.main?.image,
    spec: sp,
    version: Number(s.version),
    createdAt: s.created_at_ms ? new Date(Number(s.created_at_ms)).toISOString() : null,
    updatedAt: s.updated_at_ms ? new Date(Number(s.updated_at_ms)).toISOString() : null,
    desiredTasks: Number(s.desired_tasks),
    runningTasks: Number(s.running_tasks),
    completedTasks: Number(s.completed_tasks),
  };
}

function kv(list: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const x of list) {
    const i = x.indexOf('=');
    if (i <= 0) throw new CliError(`--${flag} needs KEY=VALUE, got ${JSON.stringify(x)}`, 2);
    out[x.slice(0, i)] = x.slice(i + 1);
  }
  return out;
}

function int(v: string | undefined, flag: string): number | null {
  if (v === undefined) return null;
  if (!/^\d+$/.test(v)) throw new CliError(`--${flag} must be a whole number of at least 0, got ${JSON.stringify(v)}`, 2);
  return Number(v);
}

/** `NAME IMAGE [ARG...]` of --sidecar / --init. */
function extraContainer(s: string, flag: string) {
  const w = splitWords(s);
  if (w.length < 2) throw new CliError(`--${flag} needs "NAME IMAGE [COMMAND ARG...]", got ${JSON.stringify(s)}`, 2);
  return { name: w[0], image: w[1], command: w.slice(2), args: [], env: [], workdir: '', user: '' };
}

export function specFromFlags(f: Flags, image: string, cmd: string[]): any {
  const res = (cpu: string | undefined, mem: string | undefined, what: string) => ({
    cpu_millis: cpu === undefined ? null : cpus(cpu, `--${what}-cpu`),
    memory_bytes: mem === undefined ? null : bytes(mem, `--${what}-memory`),
  });
  const entry = f.one('entrypoint');
  const prefs = f.all('placement-pref').map((p) => {
    if (!p.startsWith('spread=')) throw new CliError(`--placement-pref must be spread=node.labels.KEY, got ${JSON.stringify(p)}`, 2);
    return p.slice('spread='.length);
  });
  return {
    mode: f.one('mode') ?? 'replicated',
    replicas: int(f.one('replicas'), 'replicas'),
    completions: int(f.one('completions'), 'completions'),
    max_concurrent: int(f.one('max-concurrent'), 'max-concurrent'),
    main: { name: 'main', image, command: entry ? splitWords(entry) : [], args: cmd, env: f.all('env'), workdir: f.one('workdir') ?? '', user: f.one('user') ?? '' },
    sidecars: f.all('sidecar').map((s) => extraContainer(s, 'sidecar')),
    init: f.all('init').map((s) => extraContainer(s, 'init')),
    reservations: res(f.one('reserve-cpu'), f.one('reserve-memory'), 'reserve'),
    limits: res(f.one('limit-cpu'), f.one('limit-memory'), 'limit'),
    constraints: f.all('constraint'),
    spread: prefs,
    restart: {
      condition: f.one('restart-condition') ?? '',
      delay_ms: f.has('restart-delay') ? duration(f.one('restart-delay')!, '--restart-delay') : null,
      max_attempts: int(f.one('restart-max-attempts'), 'restart-max-attempts'),
      window_ms: f.has('restart-window') ? duration(f.one('restart-window')!, '--restart-window') : null,
    },
    stop_grace_period_ms: f.has('stop-grace-period') ? duration(f.one('stop-grace-period')!, '--stop-grace-period') : null,
    stop_signal: f.one('stop-signal') ?? '',
  };
}

const out = (v: unknown) => JSON.stringify(v, null, 2) + '\n';

function replicasCell(s: ReturnType<typeof serviceJson>): string {
  if (s.mode === 'replicated-job' || s.mode === 'global-job') return `${s.completedTasks}/${s.desiredTasks} completed`;
  return `${s.runningTasks}/${s.desiredTasks}`;
}

function stateCell(t: ReturnType<typeof taskJson>): string {
  let s = t.state;
  if (t.state === 'failed' && t.exitCode !== null) s += `: exit ${t.exitCode}${t.oomKilled ? ' (OOM killed)' : ''}`;
  else if (t.message && (t.state === 'preparing' || t.state === 'pending' || t.state === 'starting')) s += ` (${t.message})`;
  const since = t.timestamps[t.state];
  if (since) s += ` ${ago(Date.parse(since))}`;
  return s;
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** `service ps`: each slot's latest task, then its history indented, as `docker service ps`. */
function psTable(tasks: ReturnType<typeof taskJson>[]): string {
  const rows: string[][] = [];
  let lastKey = '';
  for (const t of tasks) {
    const key = `${t.service}/${t.slot > 0 ? t.slot : t.nodeId}`;
    const name = key === lastKey ? ` \\_ ${t.name}` : t.name;
    lastKey = key;
    rows.push([t.id.slice(0, 12), name, t.image, t.node ?? '', t.desiredState, stateCell(t), t.error]);
  }
  return table(['ID', 'NAME', 'IMAGE', 'NODE', 'DESIRED STATE', 'CURRENT STATE', 'ERROR'], rows);
}

export async function serviceCommand(t: Target, sub: string | undefined, rest: string[], f: Flags, json: boolean): Promise<string> {
  let cl: ReturnType<typeof controlClient> | undefined;
  const c = () => (cl ??= controlClient(t));
  switch (sub) {
    case 'create': {
      const name = f.one('name');
      const [image, ...cmd] = rest;
      if (!name || !image) throw new CliError('usage: shoal service create --name NAME [--replicas N] [flags] IMAGE [COMMAND ARG...]', 2);
      const labels = kv(f.all('label'), 'label');
      const spec = specFromFlags(f, image, cmd);
      const wait = waitOptions(f);
      const s = serviceJson(await call(c(), 'CreateService', { name, labels, spec }));
      if (f.has('detach')) return json ? out(s) : `${s.id}\n`;
      process.stdout.write(`${s.id}\n`);
      return converge(c(), s.name, wait, json);
    }
    case 'ls': {
      const r = await call(c(), 'ListServices', {});
      const list = (r.services ?? []).map(serviceJson);
      if (json) return out(list);
      if (f.has('quiet')) return list.map((s: any) => s.id + '\n').join('');
      return table(['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE'], list.map((s: any) => [s.id.slice(0, 12), s.name, s.mode, replicasCell(s), s.image]));
    }
    case 'inspect': {
      if (rest.length === 0) throw new CliError('usage: shoal service inspect SERVICE...', 2);
      const list = [];
      for (const id of rest) list.push(serviceJson(await call(c(), 'GetService', { id })));
      return out(list.length === 1 && !json ? list[0] : list);
    }
    case 'ps': {
      if (rest.length === 0) throw new CliError('usage: shoal service ps SERVICE...', 2);
      let tasks: ReturnType<typeof taskJson>[] = [];
      for (const s of rest) tasks = tasks.concat(((await call(c(), 'ListTasks', { service: s, node: '' })).tasks ?? []).map(taskJson));
      if (json) return out(tasks);
      if (f.has('quiet')) return tasks.map((x) => x.id + '\n').join('');
      return psTable(tasks);
    }
    case 'scale': {
      if (rest.length === 0) throw new CliError('usage: shoal service scale SERVICE=REPLICAS... (or SERVICE REPLICAS)', 2);
      const pairs: [string, number][] = [];
      if (rest.length === 2 && !rest[0]!.includes('=') && /^\d+$/.test(rest[1]!)) pairs.push([rest[0]!, Number(rest[1])]);
      else {
        for (const a of rest) {
          const m = /^([^=]+)=(\d+)$/.exec(a);
          if (!m) throw new CliError(`scale needs SERVICE=REPLICAS with a whole number, got ${JSON.stringify(a)}`, 2);
          pairs.push([m[1]!, Number(m[2])]);
        }
      }
      const wait = waitOptions(f);
      const done: string[] = [];
      for (const [id, replicas] of pairs) {
        const s = serviceJson(await call(c(), 'ScaleService', { id, replicas }));
        done.push(s.name);
        process.stdout.write(`${s.name} scaled to ${replicas}\n`);
      }
      if (f.has('detach')) return '';
      let text = '';
      for (const n of done) text += await converge(c(), n, wait, json);
      return text;
    }
    case 'rm': {
      if (rest.length === 0) throw new CliError('usage: shoal service rm SERVICE...', 2);
      for (const id of rest) await call(c(), 'RemoveService', { id });
      return json ? out({ removed: rest }) : rest.map((x) => `${x}\n`).join('');
    }
    case 'logs': {
      if (rest.length !== 1) throw new CliError('usage: shoal service logs SERVICE [--follow] [--tail N] [--timestamps]', 2);
      return logs(c(), { service: rest[0]!, tasks: [] }, f, json);
    }
    default:
      throw new CliError('usage: shoal service create|ls|ps|inspect|scale|rm|logs ...', 2);
  }
}

export async function taskCommand(t: Target, sub: string | undefined, rest: string[], f: Flags, json: boolean): Promise<string> {
  const c = controlClient(t);
  switch (sub) {
    case 'ls': {
      const r = await call(c, 'ListTasks', { service: f.one('service') ?? '', node: f.one('node') ?? '' });
      const tasks = (r.tasks ?? []).map(taskJson);
      if (json) return out(tasks);
      return psTable(tasks);
    }
    case 'inspect': {
      if (rest.length === 0) throw new CliError('usage: shoal task inspect TASK...', 2);
      const list = [];
      for (const id of rest) list.push(taskJson(await call(c, 'GetTask', { id })));
      return out(list.length === 1 && !json ? list[0] : list);
    }
    case 'logs': {
      if (rest.length === 0) throw new CliError('usage: shoal task logs TASK... [--follow] [--tail N] [--timestamps]', 2);
      return logs(c, { service: '', tasks: rest }, f, json);
    }
    default:
      throw new CliError('usage: shoal task ls [--service S] [--node N] | inspect TASK | logs TASK', 2);
  }
}

interface WaitOptions {
  timeoutMs: number;
}

function waitOptions(f: Flags): WaitOptions {
  return { timeoutMs: f.has('timeout') ? duration(f.one('timeout')!, '--timeout') : 120_000 };
}

/** Follows a service until it converges, printing each slot's progress as it changes. */
export async function converge(c: any, name: string, w: WaitOptions, json: boolean): Promise<string> {
  const end = Date.now() + w.timeoutMs;
  const shown = new Map<string, string>();
  const say = (line: string) => {
    if (!json) process.stdout.write(line + '\n');
  };
  for (;;) {
    const s = serviceJson(await call(c, 'GetService', { id: name }));
    const tasks = ((await call(c, 'ListTasks', { service: name, node: '' })).tasks ?? []).map(taskJson);
    // The latest task of each slot (or node) is the one that counts.
    const latest = new Map<string, ReturnType<typeof taskJson>>();
    for (const t of tasks) {
      const key = t.slot > 0 ? `${t.slot}` : `${t.nodeId}`;
      if (!latest.has(key)) latest.set(key, t);
    }
    const live = [...latest.values()].filter((t) => t.desiredState === 'running');
    const job = s.mode === 'replicated-job' || s.mode === 'global-job';
    const total = s.desiredTasks;
    for (const t of live) {
      const label = t.slot > 0 ? `${t.slot}/${total}` : `${t.node ?? t.nodeId ?? '?'}`;
      let line = `${label}: ${t.state}`;
      if (t.message && t.state !== 'running') line += ` (${t.message})`;
      if (t.error) line += `: ${t.error}`;
      const key = t.slot > 0 ? `${t.slot}` : `${t.nodeId}`;
      if (shown.get(key) !== line) {
        shown.set(key, line);
        say(line);
      }
    }
    const converged = job ? s.completedTasks >= total && total > 0 : live.length >= total && live.every((t) => t.state === 'running') && s.runningTasks >= total;
    if (converged) {
      say(job ? `job ${name} completed (${s.completedTasks}/${total})` : `service ${name} converged (${s.runningTasks}/${total} running)`);
      return json ? out(s) : '';
    }
    if (Date.now() > end) {
      const reasons = [...new Set(live.filter((t) => t.state !== 'running').map((t) => `${t.state}${t.error ? `: ${t.error}` : t.message ? `: ${t.message}` : ''}`))];
      throw new CliError(`service ${name} did not converge within ${w.timeoutMs / 1000} s: ${s.runningTasks}/${total} running${reasons.length ? `; ${reasons.join('; ')}` : ''}\n(see "shoal service ps ${name}")`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function logs(c: any, req: { service: string; tasks: string[] }, f: Flags, json: boolean): Promise<string> {
  const tail = int(f.one('tail'), 'tail') ?? 0;
  const follow = f.has('follow');
  const stamps = f.has('timestamps');
  return new Promise((resolve, reject) => {
    const s = c.Logs({ ...req, follow, tail, timestamps: stamps });
    const stop = () => s.cancel();
    process.once('SIGINT', stop);
    s.on('data', (l: any) => {
      if (l.warning) {
        process.stderr.write(`shoal: ${l.warning}\n`);
        return;
      }
      if (json) {
        process.stdout.write(JSON.stringify({ task: l.task_name, taskId: l.task_id, node: l.node_hostname, container: l.container, stream: l.stream, time: new Date(Number(l.time_ns) / 1e6).toISOString(), line: l.line }) + '\n');
        return;
      }
      const when = stamps ? `${new Date(Number(l.time_ns) / 1e6).toISOString()} ` : '';
      const who = `${l.task_name}.${l.container === 'main' ? '' : `${l.container}.`}${(l.task_id as string).slice(0, 12)}@${l.node_hostname}`;
      (l.stream === 'stderr' ? process.stderr : process.stdout).write(`${when}${who}    | ${l.line}\n`);
    });
    s.on('end', () => {
      process.removeListener('SIGINT', stop);
      resolve('');
    });
    s.on('error', (e: any) => {
      process.removeListener('SIGINT', stop);
      if (e.code === 1) resolve('');
      else reject(new CliError(e.details || e.message));
    });
  });
}
