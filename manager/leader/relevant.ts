// Which store changes can alter a decision of the leader pass (orchestrator, updater, allocator,
// scheduler), so that only those run another pass. Services, nodes and volumes always can, and so
// can a task created or deleted. Most task updates are an agent's progress reports (accepted ..
// running, health) that change no decision, except:
// - a task that ended (restart policy, replacement, the updater's failure count), or is not
//   placed yet (new, pending: the allocator and the scheduler);
// - during a rolling update, a task whose readiness changed (it ran, or its readiness probe
//   passed or failed): the updater waits on it to stop a start-first update's old task, to start
//   the monitor period and to send the next batch. Nothing else wakes the updater then, so
//   without it a start-first update waited forever for a pass.
import { needsPlacement } from '../scheduler/scheduler.js';
import { isTerminal, type ServiceObject, type TaskObject } from '../services/model.js';
import type { StoreEvent } from '../store/types.js';
import { rollingOut, taskReady } from '../orchestrator/updater.js';

export function passRelevant(e: StoreEvent, service: (id: string) => ServiceObject | undefined): boolean {
  if (e.object.kind !== 'task' || e.type !== 'update') return true;
  const t = e.object as TaskObject;
  const st = t.status.state;
  if (isTerminal(st) || st === 'new' || needsPlacement(t)) return true;
  const prev = e.prev as TaskObject | undefined;
  if (prev && taskReady(prev) === taskReady(t)) return false;
  return !!t.serviceId && rollingOut(service(t.serviceId));
}
