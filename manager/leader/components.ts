// The reconcilers that run on the raft leader only: orchestrators (services -> tasks), allocator
// (NEW -> PENDING) and scheduler (PENDING -> ASSIGNED), decided in turn by one loop over store
// watches (pipeline.ts: pure functions, one write per task) and committed in batches. The loop
// starts once the new leader has applied everything committed before its term (a ReadIndex
// round), so a failover neither loses nor repeats a decision, and stops the moment leadership
// moves.
import { randomBytes } from 'node:crypto';
import type { NodeObject } from '../control/model.js';
import { cronLoop } from '../orchestrator/cron.js';
import { recordLeadership } from './leadership.js';
import type { ReplicatedNode } from '../raftnode/node.js';
import type { ServiceObject, TaskObject } from '../services/model.js';
import type { VolumeObject } from '../volumes/model.js';
import { commitOps } from './commit.js';
import { ReconcileLoop } from './loop.js';
import { decidePass } from './pipeline.js';
import { passRelevant } from './relevant.js';

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
    // One loop, one pass at a time: orchestrate, allocate and schedule over one view, one write
    // per task (pipeline.ts). It runs on any change that can alter one of the three decisions.
    this.loops = [
      new ReconcileLoop({
        name: 'leader pass',
        store,
        // Volumes too: a task with mounts is placed only where its volumes can be attached.
        kinds: ['service', 'task', 'node', 'volume'],
        // Endings, unplaced tasks, and tasks running while their service rolls out (relevant.ts).
        relevant: (e) => passRelevant(e, (id) => store.get('service', id) as ServiceObject | undefined),
        log,
        pass: async () => {
          const p = decidePass({ now: Date.now(), nodes: nodes(), services: store.list('service') as ServiceObject[], tasks: tasks(), volumes: store.list('volume') as VolumeObject[], newId: newTaskId });
          await commitOps(raft, p.groups);
          const d = p.orchestrator;
          if (d.notes.length > 0) log(`orchestrator: ${d.notes.length <= 5 ? d.notes.join('; ') : `${d.notes.slice(0, 5).join('; ')}; and ${d.notes.length - 5} more`}`);
          const s = p.schedule;
          if (s.assign.length > 0 || s.unplaceable.some((u) => u.task.status.message !== u.reason)) log(`scheduler: assigned ${s.assign.length} task(s)${s.unplaceable.length ? `, ${s.unplaceable.length} fit nowhere (${s.unplaceable[0]!.reason})` : ''}`);
          return { wakeAt: d.wakeAt };
        },
      }),
      // Scheduled jobs: a run at each tick (orchestrator/cron.ts).
      cronLoop(raft, log),
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
          void recordLeadership(this.raft, this.log);
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
