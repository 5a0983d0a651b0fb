// A service's references to secrets and configs: checked from the wire (name, target path, uid,
// gid, mode), resolved to the objects they name, and guarded so that a secret is never removed
// while a service refers to it, even when the two writes race.
import { posix } from 'node:path';
import type { ObjectStore } from '../store/store.js';
import type { TxnOp } from '../store/types.js';
import type { ServiceObject, ServiceSpec, TaskTemplate } from '../services/model.js';
import { SpecError } from '../services/validate.js';
import { invalid } from '../security/errors.js';
import { DEFAULT_MODE, SECRETS_DIR, nameError, type FileKind, type FileRef } from './model.js';

/** FileReference as proto-loader gives it (snake_case; `mode` null when unset). */
export interface WireFileRef {
  name?: string;
  id?: string;
  target?: string;
  uid?: string;
  gid?: string;
  mode?: number | null;
}

/** Paths a file may not be mounted over: the kernel's filesystems the runtime sets up. */
const FORBIDDEN = ['/proc', '/sys', '/dev'];
const MAX_ID = 2 ** 32 - 2;

function numericId(v: string | undefined, what: string): number {
  if (v === undefined || v === '') return 0;
  if (!/^\d{1,10}$/.test(v) || Number(v) > MAX_ID) throw new SpecError(`${what} ${JSON.stringify(v)} must be a numeric id between 0 and ${MAX_ID}`);
  return Number(v);
}

/** Where a reference's file goes: secrets under /run/secrets, configs under / unless absolute. */
export function targetPath(kind: FileKind, name: string, target: string | undefined, where: string): string {
  const t = target || name;
  if (t.includes('\0')) throw new SpecError(`${where} target must not contain NUL`);
  if (t.length > 4096) throw new SpecError(`${where} target is longer than 4096 characters`);
  if (t.split('/').includes('..')) throw new SpecError(`${where} target ${JSON.stringify(t)} must not contain '..'`);
  const abs = posix.normalize(posix.isAbsolute(t) ? t : posix.join(kind === 'secret' ? SECRETS_DIR : '/', t));
  const clean = abs.length > 1 && abs.endsWith('/') ? abs.slice(0, -1) : abs;
  if (clean === '/' || t.endsWith('/')) throw new SpecError(`${where} target ${JSON.stringify(t)} must name a file, not a directory`);
  for (const f of FORBIDDEN) if (clean === f || clean.startsWith(f + '/')) throw new SpecError(`${where} target ${JSON.stringify(t)} is under ${f}, which the runtime mounts itself: choose another path`);
  return clean;
}

export function refFromWire(kind: FileKind, w: WireFileRef, i: number): FileRef {
  const where = `${kind}s[${i}]`;
  const bad = nameError(kind, w.name);
  if (bad) throw new SpecError(`${where}: ${bad}`);
  const name = w.name!;
  let mode = DEFAULT_MODE;
  if (w.mode !== undefined && w.mode !== null) {
    const m = Number(w.mode);
    if (!Number.isInteger(m) || m < 0 || m > 0o777) throw new SpecError(`${where} (${name}) mode ${Number.isInteger(m) && m >= 0 ? `0${m.toString(8)}` : String(w.mode)} is not valid: give permission bits between 0 and 0777 in octal (e.g. 0400); no setuid, setgid or sticky bit`);
    mode = m;
  }
  return {
    id: '',
    name,
    target: targetPath(kind, name, w.target, `${where} (${name})`),
    uid: numericId(w.uid, `${where} (${name}) uid`),
    gid: numericId(w.gid, `${where} (${name}) gid`),
    mode,
  };
}

/** The references of a spec from the wire; no two files may share a target. */
export function refsFromWire(secrets: WireFileRef[] | undefined, configs: WireFileRef[] | undefined): Pick<TaskTemplate, 'secrets' | 'configs'> {
  const s = (secrets ?? []).map((w, i) => refFromWire('secret', w, i));
  const c = (configs ?? []).map((w, i) => refFromWire('config', w, i));
  const seen = new Map<string, string>();
  for (const [kind, r] of [...s.map((r) => ['secret', r] as const), ...c.map((r) => ['config', r] as const)]) {
    const other = seen.get(r.target);
    if (other) throw new SpecError(`${kind} ${r.name} and ${other} both target ${r.target}: each file needs its own path`);
    seen.set(r.target, `${kind} ${r.name}`);
  }
  return { ...(s.length ? { secrets: s } : {}), ...(c.length ? { configs: c } : {}) };
}

export function refToWire(r: FileRef): WireFileRef {
  return { name: r.name, id: r.id, target: r.target, uid: String(r.uid), gid: String(r.gid), mode: r.mode };
}

function refs(t: TaskTemplate, kind: FileKind): FileRef[] {
  return (kind === 'secret' ? t.secrets : t.configs) ?? [];
}

/**
 * The spec with each reference's id filled in from its name; INVALID_ARGUMENT for a missing one.
 * `planned` (KIND/NAME -> id): the ones an apply creates in the same transaction.
 */
export function resolveRefs(store: Pick<ObjectStore, 'getByName'>, spec: ServiceSpec, planned?: ReadonlyMap<string, string>): ServiceSpec {
  const task = { ...spec.task };
  for (const kind of ['secret', 'config'] as const) {
    const list = refs(spec.task, kind);
    if (list.length === 0) continue;
    const out = list.map((r) => {
      const o = store.getByName(kind, r.name) ?? (planned?.has(`${kind}/${r.name}`) ? { id: planned.get(`${kind}/${r.name}`)! } : undefined);
      if (!o) throw invalid(`${kind} ${JSON.stringify(r.name)} does not exist: create it first ("shoal ${kind} create ${r.name} FILE"), or "shoal ${kind} ls" to see them`);
      return { ...r, id: o.id };
    });
    if (kind === 'secret') task.secrets = out;
    else task.configs = out;
  }
  return { ...spec, task };
}

/**
 * The operations that make a service write fail unless every secret and config it newly refers to
 * (not referred to by the spec it replaces) still exists, and that move those objects' versions:
 * a removal decided before this write (at the old version) then fails and looks again. Throws
 * INVALID_ARGUMENT when one is already gone (a rollback to a revision whose secret was removed).
 * `created`: ids the same transaction creates (nothing to guard).
 */
export function guardOps(store: ObjectStore, prev: ServiceSpec | undefined, next: ServiceSpec, created?: ReadonlySet<string>): TxnOp[] {
  const ops: TxnOp[] = [];
  for (const kind of ['secret', 'config'] as const) {
    const had = new Set(prev ? refs(prev.task, kind).map((r) => r.id) : []);
    for (const id of new Set(refs(next.task, kind).map((r) => r.id))) {
      if (had.has(id) || created?.has(id)) continue; // created in the same transaction
      const o = store.get(kind, id);
      if (!o) {
        const name = refs(next.task, kind).find((r) => r.id === id)!.name;
        throw invalid(`${kind} ${JSON.stringify(name)} (${id}) no longer exists: it was removed; create it again and reference it by name ("shoal service update --${kind}-rm ${name} --${kind}-add ${name}")`);
      }
      ops.push({ op: 'update', object: { kind, id: o.id, name: o.name, labels: o.labels, spec: o.spec, status: o.status }, expectVersion: o.version });
    }
  }
  return ops;
}

/**
 * The services that use a secret or config: their current spec refers to it (`spec`), or the
 * revision the updater's automatic rollback (and `service rollback`) returns to does (`rollback`).
 */
export function usedBy(services: ServiceObject[], kind: FileKind, id: string): { name: string; by: 'spec' | 'rollback' }[] {
  const uses = (s: ServiceSpec | undefined) => !!s && refs(s.task, kind).some((r) => r.id === id);
  const out: { name: string; by: 'spec' | 'rollback' }[] = [];
  for (const s of services) {
    // The automatic rollback goes to the next-to-last kept revision.
    const revs = s.status?.revisions ?? [];
    if (uses(s.spec)) out.push({ name: s.name, by: 'spec' });
    else if (uses(revs.length >= 2 ? revs[revs.length - 2]!.spec : undefined)) out.push({ name: s.name, by: 'rollback' });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}
