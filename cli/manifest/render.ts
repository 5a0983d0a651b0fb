// Writes a service (as the control API returns it, defaults filled in) in the manifest's form:
// what `shoal get service NAME -o yaml` prints and `shoal diff` compares. Every field the cluster
// holds is written (no defaults left to guess), in the units the flags use, so applying the output
// unchanged gives the same spec.
import { Document, isScalar, visit } from 'yaml';

/* eslint-disable @typescript-eslint/no-explicit-any */

const STACK_LABEL = 'io.shoal.stack';

/**
 * The ServiceSpec fields (control.proto) a manifest carries. A field added to the API but not to
 * the manifest would be dropped by `get -o yaml` and removed by the next apply: the round-trip
 * test compares this list with the .proto. force_update is the one left out on purpose (a
 * `service update --force` counter, not part of a declared spec; apply keeps it).
 */
export const MANIFEST_SPEC_FIELDS = ['mode', 'replicas', 'completions', 'max_concurrent', 'main', 'sidecars', 'init', 'reservations', 'limits', 'constraints', 'spread', 'restart', 'stop_grace_period_ms', 'stop_signal', 'update', 'rollback', 'probes', 'schedule', 'secrets', 'configs', 'mounts', 'networks', 'endpoint_mode', 'ports', 'force_update'];

const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));

export function durationText(ms: number): string {
  if (ms === 0) return '0s';
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

export function sizeText(b: number): string | number {
  for (const [unit, size] of [['Gi', 1024 ** 3], ['Mi', 1024 ** 2], ['Ki', 1024]] as const) if (b > 0 && b % size === 0) return `${b / size}${unit}`;
  return b;
}

export function cpuText(millis: number): string | number {
  return millis % 1000 === 0 ? millis / 1000 : `${millis}m`;
}

function envOut(env: string[]): Record<string, string> | string[] | undefined {
  if (!env?.length) return undefined;
  const keys = env.map((e) => e.slice(0, e.indexOf('=')));
  if (new Set(keys).size !== keys.length) return env; // a name twice: only the list says it exactly
  return Object.fromEntries(env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

function containerOut(c: any, named: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (named) o.name = c.name;
  o.image = c.image;
  if (c.command?.length) o.entrypoint = [...c.command];
  if (c.args?.length) o.command = [...c.args];
  const env = envOut(c.env);
  if (env) o.env = env;
  if (c.workdir) o.workdir = c.workdir;
  if (c.user) o.user = c.user;
  return o;
}

function resourcesOut(r: any): Record<string, unknown> | undefined {
  const o: Record<string, unknown> = {};
  if (num(r?.cpu_millis) !== undefined) o.cpu = cpuText(num(r.cpu_millis)!);
  if (num(r?.memory_bytes) !== undefined) o.memory = sizeText(num(r.memory_bytes)!);
  return Object.keys(o).length ? o : undefined;
}

function updateOut(u: any): Record<string, unknown> | undefined {
  if (!u) return undefined;
  return {
    parallelism: num(u.parallelism),
    delay: durationText(num(u.delay_ms) ?? 0),
    order: u.order,
    failureAction: u.failure_action,
    monitor: durationText(num(u.monitor_ms) ?? 0),
    maxFailureRatio: num(u.max_failure_ratio) ?? 0,
  };
}

function probeOut(p: any): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (p.type === 'exec') o.exec = [...p.command];
  else if (p.type === 'http') o.http = { port: num(p.port), path: p.path || '/' };
  else o.tcp = { port: num(p.port) };
  o.delay = durationText(num(p.initial_delay_ms) ?? 0);
  o.period = durationText(num(p.period_ms) ?? 0);
  o.timeout = durationText(num(p.timeout_ms) ?? 0);
  o.successes = num(p.success_threshold);
  o.failures = num(p.failure_threshold);
  return o;
}

function scheduleOut(s: any): Record<string, unknown> {
  const o: Record<string, unknown> = { cron: s.cron, timezone: s.time_zone || 'UTC', concurrency: s.concurrency_policy || 'allow' };
  if (num(s.starting_deadline_seconds) !== undefined) o.startingDeadline = durationText(num(s.starting_deadline_seconds)! * 1000);
  o.keepSucceeded = num(s.successful_runs_history_limit);
  o.keepFailed = num(s.failed_runs_history_limit);
  o.suspend = !!s.suspend;
  return o;
}

/** A secret or config reference with everything the cluster filled in (mode as an octal string). */
function fileRefOut(r: any): Record<string, unknown> {
  return { name: r.name, target: r.target, uid: Number(r.uid || 0), gid: Number(r.gid || 0), mode: `0${(num(r.mode) ?? 0o444).toString(8).padStart(3, '0')}` };
}

/** A mount: a named volume's source, or a class mount's class, size and claim name (source). */
function mountOut(m: any): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (m.class) {
    o.class = m.class;
    o.size = sizeText(num(m.size_bytes) ?? 0);
  }
  o.source = m.source;
  o.target = m.target;
  o.readonly = !!m.readonly;
  return o;
}

/** One service's manifest fields, from its wire spec and labels (the stack label left out). */
export function serviceManifest(spec: any, labels: Record<string, string> = {}): Record<string, unknown> {
  const o: Record<string, unknown> = containerOut(spec.main ?? {}, false);
  const own = Object.fromEntries(Object.entries(labels).filter(([k]) => k !== STACK_LABEL));
  if (Object.keys(own).length) o.labels = own;
  o.mode = spec.mode || 'replicated';
  if (o.mode === 'replicated') o.replicas = num(spec.replicas) ?? 1;
  if (o.mode === 'replicated-job') {
    o.completions = num(spec.completions);
    o.maxConcurrent = num(spec.max_concurrent);
  }
  if (spec.schedule) o.schedule = scheduleOut(spec.schedule);
  if (spec.constraints?.length) o.constraints = [...spec.constraints];
  if (spec.spread?.length) o.spread = [...spec.spread];
  const reserve = resourcesOut(spec.reservations);
  if (reserve) o.reserve = reserve;
  const limit = resourcesOut(spec.limits);
  if (limit) o.limit = limit;
  if (spec.restart) {
    o.restart = { condition: spec.restart.condition || 'any', delay: durationText(num(spec.restart.delay_ms) ?? 0), maxAttempts: num(spec.restart.max_attempts) ?? 0, window: durationText(num(spec.restart.window_ms) ?? 0) };
  }
  if (num(spec.stop_grace_period_ms) !== undefined) o.stopGracePeriod = durationText(num(spec.stop_grace_period_ms)!);
  if (spec.stop_signal) o.stopSignal = spec.stop_signal;
  for (const p of spec.probes ?? []) o[p.kind] = probeOut(p);
  const up = updateOut(spec.update);
  if (up) o.update = up;
  const rb = updateOut(spec.rollback);
  if (rb) o.rollback = rb;
  if (spec.init?.length) o.init = spec.init.map((c: any) => containerOut(c, true));
  if (spec.sidecars?.length) o.sidecars = spec.sidecars.map((c: any) => containerOut(c, true));
  if (spec.secrets?.length) o.secrets = spec.secrets.map(fileRefOut);
  if (spec.configs?.length) o.configs = spec.configs.map(fileRefOut);
  if (spec.networks?.length) o.networks = [...spec.networks];
  if (spec.endpoint_mode) o.endpointMode = spec.endpoint_mode;
  if (spec.ports?.length) o.ports = spec.ports.map((p: any) => ({ published: num(p.published_port), target: num(p.target_port), protocol: p.protocol || 'tcp', mode: p.publish_mode || 'ingress' }));
  if (spec.mounts?.length) o.mounts = spec.mounts.map(mountOut);
  return o;
}

/** Manifest documents for services: one per stack (the stack, when they carry one, and the services). */
export function manifestDocs(services: { name: string; spec: any; labels?: Record<string, string> }[]): Record<string, unknown>[] {
  const stacks = new Set(services.map((s) => s.labels?.[STACK_LABEL] ?? ''));
  const docs: Record<string, unknown>[] = [];
  for (const stack of [...stacks].sort()) {
    const doc: Record<string, unknown> = {};
    if (stack) doc.stack = stack;
    doc.services = Object.fromEntries(services.filter((s) => (s.labels?.[STACK_LABEL] ?? '') === stack).map((s) => [s.name, serviceManifest(s.spec, s.labels)]));
    docs.push(doc);
  }
  return docs;
}

/** The same as YAML (documents separated by ---). */
export function manifestDocument(services: { name: string; spec: any; labels?: Record<string, string> }[]): string {
  return manifestDocs(services).map(yamlText).join('---\n');
}

/** YAML with lists of plain values on one line ([httpd, -f, -p, "8080"]), mappings in blocks. */
function yamlText(v: unknown): string {
  const doc = new Document(v);
  visit(doc, {
    Seq(_, node) {
      if (node.items.every((x) => isScalar(x))) node.flow = true;
    },
  });
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}
