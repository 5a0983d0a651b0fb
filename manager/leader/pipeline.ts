// One leader pass: the orchestrator, the allocator and the scheduler decided in turn over one
// view of the store, each stage seeing what the stages before it decided, and committed as one
// write per task. A task created in a pass leaves it already pending or assigned, so a service
// of 10,000 replicas costs 10,000 task writes in the raft log, not 30,000 (create, then pending,
// then assigned, each rewriting the whole task). Each stage is still its own pure function
// (orchestrate, allocate, schedule) with its own ops (ops.ts); this only composes them.
// Addresses come with the placement (allocator/placement.ts): each placed task's addresses are
// in the same write as its node, and the node subnets they come from are in `networkOps`, which
// the leader commits before the tasks (a failed network write leaves the tasks unwritten).
import { allocate, type AllocUpdate } from '../allocator/allocator.js';
import { placeNetworks, withAddresses } from '../allocator/placement.js';
import type { NetworkObject } from '../networks/model.js';
import { orchestrate } from '../orchestrator/orchestrate.js';
import type { Decisions, View } from '../orchestrator/view.js';
import { schedule, type Schedule } from '../scheduler/scheduler.js';
import type { TaskObject } from '../services/model.js';
import type { ObjectInput, TxnOp } from '../store/types.js';
import type { VolumeObject } from '../volumes/model.js';
import { allocatorOps, orchestratorOps, schedulerOps } from './ops.js';

export interface Pass {
  orchestrator: Decisions;
  allocations: AllocUpdate[];
  schedule: Schedule;
  /**
   * What to commit: groups of ops that must share a transaction (orchestratorOps' groups), at
   * most one op per task. An update carries the version the task had in the view.
   */
  groups: TxnOp[][];
  /** Node subnets the addresses in `groups` come from: commit these first, and `groups` only if they commit. */
  networkOps: TxnOp[];
}

/**
 * The leader's view with its networks. Without `networks` (the stages' own tests, which have no
 * network part) no addresses are decided; the leader always passes them.
 */
export interface PassView extends View {
  networks?: NetworkObject[];
  /** The volumes the scheduler places tasks with mounts by. */
  volumes?: VolumeObject[];
}

/**
 * createdVersion of a task created in this pass, for the stages after the orchestrator: later
 * than any stored task (the scheduler places older tasks of a slot first).
 */
const NOT_YET_CREATED = Number.MAX_SAFE_INTEGER;

/** The task as it will be once `inp` is written over `prev` (undefined: created by it). */
function asTask(inp: ObjectInput, prev: TaskObject | undefined): TaskObject {
  const t = {
    kind: 'task',
    id: inp.id,
    name: inp.name,
    labels: inp.labels ?? {},
    version: prev?.version ?? 0,
    createdVersion: prev?.createdVersion ?? NOT_YET_CREATED,
    spec: inp.spec,
    status: inp.status,
  } as TaskObject;
  if (inp.serviceId) t.serviceId = inp.serviceId;
  if (inp.nodeId) t.nodeId = inp.nodeId;
  return t;
}

export function decidePass(v: PassView): Pass {
  const d = orchestrate(v);
  const groups = orchestratorOps(d);
  // The tasks as the orchestrator's ops leave them, and the op that writes each one.
  const tasks = new Map<string, TaskObject>();
  for (const t of v.tasks) tasks.set(t.id, t);
  const writes = new Map<string, { object: ObjectInput }>();
  for (const g of groups) {
    for (const op of g) {
      if (op.op === 'delete') {
        if (op.kind === 'task') tasks.delete(op.id);
      } else if ((op.op === 'create' || op.op === 'update') && op.object.kind === 'task') {
        tasks.set(op.object.id, asTask(op.object, tasks.get(op.object.id)));
        writes.set(op.object.id, op);
      }
    }
  }
  // A later stage's change to a task: folded into the op that already writes it (a create stays
  // a create, an update keeps the version it was decided from), else an op of its own.
  const fold = (ops: TxnOp[]): void => {
    for (const op of ops) {
      if (op.op !== 'update') throw new Error(`leader pass: a stage after the orchestrator wrote a ${op.op}; only task updates are folded`);
      const id = op.object.id;
      tasks.set(id, asTask(op.object, tasks.get(id)));
      const w = writes.get(id);
      if (w) w.object = op.object;
      else {
        groups.push([op]);
        writes.set(id, op);
      }
    }
  };
  const allocations = allocate([...tasks.values()]);
  fold(allocatorOps(allocations, v.now));
  const all = [...tasks.values()];
  const placed = schedule({ nodes: v.nodes, tasks: all, ...(v.volumes ? { volumes: v.volumes } : {}) });
  let s = placed;
  let networkOps: TxnOp[] = [];
  if (v.networks) {
    // The services as the orchestrator leaves them (a rollback restores a spec with its ports).
    const changed = new Map(d.services.filter((c) => c.spec).map((c) => [c.service.id, { ...c.service, spec: c.spec! }]));
    const services = v.services.map((x) => changed.get(x.id) ?? x);
    const net = placeNetworks({ networks: v.networks, services, nodes: v.nodes, tasks: all }, placed.assign);
    networkOps = net.networkOps;
    s = withAddresses(placed, net);
  }
  fold(schedulerOps(s, v.now));
  return { orchestrator: d, allocations, schedule: s, groups, networkOps };
}
