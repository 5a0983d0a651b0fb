// `shoal apply -f`, `shoal diff -f` and `shoal get service -o yaml`: manifests in and out.
// apply reads every file, reports every problem (file:line: field: what is wrong) and writes
// nothing unless all of it is valid; the cluster applies the whole stack (its secrets and configs
// first, then its services) in one transaction (Control.Apply), then apply follows the services it
// created or changed until they converge. A secret's content is sent, never printed.
import { CliError, call, controlClient, type Target } from './client.js';
import type { Flags } from './service.js';
import { duration } from './units.js';
import { loadManifest, type Manifest } from './manifest/load.js';
import { manifestDocs, manifestDocument } from './manifest/render.js';
import { unifiedDiff } from './manifest/diff.js';
import { formatProblem, type Problem } from './manifest/walk.js';
import type { ManifestService } from './manifest/schema.js';
import type { ManifestFile } from './manifest/files.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

const out = (v: unknown) => JSON.stringify(v, null, 2) + '\n';

function readManifest(f: Flags) {
  const files = f.all('file');
  if (files.length === 0) throw new CliError('give the manifest with -f FILE (a file, a folder of .yaml files, or - for standard input)', 2);
  const m = loadManifest(files);
  if (m.problems.length > 0) {
    throw new CliError(`${m.problems.length} problem(s) in ${m.files.join(', ')}; nothing was applied:\n${m.problems.map(formatProblem).join('\n')}`);
  }
  if (f.has('prune') && !m.stack) throw new CliError(`--prune needs a stack: write "stack: NAME" in the manifest (${m.files.join(', ')}); only services, secrets and configs that an apply of that stack created are ever removed`, 2);
  return m;
}

/** Where the cluster's answer about a service's field was written in the manifest. */
function placeField(svc: ManifestService, msg: string): { path: string; line: number } {
  const rules: [RegExp, (m: RegExpExecArray) => string][] = [
    [/^main\.(image|env|user|workdir|command|args|name)\b/, (m) => ({ image: 'image', env: 'env', user: 'user', workdir: 'workdir', command: 'entrypoint', args: 'command', name: 'image' })[m[1]!]!],
    [/^(sidecars|init)\[(\d+)\]/, (m) => m[1]!],
    [/^(constraint|constraints)\b/, () => 'constraints'],
    [/^spread preference/, () => 'spread'],
    [/^schedule\b/, () => 'schedule'],
    [/^(secret|config)s\[\d+\]/, (m) => `${m[1]}s`],
    [/^(secret|config) \S+ (does not exist|\(|and )/, (m) => `${m[1]}s`],
    [/^(restart)\b/, () => 'restart'],
    [/^(update|rollback)\b/, (m) => m[1]!],
    [/^limits\./, () => 'limit'],
    [/^reservations\./, () => 'reserve'],
    [/^stop signal/, () => 'stopSignal'],
    [/^stop grace period/, () => 'stopGracePeriod'],
    [/^(replicas|completions|mode)\b/, (m) => m[1]!],
    [/^max-concurrent/, () => 'maxConcurrent'],
    [/^label /, () => 'labels'],
    [/^is \S+ in the cluster: its mode/, () => 'mode'],
    [/^(is a scheduled job|has no schedule) in the cluster/, () => 'schedule'],
  ];
  for (const [re, field] of rules) {
    const m = re.exec(msg);
    if (!m) continue;
    const key = field(m);
    const line = svc.lines.get(key);
    if (line !== undefined) return { path: `services.${svc.name}.${key}`, line };
  }
  return { path: `services.${svc.name}`, line: svc.line };
}

/** Where the cluster's answer about a secret or config was written: its content, labels, or name. */
function placeFile(mf: ManifestFile, msg: string): { path: string; line: number } {
  const key = /content|data|bytes/.test(msg) ? (mf.lines.has('file') ? 'file' : 'data') : /^label/.test(msg) ? 'labels' : '';
  const line = key ? mf.lines.get(key) : undefined;
  return line !== undefined ? { path: `${mf.kind}s.${mf.name}.${key}`, line } : { path: `${mf.kind}s.${mf.name}`, line: mf.line };
}

/** The cluster's refusal, each problem placed at its service's, secret's or config's (or field's) line. */
export function placeRefusal(e: Error, m: Manifest): Error {
  const services = m.services;
  const text = e.message.replace(/^\d+ problems:\n/, '');
  const byName = new Map(services.map((s) => [s.name, s]));
  const fileByName = new Map([...m.secrets, ...m.configs].map((x) => [`${x.kind} ${x.name}`, x]));
  const placed: Problem[] = [];
  const rest: string[] = [];
  for (const l of text.split('\n')) {
    const fm = /^(secret|config) ([^:]+): (.*)$/s.exec(l);
    const mf = fm ? fileByName.get(`${fm[1]} ${fm[2]}`) : undefined;
    if (mf) {
      const at = placeFile(mf, fm![3]!);
      placed.push({ file: mf.file, line: at.line, path: at.path, message: fm![3]! });
      continue;
    }
    const m = /^service ([^:]+): (.*)$/s.exec(l);
    const svc = m ? byName.get(m[1]!) : undefined;
    if (!svc) {
      rest.push(l);
      continue;
    }
    const at = placeField(svc, m![2]!);
    placed.push({ file: svc.file, line: at.line, path: at.path, message: m![2]! });
  }
  if (placed.length === 0) return e;
  return new CliError(`the cluster refused the manifest; nothing was applied:\n${[...placed.map(formatProblem), ...rest].join('\n')}`);
}

/** Control.Apply's request for a manifest (secrets' and configs' content included). */
export function applyRequest(m: Manifest, prune: boolean, dryRun: boolean) {
  const file = (x: ManifestFile) => ({ name: x.name, labels: x.labels, data: x.data });
  return { stack: m.stack, prune, dry_run: dryRun, services: m.services.map((s) => ({ name: s.name, labels: s.labels, spec: s.spec })), secrets: m.secrets.map(file), configs: m.configs.map(file) };
}

async function callApply(t: Target, m: ReturnType<typeof readManifest>, f: Flags, dryRun: boolean): Promise<{ c: any; r: any }> {
  const c = controlClient(t);
  try {
    return { c, r: await call(c, 'Apply', applyRequest(m, f.has('prune'), dryRun), 120_000) };
  } catch (e) {
    throw placeRefusal(e as Error, m);
  }
}

const verb: Record<string, string> = { create: 'created', update: 'configured', unchanged: 'unchanged', prune: 'pruned', kept: 'kept' };

export async function applyCommand(t: Target, f: Flags, json: boolean): Promise<string> {
  const m = readManifest(f);
  const timeoutMs = f.has('timeout') ? duration(f.one('timeout')!, '--timeout') : 300_000;
  const { c, r } = await callApply(t, m, f, false);
  const changes: any[] = r.changes ?? [];
  const counts = (a: string) => changes.filter((x) => x.action === a).length;
  const summary = (['create', 'update', 'unchanged', 'prune', 'kept'] as const).filter((a) => counts(a) > 0).map((a) => `${counts(a)} ${verb[a]}`).join(', ') || 'nothing declared';
  const say = (s: string) => {
    if (!json) process.stdout.write(s + '\n');
  };
  for (const x of changes) say(`${x.kind || 'service'}/${x.name} ${verb[x.action] ?? x.action}${x.detail ? `: ${x.detail}` : ''}${x.rolls ? ' (rolling update)' : ''}`);
  const label = m.stack ? `stack ${m.stack}` : m.files.join(', ');
  // Only services are followed; a secret or config is done once written.
  const moved = changes.filter((x) => (x.kind || 'service') === 'service' && (x.action === 'create' || x.action === 'update'));
  if (counts('create') + counts('update') + counts('prune') === 0) {
    say(`${label}: no change (${summary})`);
    return json ? out({ applied: true, changed: false, changes: changes.map(changeJson) }) : '';
  }
  if (f.has('detach') || moved.length === 0) {
    say(`${label} applied: ${summary}${moved.length ? ' (not waiting: --detach)' : ''}`);
    return json ? out({ applied: true, changed: true, changes: changes.map(changeJson) }) : '';
  }
  const since = Date.now();
  const settled = await follow(c, moved, since, timeoutMs, say);
  say(`${label} applied: ${summary}; ${settled}`);
  return json ? out({ applied: true, changed: true, changes: changes.map(changeJson) }) : '';
}

function changeJson(x: any) {
  return { kind: x.kind, name: x.name, action: x.action, detail: x.detail, rolls: !!x.rolls };
}

/**
 * Follows the created and changed services until each converges (services: every slot running,
 * a rolling update completed; jobs: started; scheduled jobs: scheduled), printing each one's
 * progress when it changes. Throws on a paused or rolled-back update, or at the timeout.
 */
async function follow(c: any, moved: any[], since: number, timeoutMs: number, say: (s: string) => void): Promise<string> {
  const end = Date.now() + timeoutMs;
  const pending = new Map<string, any>(moved.map((x) => [x.name, x]));
  const shown = new Map<string, string>();
  const done: string[] = [];
  for (;;) {
    for (const [name, x] of pending) {
      const s = await call(c, 'GetService', { id: name });
      const mode = s.spec.mode;
      let line: string;
      let finished = false;
      if (s.spec.schedule) {
        const next = Number(s.schedule_status?.next_schedule_ms ?? 0);
        line = `${name}: scheduled "${s.spec.schedule.cron}"${next ? `, next run ${new Date(next).toISOString()}` : ' (suspended)'}`;
        finished = true;
      } else if (mode === 'replicated-job' || mode === 'global-job') {
        line = `${name}: job started (${s.completed_tasks}/${s.desired_tasks} completed)`;
        finished = true;
      } else {
        const tasks = (await call(c, 'ListTasks', { service: name, node: '' })).tasks ?? [];
        const latest = new Map<string, any>();
        for (const tk of tasks) {
          const key = Number(tk.slot) > 0 ? `s${tk.slot}` : `n${tk.node_id}`;
          if (tk.desired_state === 'running' && !latest.has(key)) latest.set(key, tk);
        }
        const live = [...latest.values()];
        const running = live.filter((tk) => tk.state === 'running').length;
        const want = Number(s.desired_tasks);
        const u = s.update_status;
        const ours = u && Number(u.started_at_ms) >= since - 2000;
        if (ours && (u.state === 'paused' || u.state === 'rollback_paused')) throw new CliError(`service ${name}: ${u.message}\n(see "shoal service ps ${name}"; nothing else of the apply is undone)`);
        if (ours && (u.state === 'rollback_started' || u.state === 'rollback_completed') && x.action === 'update') throw new CliError(`service ${name}: the update failed and ${u.state === 'rollback_started' ? 'is being' : 'was'} rolled back (${u.message})`);
        const updating = ours && u.state === 'updating';
        const fresh = live.filter((tk) => tk.up_to_date).length;
        line = updating ? `${name}: updating, ${fresh}/${want} updated, ${running}/${want} running` : `${name}: ${running}/${want} running`;
        const failing = live.find((tk) => tk.err);
        if (failing && !updating) line += ` (${failing.state}: ${failing.err})`;
        finished = !updating && running >= want && live.length >= want && Number(s.running_tasks) >= want;
      }
      if (shown.get(name) !== line) {
        shown.set(name, line);
        say(line);
      }
      if (finished) {
        pending.delete(name);
        done.push(name);
      }
    }
    if (pending.size === 0) return `${done.join(', ')} converged`;
    if (Date.now() > end) throw new CliError(`not converged within ${timeoutMs / 1000} s: ${[...pending.keys()].map((n) => shown.get(n) ?? n).join('; ')}\nthe cluster goes on trying; see "shoal service ps SERVICE"`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export async function diffCommand(t: Target, f: Flags, json: boolean): Promise<string> {
  const m = readManifest(f);
  const { r } = await callApply(t, m, f, true);
  const changes: any[] = r.changes ?? [];
  if (json) return out(changes.map((x) => ({ ...changeJson(x), current: x.current ? manifestDocument([x.current]) : null, desired: x.desired ? manifestDocument([x.desired]) : null })));
  let text = '';
  for (const x of changes) {
    if (x.action === 'unchanged') continue;
    if (x.kind === 'secret' || x.kind === 'config') {
      // Only the name and size: a secret's content is never shown (nor is a config's compared).
      const what = x.action === 'create' ? `would be created (${x.detail})` : x.action === 'prune' ? `would be pruned (${x.detail})` : x.action === 'kept' ? x.detail : `would be configured (${x.detail})`;
      text += `${x.kind}/${x.name}: ${what}\n`;
      continue;
    }
    text += `service/${x.name}: ${x.action === 'prune' ? 'would be pruned' : x.action === 'create' ? 'would be created' : 'would be configured'}${x.detail ? ` (${x.detail})` : ''}${x.rolls ? '; its tasks would be replaced (rolling update)' : ''}\n`;
    const a = x.current ? manifestDocument([x.current]) : '';
    const b = x.action === 'prune' ? '' : manifestDocument([x.desired]);
    text += unifiedDiff(a, b, x.current ? `service/${x.name} (cluster)` : '/dev/null', x.action === 'prune' ? '/dev/null' : `service/${x.name} (manifest)`);
  }
  const n = changes.filter((x) => x.action !== 'unchanged' && x.action !== 'kept').length;
  const kinds = (['service', 'secret', 'config'] as const).map((k) => [k, changes.filter((x) => (x.kind || 'service') === k).length] as const).filter(([k, c]) => c > 0 || k === 'service').map(([k, c]) => `${c} ${k}(s)`).join(', ');
  return text + (n === 0 ? `no change: the cluster matches ${m.stack ? `stack ${m.stack}` : m.files.join(', ')} (${kinds})\n` : `${n} change(s); nothing was applied ("shoal apply -f ..." applies them)\n`);
}

export async function getCommand(t: Target, sub: string | undefined, names: string[], f: Flags): Promise<string> {
  if (sub !== 'service' && sub !== 'services') throw new CliError('usage: shoal get service [NAME...] [--stack S] [-o yaml|json]', 2);
  const fmt = f.one('output') ?? 'yaml';
  if (fmt !== 'yaml' && fmt !== 'json') throw new CliError(`-o must be yaml or json, got ${JSON.stringify(fmt)}`, 2);
  const c = controlClient(t);
  let list: any[];
  if (names.length > 0) {
    list = [];
    for (const n of names) list.push(await call(c, 'GetService', { id: n }));
  } else list = (await call(c, 'ListServices', {})).services ?? [];
  const stack = f.one('stack');
  if (stack) list = list.filter((s) => s.labels?.['io.shoal.stack'] === stack);
  if (list.length === 0) throw new CliError(stack ? `no service of stack ${stack}` : 'no services');
  const items = list.map((s) => ({ name: s.name, spec: s.spec, labels: s.labels ?? {} }));
  if (fmt === 'json') {
    const docs = manifestDocs(items);
    if (docs.length > 1) throw new CliError('these services belong to several stacks: one JSON document holds one; use --stack S, or -o yaml (one document per stack)');
    return out(docs[0]);
  }
  return manifestDocument(items);
}
