// Control.Apply: a whole stack of services (what `shoal apply -f` read) made true in one raft
// transaction, or nothing written at all. Every service is checked first (all problems reported
// together); then each is compared with what the cluster holds, normalized the same way as a
// create (defaults filled), so an unchanged manifest changes nothing. Changed services take the
// path of UpdateService (a new revision; a rolling update when the task template changed); with
// `prune`, services of the stack the request no longer declares are removed. Only services
// carrying the stack's label (io.shoal.stack) are ever pruned, and a service of another stack is
// never taken over. `dry_run` answers the same plan and writes nothing (`shoal diff`).
//
// The stack's secrets and configs (manager/secrets/apply.ts) are steps of the same transaction,
// written before the services that refer to them; a secret is sealed here, on the leader.
import type { Manager } from '../control/manager.js';
import type { MethodSpec } from '../security/authz.js';
import { RpcError, aborted, invalid } from '../security/errors.js';
import type { TxnOp } from '../store/types.js';
import { checkLabels, describeChange, newService, newServiceId, serviceToWire, services, specChange, tasksOf } from './control.js';
import { withNetworkLock } from '../networks/control.js';
import { NetworkError, networkingBatch, resolveServiceNetworking, withNetworkIds } from '../networks/resolve.js';
import { stableJson, templateKey, type ServiceObject, type ServiceSpec } from './model.js';
import { SpecError, checkServiceName, specFromWire, specToWire, type WireSpec } from './validate.js';
import { guardOps, resolveRefs } from '../secrets/refs.js';
import { holdsWith, planFiles, pruneFiles, type ApplyFileReq, type FileStep, type FilesView } from '../secrets/apply.js';
import { secretAad, type SecretObject } from '../secrets/model.js';
import type { DataKeyKeeper } from '../secrets/keeper.js';

/** The label that marks what an apply created, with the stack's name as its value. */
export const STACK_LABEL = 'io.shoal.stack';
const STACK_NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;
/** One apply is one raft entry: keep it well under the store's transaction size. */
const MAX_OBJECTS = 400;

interface ApplyServiceReq {
  name: string;
  labels: Record<string, string>;
  spec: WireSpec;
}

interface ApplyReq {
  stack: string;
  services: ApplyServiceReq[];
  secrets?: ApplyFileReq[];
  configs?: ApplyFileReq[];
  prune: boolean;
  dry_run: boolean;
}

export type Action = 'create' | 'update' | 'unchanged' | 'prune';

export interface ServiceStep {
  kind: 'service';
  name: string;
  action: Action;
  detail: string;
  rolls: boolean;
  current?: ServiceObject;
  spec?: ServiceSpec;
  labels?: Record<string, string>;
}

/** A step of the plan: a service's, or a secret's or config's. */
export type PlanStep = ServiceStep | FileStep;

const NO_FILES: FilesView = { list: () => [], holds: () => false };

/**
 * The plan for a request against the services (and secrets and configs) the cluster holds: pure
 * but for the ids of new secrets and configs, so the dry run and the apply decide alike. Throws
 * INVALID_ARGUMENT listing every problem found. `resolve` fills in the ids of a spec's secret and
 * config references; `planned` (KIND/NAME -> id) holds those this apply declares.
 */
export function plan(req: ApplyReq, existing: ServiceObject[], resolve: (spec: ServiceSpec, planned: ReadonlyMap<string, string>) => ServiceSpec = (spec) => spec, files: FilesView = NO_FILES): PlanStep[] {
  const problems: string[] = [];
  const stack = req.stack ?? '';
  if (stack && !STACK_NAME.test(stack)) problems.push(`stack name ${JSON.stringify(stack)} is not valid: use 1-63 lower-case letters, digits, '.', '_' and '-', starting and ending with a letter or digit`);
  if (req.prune && !stack) problems.push('prune needs a stack name: only services an apply of that stack created are ever removed');
  const list = req.services ?? [];
  const count = list.length + (req.secrets?.length ?? 0) + (req.configs?.length ?? 0);
  if (count > MAX_OBJECTS) problems.push(`${count} services, secrets and configs in one apply: at most ${MAX_OBJECTS} (split the manifest into stacks)`);
  // Secrets and configs first: the services may refer to those this apply creates.
  const planned = new Map<string, string>();
  const fileSteps = planFiles(req, files, checkLabels, STACK_LABEL, problems, planned);
  const byName = new Map(existing.map((s) => [s.name, s]));
  const seen = new Set<string>();
  const steps: ServiceStep[] = [];
  for (const w of list) {
    const where = `service ${w.name || '(no name)'}`;
    try {
      checkServiceName(w.name);
      if (seen.has(w.name)) throw new SpecError(`declared twice`);
      seen.add(w.name);
      const labels = checkLabels(w.labels);
      if (STACK_LABEL in labels) throw new SpecError(`label ${STACK_LABEL} is set by apply from the stack name; leave it out`);
      if (stack) labels[STACK_LABEL] = stack;
      // Secrets and configs by name, resolved to the objects they name (as create and update do).
      let spec = resolve(specFromWire(w.spec), planned);
      const cur = byName.get(w.name);
      if (!cur) {
        steps.push({ kind: 'service', name: w.name, action: 'create', detail: `${spec.mode.type}, image ${spec.task.main.image}`, rolls: false, spec, labels });
        continue;
      }
      const owner = cur.labels[STACK_LABEL];
      if (owner && owner !== stack) throw new SpecError(`exists already and belongs to stack ${JSON.stringify(owner)}: apply that stack, or choose another name`);
      if (spec.mode.type !== cur.spec.mode.type) throw new SpecError(`is ${cur.spec.mode.type} in the cluster: its mode cannot change to ${spec.mode.type}; remove it first ("shoal service rm ${w.name}") or give it another name`);
      if (!!spec.schedule !== !!cur.spec.schedule) throw new SpecError(cur.spec.schedule ? 'is a scheduled job in the cluster: its schedule cannot be removed (suspend it, or remove the service)' : 'has no schedule in the cluster: one cannot be added (create a new scheduled job)');
      // A forced redeploy (`service update --force`) is not part of any manifest: keep it.
      if (cur.spec.task.forceUpdate) spec = { ...spec, task: { ...spec.task, forceUpdate: cur.spec.task.forceUpdate } };
      const sameSpec = stableJson(spec) === stableJson(cur.spec);
      const sameLabels = stableJson(labels) === stableJson(cur.labels);
      if (sameSpec && sameLabels) {
        steps.push({ kind: 'service', name: w.name, action: 'unchanged', detail: '', rolls: false, current: cur });
        continue;
      }
      const what: string[] = [];
      if (!sameSpec) {
        // A replica count said as one (describeChange names the whole mode).
        const a = cur.spec.mode;
        const b = spec.mode;
        if (a.type === 'replicated' && b.type === 'replicated' && a.replicas !== b.replicas) {
          what.push(`replicas ${a.replicas} -> ${b.replicas}`);
          const rest = describeChange({ ...cur.spec, mode: b }, spec);
          if (rest !== 'no change') what.push(rest);
        } else what.push(describeChange(cur.spec, spec));
      }
      if (!sameLabels) what.push(owner ? 'labels changed' : stack ? `adopted into stack ${stack}` : 'labels changed');
      steps.push({ kind: 'service', name: w.name, action: 'update', detail: what.join('; '), rolls: templateKey(spec.task) !== templateKey(cur.spec.task), current: cur, spec: sameSpec ? cur.spec : spec, labels });
    } catch (e) {
      if (e instanceof SpecError || e instanceof RpcError) problems.push(`${where}: ${(e as Error).message}`);
      else throw e;
    }
  }
  if (req.prune && stack) {
    for (const s of existing) {
      if (s.labels[STACK_LABEL] === stack && !seen.has(s.name)) steps.push({ kind: 'service', name: s.name, action: 'prune', detail: `no longer declared in stack ${stack}`, rolls: false, current: s });
    }
  }
  const prunedFiles = req.prune && stack && problems.length === 0 ? pruneFiles(stack, fileSteps, files, STACK_LABEL, servicesAfter(steps, existing)) : [];
  if (problems.length > 0) throw invalid(problems.length === 1 ? problems[0]! : `${problems.length} problems:\n${problems.join('\n')}`);
  return [...fileSteps, ...steps, ...prunedFiles];
}

/**
 * The services as the apply leaves them, with the revisions they keep (what a rollback returns
 * to): written by the same functions the apply writes with, so "in use" is decided alike.
 */
function servicesAfter(steps: ServiceStep[], existing: ServiceObject[]): ServiceObject[] {
  const byName = new Map(existing.map((s) => [s.name, s]));
  for (const st of steps) {
    if (st.action === 'prune') byName.delete(st.name);
    else if (st.action === 'create') byName.set(st.name, { ...newService(st.name, st.labels!, st.spec!, 0), version: 0, createdVersion: 0 } as ServiceObject);
    else if (st.action === 'update' && stableJson(st.spec) !== stableJson(st.current!.spec)) byName.set(st.name, { ...specChange(st.current!, st.spec!, '', false, st.labels, 0), version: 0, createdVersion: 0 } as ServiceObject);
  }
  return [...byName.values()];
}

/** The cluster's secrets and configs as the plan sees them; a secret is opened with the data key. */
export function storeFiles(mgr: Manager, keeper: DataKeyKeeper): FilesView {
  return {
    list: (kind) => mgr.raft.store.list(kind),
    holds: holdsWith((o) => keeper.key().open((o as SecretObject).spec.sealed, secretAad(o.id))),
  };
}

export function applyTable(mgr: Manager, keeper: DataKeyKeeper, log: (m: string) => void): Record<string, MethodSpec> {
  return {
    Apply: {
      roles: ['manager'],
      leader: true,
      unary: async (req: ApplyReq) => {
        // Networks, ports and VIPs are decided under the network lock (as create and update).
        return withNetworkLock(mgr, async () => {
          const store = mgr.raft.store;
          // Networks by name compared as the ids the cluster stores (the default one when none).
          const steps = plan(req, services(mgr), (spec, planned) => withNetworkIds(store, resolveRefs(store, spec, planned)), storeFiles(mgr, keeper));
          const now = Date.now();
          const ops: TxnOp[] = [];
          // Every changed service's networking resolved over one IPAM plan: its VIPs, the default
          // network created once (first in the transaction), ports checked among the stack too.
          const batch = networkingBatch(store);
          const netOps: TxnOp[] = [];
          const problems: string[] = [];
          const networking = (id: string, name: string, spec: ServiceSpec, current?: ServiceObject) => {
            try {
              const n = resolveServiceNetworking(store, { serviceId: id, name, spec, current, now, newId: newServiceId, batch });
              netOps.push(...n.ops);
              return n;
            } catch (e) {
              if (!(e instanceof NetworkError)) throw e;
              problems.push(`service ${name}: ${e.message}`);
              return undefined;
            }
          };
          // Secrets and configs first (created, relabelled): the services below may refer to them.
          const created = new Set<string>();
          // Each secret or config a service newly refers to must still exist when the transaction
          // commits (guardOps moves its version); several services may take up the same one: once.
          const guarded = new Set<string>();
          for (const st of steps) {
            if (st.kind === 'service') continue;
            if (st.action === 'create') {
              created.add(st.id!);
              if (req.dry_run) continue; // nothing is proposed: nothing to seal
              // Sealed here, on the leader: the raft log, the WAL and the snapshots only see ciphertext.
              const spec = st.kind === 'secret' ? { sealed: keeper.key().seal(st.data!, secretAad(st.id!)) } : { data: st.data! };
              ops.push({ op: 'create', object: { kind: st.kind, id: st.id!, name: st.name, labels: st.labels!, spec, status: { createdAt: now } } });
            } else if (st.action === 'update') {
              const c = st.current!;
              guarded.add(`${c.kind}/${c.id}`); // this write moves its version already
              ops.push({ op: 'update', object: { kind: c.kind, id: c.id, name: c.name, labels: st.labels!, spec: c.spec, status: c.status }, expectVersion: c.version });
            }
          }
          const guard = (prev: ServiceSpec | undefined, next: ServiceSpec) => {
            for (const op of guardOps(store, prev, next, created)) {
              const key = op.op === 'update' ? `${op.object.kind}/${op.object.id}` : JSON.stringify(op);
              if (guarded.has(key)) continue;
              guarded.add(key);
              ops.push(op);
            }
          };
          for (const st of steps) {
            if (st.kind !== 'service') continue;
            if (st.action === 'create') {
              const id = newServiceId();
              const n = networking(id, st.name, st.spec!);
              if (!n) continue;
              ops.push({ op: 'create', object: newService(st.name, st.labels!, n.spec, now, { id, vips: n.vips }) });
              guard(undefined, n.spec);
            } else if (st.action === 'update') {
              const c = st.current!;
              if (stableJson(st.spec) === stableJson(c.spec)) {
                guard(c.spec, st.spec!);
                ops.push({ op: 'update', object: { kind: 'service' as const, id: c.id, name: c.name, labels: st.labels!, spec: c.spec, status: c.status }, expectVersion: c.version });
                continue;
              }
              const n = networking(c.id, c.name, st.spec!, c);
              if (!n) continue;
              guard(c.spec, n.spec);
              ops.push({ op: 'update', object: specChange(c, n.spec, st.detail, false, st.labels, now, n.vips), expectVersion: c.version });
            } else if (st.action === 'prune') ops.push({ op: 'delete', kind: 'service', id: st.current!.id, expectVersion: st.current!.version });
          }
          // Pruned secrets and configs last, at the version the plan saw: a service that took one up
          // meanwhile moved it, and the whole apply is refused (apply again).
          for (const st of steps) if (st.kind !== 'service' && st.action === 'prune') ops.push({ op: 'delete', kind: st.kind, id: st.current!.id, expectVersion: st.current!.version });
          if (problems.length > 0) throw invalid(problems.length === 1 ? problems[0]! : `${problems.length} problems:\n${problems.join('\n')}`);
          // The default network's creation first: the services below join it.
          ops.unshift(...netOps);
          let version = mgr.raft.store.applied;
          const written = new Map<string, ServiceObject>();
          if (!req.dry_run && ops.length > 0) {
            try {
              const r = await mgr.raft.propose(ops);
              version = r.version;
              for (const o of r.objects) if (o?.kind === 'service') written.set(o.name, o as ServiceObject);
            } catch (e) {
              const code = (e as { conflict?: { code?: string } }).conflict?.code;
              if (code === 'version-mismatch' || code === 'name-taken' || code === 'exists' || code === 'not-found') throw aborted(`the cluster changed while applying (${(e as Error).message}); nothing was written: apply again`);
              throw e;
            }
            const counts = ['create', 'update', 'prune'].map((a) => `${steps.filter((s) => s.action === a).length} ${a === 'prune' ? 'pruned' : `${a}d`}`).join(', ');
            // Names and counts only: a secret's data is never logged.
            const fileNames = steps.filter((s) => s.kind !== 'service' && s.action !== 'unchanged').map((s) => `${s.kind} ${s.name} ${s.action}`);
            log(`control: applied${req.stack ? ` stack ${req.stack}` : ''}: ${counts}${fileNames.length ? ` (${fileNames.join(', ')})` : ''}`);
          }
          const nodes = mgr.nodes();
          return {
            applied: !req.dry_run,
            version,
            changes: steps.map((st) => {
              // A secret's or config's data is never answered: its name, what happens, its size.
              if (st.kind !== 'service') return { kind: st.kind, name: st.name, action: st.action, detail: st.detail, rolls: false, current: null, desired: null, service: null };
              const after = written.get(st.name) ?? st.current;
              return {
                kind: st.kind,
                name: st.name,
                action: st.action,
                detail: st.detail,
                rolls: st.rolls,
                current: st.current ? { name: st.current.name, labels: st.current.labels, spec: specToWire(st.current.spec) } : null,
                desired: st.spec ? { name: st.name, labels: st.labels ?? {}, spec: specToWire(st.spec) } : null,
                service: after && st.action !== 'prune' ? serviceToWire(after, tasksOf(mgr, after.id), nodes) : null,
              };
            }),
          };
        });
      },
    },
  };
}
