// Which store events can change a leader pass's decisions. The loop skips the others: at scale,
// every task's progress (accepted, preparing, starting, running) would otherwise cost a pass.
import { needsPlacement } from '../scheduler/scheduler.js';
import { isTerminal, type ServiceObject, type TaskObject } from '../services/model.js';
import type { StoreEvent } from '../store/types.js';

export function passRelevant(e: StoreEvent, service: (id: string) => ServiceObject | undefined): boolean {
  if (e.object.kind !== 'task' || e.type !== 'update') return true; // services, nodes, volumes; tasks created or deleted
  const t = e.object as TaskObject;
  const st = t.status.state;
  // Endings, and tasks not yet placed (new, pending).
  if (isTerminal(st) || st === 'new' || needsPlacement(t)) return true;
  // A rolling update waits for each new task to run and be ready, then for its monitor period
  // (and a start-first one stops the old task then): a running task of a service being updated
  // is what lets the next batch go. Without it, an update whose old task ended before the new
  // one ran (stop-first with a volume, always) waited for some unrelated event.
  if (st === 'running' && t.serviceId) {
    const u = service(t.serviceId)?.status.update?.state;
    return u === 'updating' || u === 'rollback_started';
  }
  return false;
}
