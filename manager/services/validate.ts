// Turns a service spec as the control API receives it into the stored ServiceSpec: every field
// checked, defaults filled in (DESIGN.md §7), or one error that names the field, what was wrong
// and what to write instead. Nothing is written unless this passes.
import { ConstraintError, parseConstraint } from '../scheduler/constraints.js';
import {
  DEFAULT_RESTART,
  DEFAULT_STOP_GRACE_MS,
  MODES,
  type ContainerSpec,
  type ModeName,
  type Resources,
  type RestartCondition,
  type ServiceMode,
  type ServiceSpec,
} from './model.js';

export class SpecError extends Error {}

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
  const m = REFERENCE.exec(image);
  // A first component without '.', ':' or 'localhost' is a path, not a domain (docker.io/library).
  if (!m || image.length > 255) {
    throw new SpecError(`${where} ${JSON.stringify(image)} is not a valid image reference: write [REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST] with a lower-case name (or docker-archive:/PATH, oci-archive:/PATH)`);
  }
  return image;
}

const SIGNALS = new Set(['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGTERM', 'SIGKILL', 'SIGWINCH', 'SIGPWR', 'SIGSTOP', 'SIGCONT']);
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
export interface WireSpec {
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
  const stopSignal = w.stop_signal ? (w.stop_signal.startsWith('SIG') ? w.stop_signal : `SIG${w.stop_signal}`).toUpperCase() : 'SIGTERM';
  if (!SIGNALS.has(stopSignal)) throw new SpecError(`stop signal ${JSON.stringify(w.stop_signal)} is not one of ${[...SIGNALS].join(', ')}`);
  return {
    mode: mode(w),
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
    },
  };
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
  };
}
