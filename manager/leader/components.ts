// The reconcilers that run on the raft leader only: orchestrators (services -> tasks), allocator
// (NEW -> PENDING) and scheduler (PENDING -> ASSIGNED). Each is a loop over store watches that
// decides with a pure function and commits in batches. They start once the new leader has applied
// everything committed before its term (a ReadIndex round), so a failover neither loses nor
// repeats a decision, and stop the moment leadership moves.
import { randomBytes } from 'node:crypto';
import { allocate } from '../allocator/allocator.js';
import { placeNetworks, withAddresses } from '../allocator/placement.js';
import type { NetworkObject } from '../networks/model.js';
import type { NodeObject } from '../control/model.js';
import { orchestrate } from '../orchestrator/orchestrate.js';
import type { ReplicatedNode } from '../raftnode/node.js';
import { needsPlacement, schedule } from '../scheduler/scheduler.js';
import { isTerminal, type ServiceObject, type TaskObject } from '../services/model.js';
import type { StoreEvent } from '../store/types.js';
import { commitOps } from './commit.js';
import { allocatorOps, orchestratorOps, schedulerOps } from './ops.js';
import { ReconcileLoop } from './loop.js';

export function newTaskId(): string {
  return BigInt('0x' + randomBytes(16).toString('hex')).toString(36).padStart(25, '0');
}

export class LeaderComponents {
  private readonly loops: ReconcileLoop[];
  private started = false;
  private epoch = 0;

  constructor(private readonly raft: ReplicatedNode, private readonly log: (m: string) => void) {
    const store = raft.store;
    const tasks = () => store.list('task') as TaskObject[];
    const nodes = () => store.list('node') as NodeObject[];
    const taskEvent = (e: StoreEvent) => e.object.kind === 'task';
    this.loops = [
      new ReconcileLoop({
        name: 'orchestrator',
        store,
        kinds: ['service', 'task', 'node'],
        // Task progress (accepted .. running) changes no orchestration decision; endings do.
        relevant: (e) => !taskEvent(e) || e.type !== 'update' || isTerminal((e.object as TaskObject).status.state),
        log,
        pass: async () => {
          const now = Date.now();
          const d = orchestrate({ now, nodes: nodes(), services: store.list('service') as ServiceObject[], tasks: tasks(), newId: newTaskId });
          const ops = orchestratorOps(d);
          await commitOps(raft, ops);
          if (d.notes.length > 0) log(`orchestrator: ${d.notes.length <= 5 ? d.notes.join('; ') : `${d.notes.slice(0, 5).join('; ')}; and ${d.notes.length - 5} more`}`);
          return { wakeAt: d.wakeAt };
        },
      }),
      new ReconcileLoop({
        name: 'allocator',
        store,
        kinds: ['task'],
        relevant: (e) => e.type !== 'delete' && ((e.object as TaskObject).status.state === 'new' || (e.object as TaskObject).status.state === 'pending'),
        log,
        pass: async () => {
          const now = Date.now();
          await commitOps(raft, allocatorOps(allocate(tasks()), now));
        },
      }),
      new ReconcileLoop({
        name: 'scheduler',
        store,
        kinds: ['task', 'node', 'service'],
        // New pending tasks, anything that frees or changes a node's room, and services (their
        // published ports give every node a subnet of their network).
        relevant: (e) => !taskEvent(e) || e.type === 'delete' || needsPlacement(e.object as TaskObject) || isTerminal((e.object as TaskObject).status.state),
        log,
        pass: async () => {
          const now = Date.now();
          const all = tasks();
          const ns = nodes();
          const placed = schedule({ nodes: ns, tasks: all });
          // Addresses with the placement (allocator/placement.ts): the nodes' new subnets are
          // committed first, then each task with its node and its addresses in one write.
          const net = placeNetworks({ networks: store.list('network') as NetworkObject[], services: store.list('service') as ServiceObject[], nodes: ns, tasks: all }, placed.assign);
          await commitOps(raft, net.networkOps);
          const s = withAddresses(placed, net);
          const ops = schedulerOps(s, now);
          await commitOps(raft, ops);
          if (s.assign.length > 0 || ops.length > 0) log(`scheduler: assigned ${s.assign.length} task(s)${s.unplaceable.length ? `, ${s.unplaceable.length} fit nowhere (${s.unplaceable[0]!.reason})` : ''}`);
        },
      }),
    ];
  }

  /** Called on every leadership change seen by this manager. */
  leadershipChanged(isLeader: boolean): void {
    const epoch = ++this.epoch;
    if (!isLeader) {
      if (this.started) this.log('leader components: stopped (no longer the leader)');
      this.started = false;
      for (const l of this.loops) l.stop();
      return;
    }
    // Apply everything committed before this term first: the loops must decide on the whole store.
    const catchUp = (attempt: number): void => {
      this.raft.linearizableRead().then(
        () => {
          if (epoch !== this.epoch || !this.raft.isLeader()) return;
          this.started = true;
          for (const l of this.loops) l.start();
          this.log('leader components: orchestrator, allocator and scheduler started');
        },
        (e) => {
          if (epoch !== this.epoch || !this.raft.isLeader()) return;
          if (attempt < 50) setTimeout(() => catchUp(attempt + 1), 100);
          else this.log(`leader components: could not catch up as leader: ${(e as Error).message}`);
        },
      );
    };
    catchUp(0);
  }

  stop(): void {
    this.epoch++;
    this.started = false;
    for (const l of this.loops) l.stop();
  }
}
