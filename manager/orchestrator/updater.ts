// The updater: rolls a changed task template out over a service's slots (or nodes), batch by
// batch, as SwarmKit's updater does. Its whole state is in the store: which tasks carry the new
// template (their templateKey), when each ran, and the service's update status, so a new leader
// resumes where the old one stopped, doing no batch twice and skipping none.
//
// A batch of `parallelism` slots is replaced (stop-first: the old task stops as the new one is
// created; start-first: the old one runs until the new one runs and is ready). The next batch
// waits until every new task has run, and been ready, for the monitor period, then for the
// delay. A new task that fails counts against the failure ratio; past it, the failure action
// applies: pause, continue, or roll back to the previous revision with the rollback config.
import {
  DEFAULT_ROLLBACK,
  DEFAULT_UPDATE,
  TASK_STATE_ORDER,
  isTerminal,
  templateKey,
  type ServiceObject,
  type ServiceStatus,
  type TaskObject,
  type UpdateConfig,
} from '../services/model.js';
import { groupTasks, latest, newTask, replace, shutdown, wakeAt, type Decisions, type View } from './view.js';

/** Revisions kept per service (Kubernetes keeps 10 ReplicaSets by default). */
export const MAX_REVISIONS = 10;

/** Ready: its readiness probe passes (a task without one is ready once running). */
export function taskReady(t: TaskObject): boolean {
  return t.status.state === 'running' && t.status.ready !== false;
}

/** True if the service is rolling out a spec (an update or a rollback). */
export function rollingOut(s: ServiceObject | undefined): boolean {
  const st = s?.status?.update?.state;
  return st === 'updating' || st === 'rollback_started';
}

export function reconcileUpdate(v: View, d: Decisions, s: ServiceObject, tasks: TaskObject[]): void {
  if (!rollingOut(s)) return;
  const rollingBack = s.status.update!.state === 'rollback_started';
  const cfg: UpdateConfig = (rollingBack ? s.spec.rollback : s.spec.update) ?? (rollingBack ? DEFAULT_ROLLBACK : DEFAULT_UPDATE);
  const startedAt = s.status.update!.startedAt;
  const key = templateKey(s.spec.task);
  const global = s.spec.mode.type === 'global' || s.spec.mode.type === 'global-job';
  const groups = groupTasks(tasks.filter((t) => (global ? t.spec.slot === 0 && t.nodeId : t.spec.slot > 0)), (t) => (global ? t.nodeId! : t.spec.slot));
  // Slots the orchestrator decided about in this same pass (new or replaced) are left for the next.
  const touched = new Set(d.creates.filter((c) => c.serviceId === s.id).map((c) => String(global ? c.nodeId : (c.spec as TaskObject['spec']).slot)));

  const dirty: TaskObject[] = [];
  let inflight = 0;
  let failed = 0;
  let updated = 0;
  let lastSettled = startedAt;
  let failure = '';
  for (const [k, ts] of groups) {
    const last = latest(ts)!;
    // Tasks of this update: created since it began, with the new template.
    for (const t of ts) {
      if (t.spec.templateKey !== key || (t.status.timestamps.new ?? 0) < startedAt) continue;
      updated++;
      const st = t.status.state;
      if (TASK_STATE_ORDER[st] >= TASK_STATE_ORDER.failed && st !== 'orphaned') {
        failed++;
        failure ||= `task ${t.spec.serviceName}.${t.spec.slot || t.nodeId} ${st}${t.status.err ? `: ${t.status.err}` : ''}`;
      }
    }
    if (last.spec.desiredState !== 'running' || touched.has(String(k))) continue;
    if (last.spec.templateKey !== key) {
      dirty.push(last);
      continue;
    }
    // A start-first replacement: the old task stops once the new one runs and is ready.
    if (last.spec.replaces && taskReady(last)) {
      const old = ts.find((t) => t.id === last.spec.replaces);
      if (old && old.spec.desiredState === 'running' && !isTerminal(old.status.state)) shutdown(d, old, `replaced by ${last.id} (start-first update)`);
    }
    const ranAt = last.status.timestamps.running;
    if (isTerminal(last.status.state)) continue; // failed: counted above; the restart policy acts
    if (!taskReady(last) || ranAt === undefined) {
      inflight++;
      continue;
    }
    const settlesAt = ranAt + cfg.monitorMs;
    if (settlesAt > v.now) {
      inflight++;
      wakeAt(d, settlesAt);
    } else if (settlesAt > lastSettled) lastSettled = settlesAt;
  }

  const status = (update: ServiceStatus['update']): void => {
    d.services.push({ service: s, status: { ...s.status, update } });
    d.notes.push(`service ${s.name}: ${update!.state}${update!.message ? ` (${update!.message})` : ''}`);
  };
  const slots = Math.max(1, groups.size);
  if (failed > 0 && cfg.failureAction !== 'continue' && failed / slots > cfg.maxFailureRatio) {
    const why = `${failed} of ${updated} updated task(s) failed, above the maximum failure ratio ${cfg.maxFailureRatio}; ${failure}`;
    if (cfg.failureAction === 'rollback' && !rollingBack) {
      const revs = s.status.revisions ?? [];
      const prev = revs.length >= 2 ? revs[revs.length - 2] : undefined;
      if (prev) {
        // The rollback is a new revision holding the previous spec, as a manual one is.
        const revision = (s.status.revision ?? revs.length) + 1;
        const change = `automatic rollback to revision ${prev.revision}`;
        d.services.push({
          service: s,
          spec: prev.spec,
          status: {
            ...s.status,
            revision,
            revisions: [...revs, { revision, spec: prev.spec, at: v.now, change }].slice(-MAX_REVISIONS),
            update: { state: 'rollback_started', startedAt: v.now, message: `${change}: ${why}` },
          },
        });
        d.notes.push(`service ${s.name}: update failed, rolling back to revision ${prev.revision}`);
        return;
      }
    }
    status({ state: rollingBack ? 'rollback_paused' : 'paused', startedAt, message: `${rollingBack ? 'rollback' : 'update'} paused: ${why}` });
    return;
  }
  if (dirty.length === 0 && inflight === 0) {
    status({ state: rollingBack ? 'rollback_completed' : 'completed', startedAt, completedAt: v.now, message: rollingBack ? 'rollback completed' : 'update completed' });
    return;
  }
  if (inflight > 0 || dirty.length === 0) return;
  const nextAt = lastSettled + cfg.delayMs;
  if (updated > 0 && nextAt > v.now) {
    wakeAt(d, nextAt);
    return;
  }
  const batch = dirty.sort((a, b) => a.spec.slot - b.spec.slot).slice(0, cfg.parallelism > 0 ? cfg.parallelism : dirty.length);
  for (const old of batch) {
    const fresh = newTask(v, s, old.spec.slot, global ? old.nodeId : undefined, [], `updates ${old.spec.serviceName}.${old.spec.slot || old.nodeId} (${rollingBack ? 'rollback' : 'update'})`);
    if (cfg.order === 'start-first' && !isTerminal(old.status.state)) {
      if (d.touched.has(old.id)) continue; // stopped by this pass already (a scale-down)
      (fresh.spec as TaskObject['spec']).replaces = old.id;
      d.creates.push(fresh);
    } else {
      // Stop-first: the old task and its successor commit together (view.ts replace).
      replace(d, old, fresh, `updated (${rollingBack ? 'rollback' : 'rolling update'})`);
    }
  }
  d.notes.push(`service ${s.name}: ${rollingBack ? 'rollback' : 'update'} batch of ${batch.length} (${dirty.length - batch.length} left)`);
}
