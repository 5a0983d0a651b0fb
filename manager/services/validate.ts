// Turns a service spec as the control API receives it into the stored ServiceSpec: every field
// checked, defaults filled in (DESIGN.md §7), or one error that names the field, what was wrong
// and what to write instead. Nothing is written unless this passes.
import { constants as osConstants } from 'node:os';
import { ConstraintError, parseConstraint } from '../scheduler/constraints.js';
import { NetworkSpecError, networkingFromWire, networkingToWire, type WireNetworking } from '../networks/wire.js';
import { CronError } from '../orchestrator/cron-expr.js';
import { ScheduleError, scheduleFromWire, scheduleToWire, type WireSchedule } from './schedule.js';
import {
  DEFAULT_RESTART,
  DEFAULT_ROLLBACK,
  DEFAULT_UPDATE,
  type Probe,
  type UpdateConfig,
  DEFAULT_STOP_GRACE_MS,
  MODES,
  type ContainerSpec,
  type ModeName,
  type Resources,
  type RestartCondition,
  type ServiceMode,
  type ServiceSpec,
} from './model.js';
import { refToWire, refsFromWire, type WireFileRef } from '../secrets/refs.js';
import { VolumeSpecError, mountsFromWire, mountsToWire, type WireMount } from '../volumes/validate.js';

export class SpecError extends Error {
  override name = 'SpecError';
}

/** A DNS label, as Swarm and Kubernetes require of service names (they become DNS names). */
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function checkServiceName(name: unknown): string {
  if (typeof name !== 'string' || !DNS_LABEL.test(name)) {
    throw new SpecError(`service name ${JSON.stringify(name)} is not valid: use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit (it becomes a DNS name)`);
  }
  return name;
}

// The distribution reference grammar (docker/distribution's reference package, written out):
// [domain[:port]/]path[:tag][@algorithm:hex].
const DOMAIN = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?';
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const REFERENCE = new RegExp(`^(?:(${DOMAIN})/)?(${COMPONENT}(?:/${COMPONENT})*)(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const ARCHIVE = /^(docker-archive|oci-archive):\/\S+$/;

export function checkImage(image: unknown, where = 'image'): string {
  if (typeof image !== 'string' || image.length === 0) throw new SpecError(`${where} is missing: give an image reference such as registry.example:5000/team/app:1.2`);
  if (ARCHIVE.test(image)) return image;
  // `docker-archive:x.tar` would parse as the image docker-archive, tag x.tar: not what was meant.
  if (/^(docker-archive|oci-archive):/.test(image)) throw new SpecError(`${where} ${JSON.stringify(image)}: an archive needs an absolute path (docker-archive:/PATH or oci-archive:/PATH)`);
  const m = REFERENCE.exec(image);
  // A first component without '.', ':' or 'localhost' is a path, not a domain (docker.io/library),
  // so it must be lower case like the rest of the path (`Team/app` is refused, as Docker does).
  const domainIsPath = m?.[1] !== undefined && !/[.:]/.test(m[1]) && m[1] !== 'localhost';
  if (!m || image.length > 255 || (domainIsPath && !new RegExp(`^${COMPONENT}$`).test(m[1]!))) {
    throw new SpecError(`${where} ${JSON.stringify(image)} is not a valid image reference: write [REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST] with a lower-case name (or docker-archive:/PATH, oci-archive:/PATH)`);
  }
  return image;
}

const SIGNALS = new Set(['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGTERM', 'SIGKILL', 'SIGWINCH', 'SIGPWR', 'SIGSTOP', 'SIGCONT']);
/** A stop signal as written (TERM, sigterm, SIGTERM, 15) to its name; SIGTERM when not given. */
function signalName(given: string | undefined): string {
  if (!given) return 'SIGTERM';
  const up = given.trim().toUpperCase();
  let name = up.startsWith('SIG') ? up : `SIG${up}`;
  if (/^[0-9]+$/.test(up)) name = Object.entries(osConstants.signals).find(([, n]) => n === Number(up))?.[0] ?? up;
  if (!SIGNALS.has(name)) throw new SpecError(`stop signal ${JSON.stringify(given)} is not one of ${[...SIGNALS].join(', ')} (a name, with or without SIG, or its number)`);
  return name;
}

const ENV = /^[A-Za-z_][A-Za-z0-9_.-]*=/;
const CONTAINER_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** The most a single int64 from the wire may say here (JS numbers stay exact below 2^53). */
const MAX = Number.MAX_SAFE_INTEGER;

/** Wire shapes (proto-loader objects with snake_case field names). */
export interface WireContainer {
  name?: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: string[];
  workdir?: string;
  user?: string;
}
export interface WireResources {
  cpu_millis?: number | null;
  memory_bytes?: number | null;
}
export interface WireUpdate {
  parallelism?: number | null;
  delay_ms?: number | null;
  order?: string;
  failure_action?: string;
  monitor_ms?: number | null;
  max_failure_ratio?: number | null;
}
export interface WireProbe {
  kind?: string;
  type?: string;
  command?: string[];
  path?: string;
  port?: number;
  initial_delay_ms?: number | null;
  period_ms?: number | null;
  timeout_ms?: number | null;
  success_threshold?: number | null;
  failure_threshold?: number | null;
}
export interface WireSpec extends WireNetworking {
  mode?: string;
  replicas?: number | null;
  completions?: number | null;
  max_concurrent?: number | null;
  main?: WireContainer | null;
  sidecars?: WireContainer[];
  init?: WireContainer[];
  reservations?: WireResources | null;
  limits?: WireResources | null;
  constraints?: string[];
  spread?: string[];
  restart?: { condition?: string; delay_ms?: number | null; max_attempts?: number | null; window_ms?: number | null } | null;
  stop_grace_period_ms?: number | null;
  stop_signal?: string;
  update?: WireUpdate | null;
  rollback?: WireUpdate | null;
  force_update?: number | null;
  probes?: WireProbe[];
  secrets?: WireFileRef[];
  configs?: WireFileRef[];
  mounts?: WireMount[];
  schedule?: WireSchedule | null;
}

function updateConfig(w: WireUpdate | null | undefined, where: string, dflt: UpdateConfig): UpdateConfig {
  if (!w) return { ...dflt };
  const order = (w.order || dflt.order) as UpdateConfig['order'];
  if (order !== 'stop-first' && order !== 'start-first') throw new SpecError(`${where} order ${JSON.stringify(w.order)} is not known: use stop-first or start-first`);
  const action = (w.failure_action || dflt.failureAction) as UpdateConfig['failureAction'];
  if (!['pause', 'continue', 'rollback'].includes(action)) throw new SpecError(`${where} failure action ${JSON.stringify(w.failure_action)} is not known: use pause, continue or rollback`);
  if (where === 'rollback' && action === 'rollback') throw new SpecError('rollback failure action cannot be rollback (a failed rollback would roll back again): use pause or continue');
  const ratio = w.max_failure_ratio === undefined || w.max_failure_ratio === null ? dflt.maxFailureRatio : Number(w.max_failure_ratio);
  if (!(ratio >= 0 && ratio <= 1)) throw new SpecError(`${where} max failure ratio must be between 0 and 1, got ${w.max_failure_ratio}`);
  return {
    parallelism: count(w.parallelism, `${where} parallelism`, dflt.parallelism),
    delayMs: count(w.delay_ms, `${where} delay`, dflt.delayMs),
    order,
    failureAction: action,
    monitorMs: count(w.monitor_ms, `${where} monitor`, dflt.monitorMs),
    maxFailureRatio: ratio,
  };
}

const PROBE_KINDS = ['liveness', 'readiness', 'startup'];

function probe(w: WireProbe, i: number): Probe {
  const where = `probes[${i}]`;
  const kind = w.kind as Probe['kind'];
  if (!PROBE_KINDS.includes(kind)) throw new SpecError(`${where}: kind ${JSON.stringify(w.kind)} is not known: use liveness, readiness or startup`);
  const type = w.type as Probe['type'];
  const out: Probe = {
    kind,
    type,
    initialDelayMs: count(w.initial_delay_ms, `${where} initial delay`, 0),
    periodMs: count(w.period_ms, `${where} period`, 10_000, 1),
    timeoutMs: count(w.timeout_ms, `${where} timeout`, 1000, 1),
    successThreshold: count(w.success_threshold, `${where} success threshold`, 1, 1),
    failureThreshold: count(w.failure_threshold, `${where} failure threshold`, 3, 1),
  };
  if (kind !== 'readiness' && out.successThreshold !== 1) throw new SpecError(`${where}: a ${kind} probe's success threshold must be 1 (as in Kubernetes)`);
  const port = () => {
    const p = Number(w.port);
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new SpecError(`${where}: a ${type} probe needs a port between 1 and 65535, got ${w.port}`);
    return p;
  };
  switch (type) {
    case 'exec': {
      const cmd = strings(w.command, `${where} command`);
      if (cmd.length === 0) throw new SpecError(`${where}: an exec probe needs a command`);
      out.command = cmd;
      break;
    }
    case 'http':
      out.port = port();
      out.path = w.path || '/';
      if (!out.path.startsWith('/')) throw new SpecError(`${where}: an http probe's path must start with /, got ${JSON.stringify(w.path)}`);
      break;
    case 'tcp':
      out.port = port();
      break;
    default:
      throw new SpecError(`${where}: type ${JSON.stringify(w.type)} is not known: use exec, http or tcp`);
  }
  return out;
}

function count(v: number | null | undefined, field: string, dflt: number, min = 0): number {
  if (v === undefined || v === null) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > MAX) throw new SpecError(`${field} must be a whole number of at least ${min}, got ${v}`);
  return n;
}

function strings(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new SpecError(`${field} must be a list of strings`);
  return v as string[];
}

function container(c: WireContainer | null | undefined, where: string, name: string | undefined): ContainerSpec {
  if (!c) throw new SpecError(`${where} is missing`);
  const cname = name ?? c.name ?? '';
  if (!CONTAINER_NAME.test(cname)) throw new SpecError(`${where}.name ${JSON.stringify(cname)} is not valid: use lower-case letters, digits and '-' (at most 63)`);
  const out: ContainerSpec = { name: cname, image: checkImage(c.image, `${where}.image`) };
  const command = strings(c.command, `${where}.command`);
  const args = strings(c.args, `${where}.args`);
  const env = strings(c.env, `${where}.env`);
  for (const e of env) if (!ENV.test(e)) throw new SpecError(`${where}.env entry ${JSON.stringify(e)} must be KEY=VALUE with KEY of letters, digits and _ (not starting with a digit)`);
  if (command.length > 0) out.command = command;
  if (args.length > 0) out.args = args;
  if (env.length > 0) out.env = env;
  if (c.workdir) {
    if (!c.workdir.startsWith('/')) throw new SpecError(`${where}.workdir ${JSON.stringify(c.workdir)} must be an absolute path`);
    out.workdir = c.workdir;
  }
  if (c.user) {
    // The CRI takes a user by name or id, a group by id only.
    if (!/^[A-Za-z0-9_.-]+(:[0-9]+)?$/.test(c.user)) throw new SpecError(`${where}.user ${JSON.stringify(c.user)} must be USER or USER:GID (a user name or id; a numeric group id)`);
    out.user = c.user;
  }
  return out;
}

function resources(r: WireResources | null | undefined, where: string): Resources {
  const out: Resources = {};
  if (!r) return out;
  if (r.cpu_millis !== undefined && r.cpu_millis !== null) out.cpuMillis = count(r.cpu_millis, `${where}.cpu`, 0);
  if (r.memory_bytes !== undefined && r.memory_bytes !== null) {
    out.memoryBytes = count(r.memory_bytes, `${where}.memory`, 0);
    // runc refuses limits below its own minimum; say so here rather than at start.
    if (where === 'limits' && out.memoryBytes > 0 && out.memoryBytes < 6 * 1024 * 1024) throw new SpecError(`limits.memory must be at least 6 MiB, got ${out.memoryBytes} bytes`);
  }
  return out;
}

function mode(w: WireSpec): ServiceMode {
  const m = (w.mode || 'replicated') as ModeName;
  if (!MODES.includes(m)) throw new SpecError(`mode ${JSON.stringify(w.mode)} is not known: use one of ${MODES.join(', ')}`);
  const only = (field: keyof WireSpec, allowed: ModeName[]) => {
    if (w[field] !== undefined && w[field] !== null && !allowed.includes(m)) throw new SpecError(`${field} does not apply to mode ${m}`);
  };
  only('replicas', ['replicated']);
  only('completions', ['replicated-job']);
  only('max_concurrent', ['replicated-job']);
  switch (m) {
    case 'replicated':
      return { type: m, replicas: count(w.replicas, 'replicas', 1) };
    case 'replicated-job': {
      const completions = count(w.completions, 'completions', 1);
      const maxConcurrent = count(w.max_concurrent, 'max-concurrent', Math.max(1, completions), 1);
      return { type: m, completions, maxConcurrent };
    }
    default:
      return { type: m };
  }
}

/** The stored spec for a create request; throws SpecError naming the first problem. */
export function specFromWire(w: WireSpec | null | undefined): ServiceSpec {
  if (!w) throw new SpecError('spec is missing');
  const main = container(w.main, 'main', 'main');
  const sidecars = (w.sidecars ?? []).map((c, i) => container(c, `sidecars[${i}]`, undefined));
  const init = (w.init ?? []).map((c, i) => container(c, `init[${i}]`, undefined));
  const names = new Set<string>();
  for (const c of [main, ...sidecars, ...init]) {
    if (names.has(c.name)) throw new SpecError(`container name ${JSON.stringify(c.name)} is used twice in the pod; each container needs its own`);
    names.add(c.name);
  }
  const constraints = strings(w.constraints, 'constraints');
  for (const c of constraints) {
    try {
      parseConstraint(c);
    } catch (e) {
      if (e instanceof ConstraintError) throw new SpecError(e.message);
      throw e;
    }
  }
  const preferences = strings(w.spread, 'spread').map((s) => {
    const key = s.startsWith('node.labels.') ? s.slice('node.labels.'.length) : '';
    if (!/^[A-Za-z0-9][A-Za-z0-9._\/-]*$/.test(key)) throw new SpecError(`spread preference ${JSON.stringify(s)} must be node.labels.KEY`);
    return { spread: key };
  });
  const r = w.restart ?? {};
  const condition = (r.condition || DEFAULT_RESTART.condition) as RestartCondition;
  if (!['none', 'on-failure', 'any'].includes(condition)) throw new SpecError(`restart condition ${JSON.stringify(r.condition)} is not known: use none, on-failure or any`);
  const reservations = resources(w.reservations, 'reservations');
  const limits = resources(w.limits, 'limits');
  if (limits.memoryBytes && reservations.memoryBytes && reservations.memoryBytes > limits.memoryBytes) throw new SpecError(`reservations.memory (${reservations.memoryBytes}) is above limits.memory (${limits.memoryBytes})`);
  if (limits.cpuMillis && reservations.cpuMillis && reservations.cpuMillis > limits.cpuMillis) throw new SpecError(`reservations.cpu (${reservations.cpuMillis}m) is above limits.cpu (${limits.cpuMillis}m)`);
  const stopSignal = signalName(w.stop_signal);
  let net;
  try {
    net = networkingFromWire(w);
  } catch (e) {
    if (e instanceof NetworkSpecError) throw new SpecError(e.message);
    throw e;
  }
  let mounts;
  try {
    mounts = mountsFromWire(w.mounts);
  } catch (e) {
    if (e instanceof VolumeSpecError) throw new SpecError(e.message);
    throw e;
  }
  const m = mode(w);
  return {
    mode: m,
    task: {
      main,
      sidecars,
      init,
      resources: { reservations, limits },
      placement: { constraints, preferences },
      restart: {
        condition,
        delayMs: count(r.delay_ms, 'restart delay', DEFAULT_RESTART.delayMs),
        maxAttempts: count(r.max_attempts, 'restart max attempts', DEFAULT_RESTART.maxAttempts),
        windowMs: count(r.window_ms, 'restart window', DEFAULT_RESTART.windowMs),
      },
      stopGracePeriodMs: count(w.stop_grace_period_ms, 'stop grace period', DEFAULT_STOP_GRACE_MS),
      stopSignal,
      ...(w.force_update ? { forceUpdate: count(w.force_update, 'force update', 0) } : {}),
      ...(w.probes?.length ? { probes: probes(w.probes) } : {}),
      ...refsFromWire(w.secrets, w.configs),
      // As written (names or ids): the control API resolves them (manager/networks/resolve.ts).
      ...(net.networks.length ? { networks: net.networks } : {}),
      ...(mounts.length ? { mounts } : {}),
    },
    update: updateConfig(w.update, 'update', DEFAULT_UPDATE),
    rollback: updateConfig(w.rollback, 'rollback', DEFAULT_ROLLBACK),
    endpoint: net.endpoint,
    ...(w.schedule ? { schedule: schedule(w.schedule, m.type) } : {}),
  };
}

function schedule(w: WireSchedule, m: ModeName) {
  try {
    return scheduleFromWire(w, m);
  } catch (e) {
    if (e instanceof ScheduleError || e instanceof CronError) throw new SpecError(e.message);
    throw e;
  }
}

function probes(list: WireProbe[]): Probe[] {
  const out = list.map(probe);
  for (const k of PROBE_KINDS) if (out.filter((p) => p.kind === k).length > 1) throw new SpecError(`only one ${k} probe per service`);
  return out;
}

function updateToWire(u: UpdateConfig): WireUpdate {
  return { parallelism: u.parallelism, delay_ms: u.delayMs, order: u.order, failure_action: u.failureAction, monitor_ms: u.monitorMs, max_failure_ratio: u.maxFailureRatio };
}

function probeToWire(p: Probe): WireProbe {
  return { kind: p.kind, type: p.type, command: p.command ?? [], path: p.path ?? '', port: p.port ?? 0, initial_delay_ms: p.initialDelayMs, period_ms: p.periodMs, timeout_ms: p.timeoutMs, success_threshold: p.successThreshold, failure_threshold: p.failureThreshold };
}

function containerToWire(c: ContainerSpec): WireContainer {
  return { name: c.name, image: c.image, command: c.command ?? [], args: c.args ?? [], env: c.env ?? [], workdir: c.workdir ?? '', user: c.user ?? '' };
}

function resourcesToWire(r: Resources): WireResources {
  return { cpu_millis: r.cpuMillis ?? null, memory_bytes: r.memoryBytes ?? null };
}

export function specToWire(s: ServiceSpec): WireSpec {
  const t = s.task;
  return {
    mode: s.mode.type,
    replicas: s.mode.type === 'replicated' ? s.mode.replicas : null,
    completions: s.mode.type === 'replicated-job' ? s.mode.completions : null,
    max_concurrent: s.mode.type === 'replicated-job' ? s.mode.maxConcurrent : null,
    main: containerToWire(t.main),
    sidecars: t.sidecars.map(containerToWire),
    init: t.init.map(containerToWire),
    reservations: resourcesToWire(t.resources.reservations),
    limits: resourcesToWire(t.resources.limits),
    constraints: t.placement.constraints,
    spread: t.placement.preferences.map((p) => `node.labels.${p.spread}`),
    restart: { condition: t.restart.condition, delay_ms: t.restart.delayMs, max_attempts: t.restart.maxAttempts, window_ms: t.restart.windowMs },
    stop_grace_period_ms: t.stopGracePeriodMs,
    stop_signal: t.stopSignal,
    update: updateToWire(s.update ?? DEFAULT_UPDATE),
    rollback: updateToWire(s.rollback ?? DEFAULT_ROLLBACK),
    force_update: t.forceUpdate ?? 0,
    probes: (t.probes ?? []).map(probeToWire),
    secrets: (t.secrets ?? []).map(refToWire),
    configs: (t.configs ?? []).map(refToWire),
    ...networkingToWire(t.networks, s.endpoint),
    mounts: mountsToWire(t.mounts),
    schedule: s.schedule ? scheduleToWire(s.schedule) : null,
  };
}
