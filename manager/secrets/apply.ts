// The secrets and configs a stack declares, in Control.Apply's plan (manager/services/apply.ts):
// a missing one is created, one that holds the same data is unchanged (or relabelled), and one
// that holds other data is refused: secrets and configs are immutable, so a new content takes a
// new name that the services move to (which rolls them). With prune, the stack's own ones the
// request no longer declares are removed once no service (nor the revision a rollback returns to)
// uses them. A secret's data is compared in memory after opening it with the data key; it is never
// answered back, logged or put in a message.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { ServiceObject } from '../services/model.js';
import { SpecError } from '../services/validate.js';
import type { StoreObject } from '../store/types.js';
import { MAX_SIZE, nameError, type ConfigObject, type FileKind } from './model.js';
import { usedBy } from './refs.js';

/** A secret or config as the request declares it (ApplyFile). */
export interface ApplyFileReq {
  name: string;
  labels: Record<string, string>;
  data: Uint8Array;
}

/** One apply carries at most this much secret and config data (the API takes 4 MiB messages). */
export const MAX_APPLY_DATA = 3 * 1024 * 1024;

export interface FileStep {
  kind: FileKind;
  name: string;
  action: 'create' | 'update' | 'unchanged' | 'prune' | 'kept';
  detail: string;
  /** Always false: a secret or config step never replaces tasks by itself. */
  rolls: false;
  /** The id a create gives it (services of the same apply refer to it by this id). */
  id?: string;
  current?: StoreObject;
  labels?: Record<string, string>;
  data?: Buffer;
}

/** What the plan needs to know of the cluster's secrets and configs. */
export interface FilesView {
  list(kind: FileKind): StoreObject[];
  /** Whether an existing object holds exactly `data` (a secret is opened with the data key). */
  holds(o: StoreObject, data: Buffer): boolean;
  newId?(): string;
}

export function randFileId(): string {
  return BigInt('0x' + randomBytes(16).toString('hex')).toString(36).padStart(25, '0');
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A config's data is kept as it is; a secret's is opened by `open` (the leader's data key). */
export function holdsWith(open: (o: StoreObject) => Buffer): FilesView['holds'] {
  return (o, data) => sameBytes(o.kind === 'config' ? Buffer.from((o as ConfigObject).spec.data) : open(o), data);
}

function size(n: number): string {
  return n < 1024 ? `${n} bytes` : `${(n / 1024).toFixed(1)} KiB`;
}

/**
 * The declared secrets and configs against the cluster's: one step each, in request order.
 * Problems are pushed to `problems` as "KIND NAME: ..." (the CLI places them at their lines).
 * `planned` receives KIND/NAME -> id of each declared one, so the services resolve their
 * references to those created by this very apply.
 */
export function planFiles(
  req: { stack: string; secrets?: ApplyFileReq[]; configs?: ApplyFileReq[] },
  view: FilesView,
  checkLabels: (l: Record<string, string> | undefined) => Record<string, string>,
  stackLabel: string,
  problems: string[],
  planned: Map<string, string>,
): FileStep[] {
  const steps: FileStep[] = [];
  const stack = req.stack ?? '';
  let total = 0;
  for (const kind of ['secret', 'config'] as const) {
    const list = (kind === 'secret' ? req.secrets : req.configs) ?? [];
    const byName = new Map(view.list(kind).map((o) => [o.name, o]));
    const seen = new Set<string>();
    for (const w of list) {
      const where = `${kind} ${w.name || '(no name)'}`;
      try {
        const bad = nameError(kind, w.name);
        if (bad) throw new SpecError(bad);
        if (seen.has(w.name)) throw new SpecError('declared twice');
        seen.add(w.name);
        const data = Buffer.from(w.data ?? []);
        total += data.length;
        if (data.length === 0) throw new SpecError('the data is empty: give a file with content');
        if (data.length > MAX_SIZE[kind]) throw new SpecError(`the data is ${data.length} bytes, over the limit of ${MAX_SIZE[kind]} bytes (${MAX_SIZE[kind] / 1024} KiB) for a ${kind}`);
        const labels = checkLabels(w.labels);
        if (stackLabel in labels) throw new SpecError(`label ${stackLabel} is set by apply from the stack name; leave it out`);
        if (stack) labels[stackLabel] = stack;
        const cur = byName.get(w.name);
        if (!cur) {
          const id = (view.newId ?? randFileId)();
          planned.set(`${kind}/${w.name}`, id);
          steps.push({ kind, name: w.name, action: 'create', detail: size(data.length), rolls: false, id, labels, data });
          continue;
        }
        planned.set(`${kind}/${w.name}`, cur.id);
        const owner = cur.labels[stackLabel];
        if (owner && owner !== stack) throw new SpecError(`exists already and belongs to stack ${JSON.stringify(owner)}: apply that stack, or choose another name (a service may use it without declaring it here)`);
        if (!view.holds(cur, data)) {
          const next = /-v(\d+)$/.exec(w.name);
          const v2 = next ? `${w.name.slice(0, next.index)}-v${Number(next[1]) + 1}` : `${w.name}-v2`;
          throw new SpecError(`exists already with other content, and ${kind}s cannot change: to roll it, declare the new content under a new name (e.g. ${v2}) and point the services at it (they roll to it); "--prune" removes ${w.name} once no service uses it`);
        }
        if (JSON.stringify(Object.entries(labels).sort()) === JSON.stringify(Object.entries(cur.labels).sort())) {
          steps.push({ kind, name: w.name, action: 'unchanged', detail: '', rolls: false, current: cur });
          continue;
        }
        steps.push({ kind, name: w.name, action: 'update', detail: owner ? 'labels changed' : stack ? `adopted into stack ${stack}` : 'labels changed', rolls: false, current: cur, labels });
      } catch (e) {
        if (e instanceof SpecError) problems.push(`${where}: ${e.message}`);
        else throw e;
      }
    }
  }
  if (total > MAX_APPLY_DATA) problems.push(`the secrets and configs of this apply hold ${total} bytes: one apply carries at most ${MAX_APPLY_DATA} bytes (${MAX_APPLY_DATA / 1024 / 1024} MiB) of their data; create the large ones with "shoal secret create" / "shoal config create" and refer to them from the services without declaring them`);
  return steps;
}

/**
 * With prune: the stack's own secrets and configs the request no longer declares. One that a
 * service still uses after the apply (`after`: the services as the apply leaves them, with their
 * kept revisions) is kept, and says by whom.
 */
export function pruneFiles(stack: string, declared: FileStep[], view: FilesView, stackLabel: string, after: ServiceObject[]): FileStep[] {
  const steps: FileStep[] = [];
  for (const kind of ['secret', 'config'] as const) {
    const names = new Set(declared.filter((s) => s.kind === kind).map((s) => s.name));
    for (const o of view.list(kind).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (o.labels[stackLabel] !== stack || names.has(o.name)) continue;
      const users = usedBy(after, kind, o.id);
      if (users.length === 0) {
        steps.push({ kind, name: o.name, action: 'prune', detail: `no longer declared in stack ${stack}`, rolls: false, current: o });
        continue;
      }
      const say = users.map((u) => (u.by === 'spec' ? `service ${u.name}` : `the previous revision of service ${u.name} (a rollback returns to it)`));
      steps.push({ kind, name: o.name, action: 'kept', detail: `no longer declared, but kept: ${say.join(', ')} uses it`, rolls: false, current: o });
    }
  }
  return steps;
}

