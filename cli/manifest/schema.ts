// The manifest's schema: a document `stack:` + `services:` whose service fields mirror the
// `shoal service create` flags (image, command, env, replicas, reserve/limit, restart, probes,
// update/rollback, init/sidecars, schedule ...), checked field by field and turned into the
// control API's ServiceSpec. Every problem names its file, line and field. The cluster checks the
// spec again (image references, constraints, cron syntax): its answer is mapped back to a line by
// apply.ts. Field names and units are the flags' (durations 5s, sizes 64M or 64Mi, CPUs 0.5 or
// 500m); render.ts writes the same form back, so `shoal get -o yaml` output applies unchanged.
import { isScalar, isSeq } from 'yaml';
import { CliError } from '../client.js';
import { bytes, cpus, duration, splitWords } from '../units.js';
import { parsePublish } from '../network.js';
import { At, Fields, bool, int, list, oneOf, required, shown, str, word, words } from './walk.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

export const MODES = ['replicated', 'global', 'replicated-job', 'global-job'] as const;
export const TOP_FIELDS = ['stack', 'services', 'secrets', 'configs'] as const;
export const SERVICE_FIELDS = ['image', 'command', 'entrypoint', 'env', 'workdir', 'user', 'labels', 'mode', 'replicas', 'completions', 'maxConcurrent', 'constraints', 'spread', 'reserve', 'limit', 'restart', 'stopGracePeriod', 'stopSignal', 'liveness', 'readiness', 'startup', 'update', 'rollback', 'init', 'sidecars', 'schedule', 'secrets', 'configs', 'networks', 'endpointMode', 'ports', 'mounts'] as const;
export const CONTAINER_FIELDS = ['name', 'image', 'command', 'entrypoint', 'env', 'workdir', 'user'] as const;
const RESOURCE_FIELDS = ['cpu', 'memory'];
const RESTART_FIELDS = ['condition', 'delay', 'maxAttempts', 'window'];
const UPDATE_FIELDS = ['parallelism', 'delay', 'order', 'failureAction', 'monitor', 'maxFailureRatio'];
const PROBE_FIELDS = ['exec', 'http', 'tcp', 'delay', 'period', 'timeout', 'successes', 'failures'];
const FILE_REF_FIELDS = ['name', 'target', 'uid', 'gid', 'mode'];
const PORT_FIELDS = ['published', 'target', 'protocol', 'mode'];
const MOUNT_FIELDS = ['type', 'source', 'target', 'readonly', 'class', 'size'];
const SCHEDULE_FIELDS = ['cron', 'timezone', 'concurrency', 'startingDeadline', 'keepSucceeded', 'keepFailed', 'suspend'];
export const PROBE_KINDS = ['liveness', 'readiness', 'startup'] as const;

/** A service as the manifest declares it, ready for Control.Apply, with where it was written. */
export interface ManifestService {
  name: string;
  labels: Record<string, string>;
  spec: any;
  file: string;
  line: number;
  /** Where each field of the service was written (manifest path -> line), to place the cluster's errors. */
  lines: Map<string, number>;
}

function viaUnits<T>(at: At, parse: (s: string) => T, what: string): T | undefined {
  if (!at.present) return undefined;
  const v = isScalar(at.node) ? at.node.value : undefined;
  if (typeof v !== 'string' && typeof v !== 'number') return at.problem(`expected ${what}, got ${shown(at.node)}`);
  try {
    return parse(String(v));
  } catch (e) {
    if (e instanceof CliError) return at.problem(`expected ${what}, got ${shown(at.node)}`);
    throw e;
  }
}

export function durationMs(at: At): number | undefined {
  if (at.present && isScalar(at.node) && at.node.value === 0) return 0;
  return viaUnits(at, (s) => duration(s, ''), 'a duration like 500ms, 5s, 2m or 1h');
}

function sizeBytes(at: At): number | undefined {
  if (at.present && isScalar(at.node) && typeof at.node.value === 'number') return int(at);
  return viaUnits(at, (s) => bytes(s, ''), 'a size like 64M, 1G or 512Mi (or a number of bytes)');
}

function cpuMillis(at: At): number | undefined {
  return viaUnits(at, (s) => cpus(s, ''), 'a number of CPUs like 0.5, or millicores like 500m');
}

function ratio(at: At): number | undefined {
  if (!at.present) return undefined;
  const v = isScalar(at.node) ? at.node.value : undefined;
  if (typeof v !== 'number' || v < 0 || v > 1) return at.problem(`expected a number between 0 and 1, got ${shown(at.node)}`);
  return v;
}

/** env as a list of KEY=VALUE, or a mapping KEY: VALUE. */
function env(at: At): string[] | undefined {
  if (!at.present) return undefined;
  if (isSeq(at.node)) {
    const ws = words(at);
    if (!ws) return undefined;
    ws.forEach((e, i) => {
      if (!/^[A-Za-z_][A-Za-z0-9_.-]*=/.test(e)) at.item(i, (at.node as any).items[i]).problem(`expected KEY=VALUE with KEY of letters, digits and _ (not starting with a digit), got ${JSON.stringify(e)}`);
    });
    return ws;
  }
  const f = Fields.any(at, 'a mapping of NAME: value, or a list of NAME=value');
  if (!f) return undefined;
  const out: string[] = [];
  for (const k of f.keys()) {
    const v = f.get(k);
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k)) {
      v.problem('variable names are letters, digits and _ (not starting with a digit)');
      continue;
    }
    const w = v.node === null || (isScalar(v.node) && v.node.value === null) ? '' : word(v);
    if (w !== undefined) out.push(`${k}=${w}`);
  }
  return out;
}

function labels(at: At): Record<string, string> {
  const out: Record<string, string> = {};
  const f = Fields.any(at, 'a mapping of label: value');
  if (!f) return out;
  for (const k of f.keys()) {
    const v = word(f.get(k));
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** A command: a list of words, or one string split as a shell would (quotes kept together). */
function command(at: At): string[] | undefined {
  if (!at.present) return undefined;
  if (isScalar(at.node) && typeof at.node.value === 'string') {
    try {
      return splitWords(at.node.value);
    } catch (e) {
      if (e instanceof CliError) return at.problem(e.message);
      throw e;
    }
  }
  return words(at, 'a list of words, or a command line as one string');
}

/** A container's fields: the service's own (the main container) or an init/sidecar entry's. */
function container(f: Fields | undefined, named: boolean): any {
  if (!f) return undefined;
  const name = named ? (required(f.get('name'), 'the container\'s name, unique in the pod') ? str(f.get('name')) : undefined) : 'main';
  const image = required(f.get('image'), 'the container image, e.g. registry.example:5000/team/app:1.2') ? str(f.get('image')) : undefined;
  return {
    name: name ?? '',
    image: image ?? '',
    command: command(f.get('entrypoint')) ?? [],
    args: command(f.get('command')) ?? [],
    env: env(f.get('env')) ?? [],
    workdir: str(f.get('workdir')) ?? '',
    user: word(f.get('user')) ?? '',
  };
}

function resources(at: At): any {
  const f = Fields.of(at, RESOURCE_FIELDS);
  if (!f) return { cpu_millis: null, memory_bytes: null };
  return { cpu_millis: cpuMillis(f.get('cpu')) ?? null, memory_bytes: sizeBytes(f.get('memory')) ?? null };
}

function update(at: At): any {
  const f = Fields.of(at, UPDATE_FIELDS);
  if (!f) return null;
  return {
    parallelism: int(f.get('parallelism')) ?? null,
    delay_ms: durationMs(f.get('delay')) ?? null,
    order: oneOf(f.get('order'), ['stop-first', 'start-first'] as const) ?? '',
    failure_action: oneOf(f.get('failureAction'), ['pause', 'continue', 'rollback'] as const) ?? '',
    monitor_ms: durationMs(f.get('monitor')) ?? null,
    max_failure_ratio: ratio(f.get('maxFailureRatio')) ?? null,
  };
}

function probe(at: At, kind: string): any {
  const f = Fields.of(at, PROBE_FIELDS);
  if (!f) return undefined;
  const how = ['exec', 'http', 'tcp'].filter((k) => f.has(k));
  if (how.length !== 1) {
    at.problemAtKey(how.length === 0 ? 'a probe needs one of exec (a command), http (port, path) or tcp (port)' : `a probe has one of exec, http or tcp, not ${how.join(' and ')}`);
    return undefined;
  }
  const p: any = { kind, type: how[0], command: [], path: '', port: 0 };
  if (how[0] === 'exec') p.command = command(f.get('exec')) ?? [];
  else {
    const h = Fields.of(f.get(how[0]!), how[0] === 'http' ? ['port', 'path'] : ['port']);
    if (h) {
      if (required(h.get('port'), 'the port to probe (1-65535)')) {
        const port = int(h.get('port'), 1);
        if (port !== undefined && port > 65535) h.get('port').problem(`expected a port between 1 and 65535, got ${port}`);
        p.port = port ?? 0;
      }
      if (how[0] === 'http') p.path = str(h.get('path')) ?? '/';
    }
  }
  p.initial_delay_ms = durationMs(f.get('delay')) ?? null;
  p.period_ms = durationMs(f.get('period')) ?? null;
  p.timeout_ms = durationMs(f.get('timeout')) ?? null;
  p.success_threshold = int(f.get('successes'), 1) ?? null;
  p.failure_threshold = int(f.get('failures'), 1) ?? null;
  return p;
}

function schedule(at: At): any {
  if (!at.present) return null;
  if (isScalar(at.node) && typeof at.node.value === 'string') return { cron: at.node.value, time_zone: '', concurrency_policy: '', starting_deadline_seconds: null, successful_runs_history_limit: null, failed_runs_history_limit: null, suspend: false };
  const f = Fields.of(at, SCHEDULE_FIELDS, 'a cron expression, or a mapping with cron, timezone, concurrency, ...');
  if (!f) return null;
  required(f.get('cron'), 'the cron expression, e.g. "*/5 * * * *"');
  const deadline = durationMs(f.get('startingDeadline'));
  if (deadline !== undefined && deadline % 1000 !== 0) f.get('startingDeadline').problem(`expected whole seconds, got ${deadline} ms`);
  return {
    cron: str(f.get('cron')) ?? '',
    time_zone: str(f.get('timezone')) ?? '',
    concurrency_policy: oneOf(f.get('concurrency'), ['allow', 'forbid', 'replace'] as const) ?? '',
    starting_deadline_seconds: deadline !== undefined ? deadline / 1000 : null,
    successful_runs_history_limit: int(f.get('keepSucceeded')) ?? null,
    failed_runs_history_limit: int(f.get('keepFailed')) ?? null,
    suspend: bool(f.get('suspend')) ?? false,
  };
}

/**
 * A file mode: a string of octal digits ("0400", as `ls -l` people write it), or YAML 1.2's 0o400.
 * A bare 0400 is the decimal 400 in YAML 1.2: refused, rather than read as a different mode.
 */
function fileMode(at: At): number | undefined {
  if (!at.present) return undefined;
  const n = at.node as any;
  if (isScalar(n) && typeof n.value === 'string' && /^0?[0-7]{1,3}$/.test(n.value)) return parseInt(n.value, 8);
  if (isScalar(n) && typeof n.value === 'number' && n.format === 'OCT' && n.value <= 0o777) return n.value;
  return at.problem(`expected permission bits in octal as a string, like "0400" (a bare 0400 is the number 400 in YAML 1.2), got ${shown(n)}`);
}

/** secrets/configs: a list of NAME, or of {name, target, uid, gid, mode} (as --secret's fields). */
function fileRefs(at: At, kind: 'secret' | 'config'): any[] {
  const items = list(at, `a list of ${kind} names, or of mappings with name, target, uid, gid, mode`) ?? [];
  const out: any[] = [];
  for (const x of items) {
    if (isScalar(x.at.node)) {
      const name = str(x.at);
      if (name !== undefined) out.push({ name, target: '', uid: '', gid: '', mode: null });
      continue;
    }
    const f = Fields.of(x.at, FILE_REF_FIELDS, `a ${kind}: its name, or a mapping with name, target, uid, gid, mode`);
    if (!f) continue;
    if (!required(f.get('name'), `the ${kind}'s name ("shoal ${kind} ls" lists them)`)) continue;
    const uid = int(f.get('uid'));
    const gid = int(f.get('gid'));
    out.push({ name: str(f.get('name')) ?? '', target: str(f.get('target')) ?? '', uid: uid === undefined ? '' : String(uid), gid: gid === undefined ? '' : String(gid), mode: fileMode(f.get('mode')) ?? null });
  }
  return out;
}

/**
 * ports: a list of --publish values (`8080:80`, `53:53/udp,mode=host`), or of mappings with
 * published, target, protocol (tcp|udp) and mode (ingress|host), as render.ts writes them.
 */
function ports(at: At): any[] {
  const items = list(at, 'a list of published ports: "PUBLISHED:TARGET[/udp][,mode=host]", or mappings with published, target, protocol, mode') ?? [];
  const out: any[] = [];
  for (const x of items) {
    if (isScalar(x.at.node)) {
      const v = str(x.at, 'a published port like "8080:80"');
      if (v === undefined) continue;
      try {
        out.push(parsePublish(v));
      } catch (e) {
        if (!(e instanceof CliError)) throw e;
        x.at.problem(`expected PUBLISHED:TARGET[/tcp|udp][,mode=ingress|host], like "8080:80", got ${JSON.stringify(v)}`);
      }
      continue;
    }
    const f = Fields.of(x.at, PORT_FIELDS, 'a published port: "PUBLISHED:TARGET", or a mapping with published, target, protocol, mode');
    if (!f) continue;
    if (!required(f.get('published'), 'the port published on the nodes') || !required(f.get('target'), "the port in the service's tasks")) continue;
    out.push({ protocol: oneOf(f.get('protocol'), ['tcp', 'udp'] as const) ?? 'tcp', target_port: int(f.get('target'), 1) ?? 0, published_port: int(f.get('published'), 1) ?? 0, publish_mode: oneOf(f.get('mode'), ['ingress', 'host'] as const) ?? 'ingress' });
  }
  return out;
}

/**
 * mounts: a list of {source, target, readonly} (a named volume) or {class, size, source, target}
 * (a volume per slot), as --mount's fields. The cluster checks the rest (a source or a class, the
 * volume or class exists): its answer is placed on the line by apply.ts.
 */
function mounts(at: At): any[] {
  const items = list(at, 'a list of mappings with source (or class and size), target, readonly') ?? [];
  const out: any[] = [];
  for (const x of items) {
    const f = Fields.of(x.at, MOUNT_FIELDS, 'a mount: a mapping with source (or class and size), target, readonly');
    if (!f) continue;
    if (!required(f.get('target'), 'the absolute path in the container, e.g. /data')) continue;
    out.push({
      type: oneOf(f.get('type'), ['volume'] as const) ?? 'volume',
      source: str(f.get('source')) ?? '',
      target: str(f.get('target')) ?? '',
      readonly: bool(f.get('readonly')) ?? false,
      class: str(f.get('class')) ?? '',
      size_bytes: sizeBytes(f.get('size')) ?? 0,
    });
  }
  return out;
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** One service of `services:`; problems go to the document's list. */
export function serviceOf(name: string, at: At): ManifestService | undefined {
  const start = at.doc.problems.length;
  if (!DNS_LABEL.test(name)) at.problemAtKey(`service name ${JSON.stringify(name)} is not valid: use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit (it becomes a DNS name)`);
  const f = Fields.of(at, SERVICE_FIELDS, "a mapping of the service's fields (image, replicas, ...)");
  if (!f) return undefined;
  const lines = new Map<string, number>();
  for (const k of f.keys()) lines.set(k, f.get(k).line);
  const main = container(f, false);
  const mode = oneOf(f.get('mode'), MODES) ?? 'replicated';
  const only = (field: string, modes: string[]) => {
    if (f.has(field) && !modes.includes(mode)) f.get(field).problem(`applies to mode ${modes.join(' or ')} only (this service is ${mode})`);
  };
  only('replicas', ['replicated']);
  only('completions', ['replicated-job']);
  only('maxConcurrent', ['replicated-job']);
  only('schedule', ['replicated-job', 'global-job']);
  const probes: any[] = [];
  for (const k of PROBE_KINDS) {
    const p = probe(f.get(k), k);
    if (p) probes.push(p);
  }
  const restart = Fields.of(f.get('restart'), RESTART_FIELDS);
  const extra = (key: 'init' | 'sidecars') => (list(f.get(key), 'a list of containers (name, image, command, ...)') ?? []).map((x) => container(Fields.of(x.at, CONTAINER_FIELDS, 'a container (name, image, command, ...)'), true)).filter(Boolean);
  const spec = {
    mode,
    replicas: int(f.get('replicas')) ?? null,
    completions: int(f.get('completions')) ?? null,
    max_concurrent: int(f.get('maxConcurrent'), 1) ?? null,
    main: main ?? {},
    sidecars: extra('sidecars'),
    init: extra('init'),
    reservations: resources(f.get('reserve')),
    limits: resources(f.get('limit')),
    constraints: words(f.get('constraints')) ?? [],
    spread: words(f.get('spread')) ?? [],
    restart: restart
      ? {
          condition: oneOf(restart.get('condition'), ['none', 'on-failure', 'any'] as const) ?? '',
          delay_ms: durationMs(restart.get('delay')) ?? null,
          max_attempts: int(restart.get('maxAttempts')) ?? null,
          window_ms: durationMs(restart.get('window')) ?? null,
        }
      : null,
    stop_grace_period_ms: durationMs(f.get('stopGracePeriod')) ?? null,
    stop_signal: str(f.get('stopSignal')) ?? '',
    update: update(f.get('update')),
    rollback: update(f.get('rollback')),
    probes,
    schedule: schedule(f.get('schedule')),
    secrets: fileRefs(f.get('secrets'), 'secret'),
    configs: fileRefs(f.get('configs'), 'config'),
    networks: words(f.get('networks'), 'a list of network names') ?? [],
    endpoint_mode: oneOf(f.get('endpointMode'), ['vip', 'dnsrr'] as const) ?? '',
    ports: ports(f.get('ports')),
    mounts: mounts(f.get('mounts')),
  };
  if (at.doc.problems.length > start) return undefined;
  return { name, labels: labels(f.get('labels')), spec, file: at.doc.file, line: at.keyLine, lines };
}
