// The schedule of scheduled jobs, decided as Kubernetes' CronJob controller decides it, on the
// leader: at each tick a new run (iteration) of the job starts, by its concurrency policy; runs
// that ended are recorded with their result and only the newest few are kept. Pure: a view of
// the store in, the services' new schedule status out; the leader's cron loop commits it with the
// service's version, so a decision made on a stale view fails and is made again.
//
// What makes a failover neither double nor lose a run: the tick a run was started for is written
// (lastScheduleTime) in the same transaction that starts it, and only a tick after it can start
// another. A new leader finds the latest tick not yet started and starts it (late), unless it is
// past the starting deadline, as a missed tick is in Kubernetes.
import type { NodeObject } from '../control/model.js';
import { isTerminal, type ServiceObject, type ServiceStatus, type TaskObject } from '../services/model.js';
import type { JobRun, ScheduleStatus } from '../services/schedule.js';
import type { ReplicatedNode } from '../raftnode/node.js';
import { commitOps } from '../leader/commit.js';
import { ReconcileLoop } from '../leader/loop.js';
import type { ObjectStore } from '../store/store.js';
import { CronError, lastTick, nextTick, parseCron } from './cron-expr.js';
import { restartDue } from './restart.js';
import { groupTasks, latest, nodeMatches } from './view.js';

export interface CronView {
  now: number;
  services: ServiceObject[];
  tasks: TaskObject[];
  nodes: NodeObject[];
}

export interface ScheduleChange {
  service: ServiceObject;
  status: ServiceStatus;
}

export interface CronDecisions {
  changes: ScheduleChange[];
  /** The earliest next tick of any schedule. */
  wakeAt?: number;
  notes: string[];
}

/**
 * When a service's schedule began: the oldest of the newest revisions that all carry a schedule
 * (the one that added it), else the service's creation. Ticks after it count.
 */
export function scheduleSince(s: ServiceObject): number {
  const revs = s.status?.revisions ?? [];
  let since = s.status?.createdAt ?? 0;
  for (let i = revs.length - 1; i >= 0 && revs[i]!.spec.schedule; i--) since = revs[i]!.at;
  return since;
}

/** A task that still holds, or will hold again, its place in a run: not ended, or ended and due a restart. */
function live(t: TaskObject, s: ServiceObject, now: number): boolean {
  if (t.spec.desiredState !== 'running') return false;
  if (!isTerminal(t.status.state)) return true;
  return restartDue(t, s.spec.task.restart, now, true).restart;
}

export interface RunOutcome {
  done: boolean;
  result?: 'succeeded' | 'failed';
  message: string;
}

/** Whether a run has ended, from its tasks: every completion reached, or nothing left to run. */
export function runOutcome(s: ServiceObject, tasks: TaskObject[], nodes: NodeObject[], now: number): RunOutcome {
  if (s.spec.mode.type === 'replicated-job') {
    const want = s.spec.mode.completions;
    const bySlot = groupTasks(tasks.filter((t) => t.spec.slot > 0), (t) => t.spec.slot);
    let completed = 0;
    let going = 0;
    let failed = 0;
    for (const ts of bySlot.values()) {
      if (ts.some((t) => t.status.state === 'complete')) completed++;
      else if (live(latest(ts)!, s, now)) going++;
      else failed++;
    }
    if (completed >= want) return { done: true, result: 'succeeded', message: `${completed} of ${want} completed` };
    // Slots not started yet will be: the orchestrator starts them as places free up.
    if (going > 0 || bySlot.size < want) return { done: false, message: `${completed} of ${want} completed, ${going} running` };
    return { done: true, result: 'failed', message: `${completed} of ${want} completed; ${failed} failed and will not restart` };
  }
  // global-job: a task on every eligible node, each run to its end.
  const byNode = groupTasks(tasks.filter((t) => t.spec.slot === 0 && t.nodeId), (t) => t.nodeId!);
  let completed = 0;
  for (const ts of byNode.values()) {
    if (ts.some((t) => t.status.state === 'complete')) completed++;
    else if (live(latest(ts)!, s, now)) return { done: false, message: `${completed} node(s) completed so far` };
  }
  const eligible = nodes.filter((n) => n.status.state !== 'down' && n.spec.availability === 'active' && nodeMatches(s, n));
  if (eligible.some((n) => !byNode.has(n.id))) return { done: false, message: `${completed} node(s) completed so far` };
  if (byNode.size === 0) return { done: true, result: 'failed', message: 'no eligible node to run on' };
  if (completed === byNode.size) return { done: true, result: 'succeeded', message: `completed on ${completed} node(s)` };
  return { done: true, result: 'failed', message: `completed on ${completed} of ${byNode.size} node(s)` };
}

/** Only the newest finished runs are kept, by result; running ones always are. */
function trimHistory(runs: JobRun[], succeeded: number, failed: number): JobRun[] {
  const keep = new Set<JobRun>();
  let ok = 0;
  let bad = 0;
  for (let i = runs.length - 1; i >= 0; i--) {
    const r = runs[i]!;
    if (!r.result) keep.add(r);
    else if (r.result === 'succeeded' ? ok++ < succeeded : bad++ < failed) keep.add(r);
  }
  return runs.filter((r) => keep.has(r));
}

const iso = (ms: number) => new Date(ms).toISOString();

export function decideSchedules(v: CronView): CronDecisions {
  const d: CronDecisions = { changes: [], notes: [] };
  const byService = groupTasks(v.tasks.filter((t) => t.serviceId), (t) => t.serviceId!);
  for (const s of v.services) {
    const sch = s.spec.schedule;
    if (!sch) continue;
    const cur = s.status?.schedule;
    const st: ScheduleStatus = cur
      ? { ...cur, runs: cur.runs.map((r) => ({ ...r })) }
      : { since: scheduleSince(s), iteration: 0, runs: [], skipped: 0 };
    let changed = !cur;
    const byRun = groupTasks(byService.get(s.id) ?? [], (t) => t.spec.iteration ?? 0);

    // Runs that ended.
    for (const r of st.runs) {
      if (r.result) continue;
      const o = runOutcome(s, byRun.get(r.iteration) ?? [], v.nodes, v.now);
      if (!o.done) continue;
      r.finishedAt = v.now;
      r.result = o.result;
      r.message = o.message;
      if (o.result === 'succeeded') st.lastSuccessfulTime = v.now;
      changed = true;
      d.notes.push(`service ${s.name}: run ${r.iteration} ${o.result} (${o.message})`);
    }

    // The tick. As Kubernetes' syncCronJob: the latest tick after the last one started (and not
    // older than the starting deadline) is started now, unless the policy says otherwise.
    let sched;
    try {
      sched = parseCron(sch.cron);
    } catch (e) {
      if (!(e instanceof CronError)) throw e;
      d.notes.push(`service ${s.name}: ${e.message}`);
    }
    if (sched && !sch.suspend) {
      const earliest = st.lastScheduleTime ?? st.since;
      const deadlineMs = sch.startingDeadlineSeconds !== undefined ? sch.startingDeadlineSeconds * 1000 : undefined;
      const floor = deadlineMs !== undefined ? Math.max(earliest, v.now - deadlineMs) : earliest;
      const tick = lastTick(sched, v.now, sch.timeZone);
      const skip = (at: number, reason: string) => {
        if (st.waiting?.scheduledAt === at) delete st.waiting;
        if (st.lastSkip?.scheduledAt === at) return; // told once per tick
        st.lastSkip = { scheduledAt: at, reason };
        st.skipped++;
        changed = true;
        d.notes.push(`service ${s.name}: tick ${iso(at)} skipped: ${reason}`);
      };
      // A tick that waited (forbid) and was overtaken by a newer one is skipped for good.
      if (st.waiting && tick !== undefined && tick > st.waiting.scheduledAt) skip(st.waiting.scheduledAt, `${st.waiting.reason}; the tick of ${iso(tick)} came first`);
      if (tick !== undefined && tick > floor) {
        const going = st.runs.filter((r) => !r.result);
        if (sch.concurrencyPolicy === 'forbid' && going.length > 0) {
          // It waits: started once the run ends, if that is before the next tick and within the
          // starting deadline (as Kubernetes does); else it is skipped.
          if (st.waiting?.scheduledAt !== tick) {
            st.waiting = { scheduledAt: tick, reason: `run ${going[0]!.iteration} was still running (concurrency policy forbid)` };
            changed = true;
            d.notes.push(`service ${s.name}: tick ${iso(tick)} waits: ${st.waiting.reason}`);
          }
        } else {
          if (st.waiting?.scheduledAt === tick) delete st.waiting;
          const iteration = st.iteration + 1;
          if (sch.concurrencyPolicy === 'replace') {
            for (const r of going) {
              r.finishedAt = v.now;
              r.result = 'replaced';
              r.message = `replaced by run ${iteration} (concurrency policy replace)`;
            }
          }
          st.iteration = iteration;
          st.lastScheduleTime = tick;
          st.runs.push({ iteration, scheduledAt: tick, startedAt: v.now });
          changed = true;
          d.notes.push(`service ${s.name}: run ${iteration} started for the tick of ${iso(tick)}${going.length && sch.concurrencyPolicy === 'replace' ? `, replacing run(s) ${going.map((r) => r.iteration).join(', ')}` : ''}`);
        }
      } else if (tick !== undefined && tick > earliest && deadlineMs !== undefined) {
        // A tick never started and now past its deadline (a long forbid wait, a leader away).
        skip(tick, `${st.waiting?.scheduledAt === tick ? `${st.waiting.reason}; ` : ''}not started within its starting deadline of ${sch.startingDeadlineSeconds} s`);
      }
      const next = nextTick(sched, v.now, sch.timeZone);
      if (next !== undefined && (d.wakeAt === undefined || next < d.wakeAt)) d.wakeAt = next;
    }

    const kept = trimHistory(st.runs, sch.successfulRunsHistoryLimit, sch.failedRunsHistoryLimit);
    if (kept.length !== st.runs.length) {
      st.runs = kept;
      changed = true;
    }

    let status: ServiceStatus = { ...s.status, schedule: st };
    // A template change applies from the next run on (a run keeps the tasks it has): nothing rolls.
    const u = s.status?.update;
    if (u && (u.state === 'updating' || u.state === 'rollback_started')) {
      status = { ...status, update: { ...u, state: u.state === 'updating' ? 'completed' : 'rollback_completed', completedAt: v.now, message: 'scheduled job: the new spec applies from the next run' } };
      changed = true;
    }
    if (changed) d.changes.push({ service: s, status });
  }
  return d;
}

/** The leader's loop that runs decideSchedules and commits it (started with the orchestrator). */
export function cronLoop(raft: ReplicatedNode, log: (m: string) => void): ReconcileLoop {
  const store: ObjectStore = raft.store;
  return new ReconcileLoop({
    name: 'cron',
    store,
    kinds: ['service', 'task'],
    // Scheduled services' changes, and tasks ending (a run may have ended with them).
    relevant: (e) => (e.object.kind === 'service' ? !!(e.object as ServiceObject).spec?.schedule : e.type === 'delete' || isTerminal((e.object as TaskObject).status.state)),
    log,
    pass: async () => {
      const services = (store.list('service') as ServiceObject[]).filter((s) => s.spec.schedule);
      if (services.length === 0) return;
      const ids = new Set(services.map((s) => s.id));
      const tasks = (store.list('task') as TaskObject[]).filter((t) => ids.has(t.serviceId ?? ''));
      const d = decideSchedules({ now: Date.now(), services, tasks, nodes: store.list('node') as NodeObject[] });
      // One transaction per service: a conflict on one (a concurrent update) holds back no other.
      await commitOps(raft, d.changes.map((c) => ({
        op: 'update' as const,
        object: { kind: 'service' as const, id: c.service.id, name: c.service.name, labels: c.service.labels, spec: c.service.spec, status: c.status },
        expectVersion: c.service.version,
      })), 1);
      if (d.notes.length > 0) log(`cron: ${d.notes.join('; ')}`);
      return { wakeAt: d.wakeAt };
    },
  });
}
