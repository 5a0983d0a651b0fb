// `shoal service ...` and `shoal task ...`: services and tasks through the control API. create
// and scale wait for the service to converge and show each slot's progress (--detach returns at
// once); logs stream the tasks' container output through the managers.
import { CliError, call, callPatiently, controlClient, type Target } from './client.js';
import { duration, bytes, cpus, splitWords } from './units.js';
import { table } from './format.js';
import { subcommandsOf, unknownWord } from './help.js';
import { refsForCreate, updateRefs } from './secret.js';
import { networkingFromFlags, updateNetworking } from './network.js';
import { mountsForCreate, updateMounts } from './volume.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

export interface Flags {
  one(k: string): string | undefined;
  all(k: string): string[];
  has(k: string): boolean;
}

const UPDATE_KEYS = ['parallelism', 'delay', 'order', 'failure-action', 'monitor', 'max-failure-ratio'];
const PROBE_KINDS = ['liveness', 'readiness', 'startup'];
const PROBE_KEYS = ['delay', 'period', 'timeout', 'successes', 'failures'];

export const SERVICE_FLAGS = [
  ...UPDATE_KEYS.flatMap((k) => [`update-${k}`, `rollback-${k}`]),
  ...PROBE_KINDS.flatMap((k) => [k, ...PROBE_KEYS.map((x) => `${k}-${x}`)]),
  'image', 'env-add', 'env-rm', 'args', 'constraint-add', 'constraint-rm', 'label-add', 'label-rm', 'force', 'to-revision', 'no-probes',
  'name', 'replicas', 'mode', 'completions', 'max-concurrent', 'env', 'workdir', 'user', 'label', 'constraint', 'placement-pref',
  'reserve-cpu', 'reserve-memory', 'limit-cpu', 'limit-memory', 'restart-condition', 'restart-delay', 'restart-max-attempts', 'restart-window',
  'stop-grace-period', 'stop-signal', 'entrypoint', 'sidecar', 'init', 'detach', 'timeout', 'follow', 'tail', 'timestamps', 'service', 'node', 'quiet',
  'schedule', 'schedule-timezone', 'schedule-concurrency', 'schedule-starting-deadline', 'schedule-keep-succeeded', 'schedule-keep-failed', 'schedule-suspend',
];
export const SERVICE_BOOL = ['detach', 'follow', 'timestamps', 'quiet', 'force', 'no-probes', 'schedule-suspend'];

/** --schedule CRON and its --schedule-* companions over `base` (the current schedule, or none). */
function scheduleFromFlags(f: Flags, base: any): any {
  const tuned = ['timezone', 'concurrency', 'starting-deadline', 'keep-succeeded', 'keep-failed', 'suspend'].filter((k) => f.one(`schedule-${k}`) !== undefined);
  if (!f.one('schedule') && tuned.length === 0) return base ?? null;
  if (!f.one('schedule') && !base) throw new CliError(`--schedule-${tuned[0]} tunes a schedule: give --schedule "CRON" too`, 2);
  const s: any = { ...(base ?? {}) };
  if (f.one('schedule') !== undefined) s.cron = f.one('schedule');
  if (f.one('schedule-timezone') !== undefined) s.time_zone = f.one('schedule-timezone');
  if (f.one('schedule-concurrency') !== undefined) s.concurrency_policy = f.one('schedule-concurrency');
  if (f.one('schedule-starting-deadline') !== undefined) {
    const ms = duration(f.one('schedule-starting-deadline')!, '--schedule-starting-deadline');
    if (ms % 1000 !== 0) throw new CliError(`--schedule-starting-deadline must be whole seconds, got ${JSON.stringify(f.one('schedule-starting-deadline'))}`, 2);
    s.starting_deadline_seconds = ms / 1000;
  }
  if (f.one('schedule-keep-succeeded') !== undefined) s.successful_runs_history_limit = int(f.one('schedule-keep-succeeded'), 'schedule-keep-succeeded');
  if (f.one('schedule-keep-failed') !== undefined) s.failed_runs_history_limit = int(f.one('schedule-keep-failed'), 'schedule-keep-failed');
  if (f.one('schedule-suspend') !== undefined) s.suspend = f.has('schedule-suspend');
  return s;
}

function scheduleJson(st: any) {
  if (!st) return null;
  const t = (ms: unknown) => (Number(ms) ? new Date(Number(ms)).toISOString() : null);
  return {
    lastRun: Number(st.iteration ?? 0),
    lastScheduleTime: t(st.last_schedule_ms),
    lastSuccessfulTime: t(st.last_successful_ms),
    nextScheduleTime: t(st.next_schedule_ms),
    runs: (st.runs ?? []).map((r: any) => ({ run: Number(r.iteration), scheduledAt: t(r.scheduled_at_ms), startedAt: t(r.started_at_ms), finishedAt: t(r.finished_at_ms), result: r.result, message: r.message })),
    skipped: Number(st.skipped ?? 0),
    lastSkip: Number(st.last_skip_ms) ? { scheduledAt: t(st.last_skip_ms), reason: st.last_skip_reason } : null,
    waiting: Number(st.waiting_ms) ? { scheduledAt: t(st.waiting_ms), reason: st.waiting_reason } : null,
  };
}

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
    health: t.health || null,
    healthMessage: t.health_message || null,
    ready: t.ready === null || t.ready === undefined ? null : !!t.ready,
    upToDate: !!t.up_to_date,
    networks: (t.networks ?? []).map((a: any) => ({ networkId: a.network_id, address: a.address })),
    run: Number(t.job_iteration) || null,
  };
}

function serviceJson(s: any) {
  const sp = s.spec;
  const u = s.update_status;
  return {
    updateStatus: u ? { state: u.state, startedAt: new Date(Number(u.started_at_ms)).toISOString(), completedAt: Number(u.completed_at_ms) ? new Date(Number(u.completed_at_ms)).toISOString() : null, message: u.message } : null,
    revision: Number(s.revision ?? 1),
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
    virtualIps: (s.virtual_ips ?? []).map((a: any) => ({ networkId: a.network_id, address: a.address })),
    schedule: scheduleJson(s.schedule_status),
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

/** --update-* / --rollback-* over `base` (the current config, or none for the defaults). */
function updateFromFlags(f: Flags, prefix: 'update' | 'rollback', base: any): any {
  const u: any = { ...(base ?? {}) };
  const v = (k: string) => f.one(`${prefix}-${k}`);
  if (v('parallelism') !== undefined) u.parallelism = int(v('parallelism'), `${prefix}-parallelism`);
  if (v('delay') !== undefined) u.delay_ms = duration(v('delay')!, `--${prefix}-delay`);
  if (v('order') !== undefined) u.order = v('order');
  if (v('failure-action') !== undefined) u.failure_action = v('failure-action');
  if (v('monitor') !== undefined) u.monitor_ms = duration(v('monitor')!, `--${prefix}-monitor`);
  if (v('max-failure-ratio') !== undefined) {
    const r = Number(v('max-failure-ratio'));
    if (!Number.isFinite(r)) throw new CliError(`--${prefix}-max-failure-ratio must be a number between 0 and 1, got ${JSON.stringify(v('max-failure-ratio'))}`, 2);
    u.max_failure_ratio = r;
  }
  return u;
}

/** --liveness exec:CMD | http:PORT[/PATH] | tcp:PORT, with --liveness-period 5s etc. */
function probesFromFlags(f: Flags, base: any[]): any[] {
  const out = f.has('no-probes') ? [] : [...(base ?? [])];
  for (const kind of PROBE_KINDS) {
    const def = f.one(kind);
    const tuned = PROBE_KEYS.some((k) => f.one(`${kind}-${k}`) !== undefined);
    if (def === undefined && !tuned) continue;
    const i = out.findIndex((p) => p.kind === kind);
    const p: any = i >= 0 ? { ...out[i] } : { kind };
    if (def !== undefined) {
      const m = /^(exec|http|tcp):(.*)$/s.exec(def);
      if (!m) throw new CliError(`--${kind} must be exec:COMMAND, http:PORT[/PATH] or tcp:PORT, got ${JSON.stringify(def)}`, 2);
      p.type = m[1];
      if (m[1] === 'exec') {
        p.command = splitWords(m[2]!);
        delete p.port;
        delete p.path;
      } else {
        const pm = /^(\d+)(\/.*)?$/.exec(m[2]!);
        if (!pm) throw new CliError(`--${kind} ${m[1]}: needs a port${m[1] === 'http' ? ' and an optional /path' : ''}, got ${JSON.stringify(m[2])}`, 2);
        p.port = Number(pm[1]);
        p.path = m[1] === 'http' ? pm[2] ?? '/' : '';
        p.command = [];
      }
    } else if (i < 0) throw new CliError(`--${kind}-... tunes a ${kind} probe: give --${kind} too`, 2);
    const t = (k: string) => f.one(`${kind}-${k}`);
    if (t('delay') !== undefined) p.initial_delay_ms = duration(t('delay')!, `--${kind}-delay`);
    if (t('period') !== undefined) p.period_ms = duration(t('period')!, `--${kind}-period`);
    if (t('timeout') !== undefined) p.timeout_ms = duration(t('timeout')!, `--${kind}-timeout`);
    if (t('successes') !== undefined) p.success_threshold = int(t('successes'), `${kind}-successes`);
    if (t('failures') !== undefined) p.failure_threshold = int(t('failures'), `${kind}-failures`);
    if (i >= 0) out[i] = p;
    else out.push(p);
  }
  return out;
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
    update: updateFromFlags(f, 'update', null),
    rollback: updateFromFlags(f, 'rollback', null),
    probes: probesFromFlags(f, []),
    ...networkingFromFlags(f),
    schedule: scheduleFromFlags(f, null),
  };
}

/** `service update` flags applied to the current spec (as the API returned it, defaults filled). */
export function updateSpecFromFlags(f: Flags, cur: any): any {
  const sp = JSON.parse(JSON.stringify(cur));
  const main = sp.main;
  if (f.one('image')) main.image = f.one('image');
  if (f.has('args')) main.args = splitWords(f.one('args')!);
  if (f.has('entrypoint')) main.command = splitWords(f.one('entrypoint')!);
  if (f.has('env-add') || f.has('env-rm')) {
    const env = new Map<string, string>((main.env ?? []).map((e: string) => [e.slice(0, e.indexOf('=')), e]));
    for (const k of f.all('env-rm')) env.delete(k);
    for (const e of f.all('env-add')) {
      const i = e.indexOf('=');
      if (i <= 0) throw new CliError(`--env-add needs KEY=VALUE, got ${JSON.stringify(e)}`, 2);
      env.set(e.slice(0, i), e);
    }
    main.env = [...env.values()];
  }
  if (f.has('workdir')) main.workdir = f.one('workdir');
  if (f.has('user')) main.user = f.one('user');
  if (f.has('replicas')) sp.replicas = int(f.one('replicas'), 'replicas');
  if (f.has('constraint-add') || f.has('constraint-rm')) {
    sp.constraints = (sp.constraints ?? []).filter((c: string) => !f.all('constraint-rm').includes(c)).concat(f.all('constraint-add'));
  }
  for (const [what, key] of [['reserve', 'reservations'], ['limit', 'limits']] as const) {
    if (f.has(`${what}-cpu`)) sp[key] = { ...sp[key], cpu_millis: cpus(f.one(`${what}-cpu`)!, `--${what}-cpu`) };
    if (f.has(`${what}-memory`)) sp[key] = { ...sp[key], memory_bytes: bytes(f.one(`${what}-memory`)!, `--${what}-memory`) };
  }
  if (f.has('restart-condition')) sp.restart.condition = f.one('restart-condition');
  if (f.has('restart-delay')) sp.restart.delay_ms = duration(f.one('restart-delay')!, '--restart-delay');
  if (f.has('restart-max-attempts')) sp.restart.max_attempts = int(f.one('restart-max-attempts'), 'restart-max-attempts');
  if (f.has('restart-window')) sp.restart.window_ms = duration(f.one('restart-window')!, '--restart-window');
  if (f.has('stop-grace-period')) sp.stop_grace_period_ms = duration(f.one('stop-grace-period')!, '--stop-grace-period');
  if (f.has('stop-signal')) sp.stop_signal = f.one('stop-signal');
  sp.update = updateFromFlags(f, 'update', sp.update);
  sp.rollback = updateFromFlags(f, 'rollback', sp.rollback);
  sp.probes = probesFromFlags(f, sp.probes ?? []);
  sp.schedule = scheduleFromFlags(f, sp.schedule);
  return sp;
}

const out = (v: unknown) => JSON.stringify(v, null, 2) + '\n';

function replicasCell(s: ReturnType<typeof serviceJson>): string {
  if (s.schedule) return `scheduled, run ${s.schedule.lastRun}: ${s.completedTasks}/${s.desiredTasks} completed`;
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
      const spec = { ...specFromFlags(f, image, cmd), ...refsForCreate(f), ...mountsForCreate(f) };
      const wait = waitOptions(f);
      const s = serviceJson(await call(c(), 'CreateService', { name, labels, spec }));
      if (f.has('detach')) return json ? out(s) : `${s.id}\n`;
      process.stdout.write(`${s.id}\n`);
      // A scheduled job has nothing to wait for: its first run starts at its first tick.
      if (s.schedule) return json ? out(s) : `scheduled job ${s.name}: "${s.spec.schedule.cron}" (${s.spec.schedule.time_zone}), first run at ${s.schedule.nextScheduleTime ?? 'never (suspended)'}\n`;
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
    case 'update': {
      if (rest.length !== 1) throw new CliError('usage: shoal service update [--image I] [--env-add K=V] [--replicas N] [--update-parallelism N] [--force] ... SERVICE', 2);
      const cur = await call(c(), 'GetService', { id: rest[0] });
      const spec = updateSpecFromFlags(f, cur.spec);
      updateRefs(f, spec);
      await updateNetworking(f, spec, async (ref) => (await call(c(), 'GetNetwork', { id: ref })).id);
      updateMounts(f, spec);
      const labels = { ...(cur.labels ?? {}) };
      for (const k of f.all('label-rm')) delete labels[k];
      Object.assign(labels, kv(f.all('label-add'), 'label-add'));
      const wait = waitOptions(f);
      const since = Date.now();
      const s = serviceJson(await call(c(), 'UpdateService', { id: cur.id, version: cur.version, spec, labels, force: f.has('force') }));
      process.stdout.write(`${s.name} updated to revision ${s.revision}\n`);
      if (f.has('detach')) return json ? out(s) : '';
      return followUpdate(c(), s.name, since, wait, json, false);
    }
    case 'rollback': {
      if (rest.length !== 1) throw new CliError('usage: shoal service rollback SERVICE [--to-revision N]', 2);
      const wait = waitOptions(f);
      const since = Date.now();
      const s = serviceJson(await call(c(), 'RollbackService', { id: rest[0], to_revision: int(f.one('to-revision'), 'to-revision') ?? 0 }));
      process.stdout.write(`${s.name} rolled back: now revision ${s.revision}\n`);
      if (f.has('detach')) return json ? out(s) : '';
      return followUpdate(c(), s.name, since, wait, json, true);
    }
    case 'history': {
      if (rest.length !== 1) throw new CliError('usage: shoal service history SERVICE', 2);
      const r = await call(c(), 'ServiceHistory', { id: rest[0] });
      const revs = (r.revisions ?? []).map((x: any) => ({ revision: Number(x.revision), at: new Date(Number(x.at_ms)).toISOString(), change: x.change, current: !!x.current, image: x.spec?.main?.image, spec: x.spec }));
      if (json) return out(revs);
      return table(['REVISION', 'CREATED', 'IMAGE', 'CHANGE'], revs.map((x: any) => [`${x.revision}${x.current ? ' (current)' : ''}`, x.at, x.image, x.change]));
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
      throw new CliError(`${unknownWord('service command', sub ?? '', subcommandsOf('service')!)}\n(shoal service --help)`, 2);
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
      throw new CliError(`${unknownWord('task command', sub ?? '', subcommandsOf('task')!)}\n(shoal task --help)`, 2);
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
    const s = serviceJson(await callPatiently(c, 'GetService', { id: name }, end));
    const tasks = ((await callPatiently(c, 'ListTasks', { service: name, node: '' }, end)).tasks ?? []).map(taskJson);
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

/** Follows a rolling update (or rollback) slot by slot until it completes, pauses or rolls back. */
async function followUpdate(c: any, name: string, since: number, w: WaitOptions, json: boolean, rollback: boolean): Promise<string> {
  const end = Date.now() + w.timeoutMs;
  const shown = new Map<string, string>();
  const say = (line: string) => {
    if (!json) process.stdout.write(line + '\n');
  };
  let rolledBack = false;
  for (;;) {
    const s = serviceJson(await callPatiently(c, 'GetService', { id: name }, end));
    const u = s.updateStatus;
    // No template change: nothing rolls; it is a plain convergence (replicas, update config).
    if (!u || Date.parse(u.startedAt) < since - 1000) return converge(c, name, w, json);
    const tasks = ((await callPatiently(c, 'ListTasks', { service: name, node: '' }, end)).tasks ?? []).map(taskJson);
    const latest = new Map<string, ReturnType<typeof taskJson>>();
    for (const t of tasks) {
      const key = t.slot > 0 ? `${t.slot}` : `${t.nodeId}`;
      if (t.desiredState === 'running' && !latest.has(key)) latest.set(key, t);
    }
    for (const [key, t] of [...latest.entries()].sort()) {
      const label = t.slot > 0 ? `${t.slot}/${s.desiredTasks}` : `${t.node ?? key}`;
      const what = !t.upToDate ? 'not updated yet' : t.state === 'running' ? (t.ready === false ? 'updated, running, not ready' : 'updated, running, ready') : `updated, ${t.state}${t.error ? `: ${t.error}` : t.message ? ` (${t.message})` : ''}`;
      if (shown.get(key) !== what) {
        shown.set(key, what);
        say(`${label}: ${what}`);
      }
    }
    if (u.state === 'rollback_started' && !rollback && !rolledBack) {
      rolledBack = true;
      say(`update failed, rolling back: ${u.message}`);
    }
    if (u.state === 'completed' || u.state === 'rollback_completed') {
      if (rolledBack) throw new CliError(`service ${name}: the update failed and was rolled back (${u.message}); see "shoal service inspect ${name}"`);
      say(`service ${name} converged (${u.state === 'completed' ? 'update' : 'rollback'} completed, revision ${s.revision})`);
      return json ? out(s) : '';
    }
    if (u.state === 'paused' || u.state === 'rollback_paused') throw new CliError(`service ${name}: ${u.message}\n(resume with another "shoal service update", or "shoal service rollback ${name}")`);
    if (Date.now() > end) throw new CliError(`service ${name}: the ${rollback ? 'rollback' : 'update'} did not finish within ${w.timeoutMs / 1000} s (${u.state}: ${u.message}); it goes on: "shoal service ps ${name}"`);
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
