// The dispatcher's agents' task status reports waiting to be written through raft, one per task:
// the latest wins. "Latest" is the agent's order (states only move forward; the same state again
// when its report is later), never arrival order alone: a batch whose write failed is put back
// while a later batch of the same task may also be in flight, and when both fail (raft leadership
// moving) the older one must not replace the newer. It did: a task's `running` was put back
// under its earlier `starting` (services-faults, a leader killed during a scale), the store
// kept `starting`, and the agent, whose report had been taken, never sent it again.
import { movesForward, type TaskState, type TaskStatus } from '../services/model.js';

export interface QueuedStatus {
  nodeId: string;
  status: Partial<TaskStatus> & { state: TaskState };
  /** When the task reached each state, as its agent reported. */
  timestamps: Partial<Record<TaskState, number>>;
  /** When the agent made this report (its clock): orders two reports of the same state. */
  at: number;
}

/**
 * Which of two reports of a task stands, with the timestamps of both: `next` (the one that came
 * later) if its state is further on, or the same state reported no earlier by the agent.
 */
export function laterOf(prev: QueuedStatus | undefined, next: QueuedStatus): QueuedStatus {
  if (!prev) return next;
  const timestamps = { ...prev.timestamps };
  for (const [s, ts] of Object.entries(next.timestamps) as [TaskState, number][]) timestamps[s] = Math.max(timestamps[s] ?? 0, ts);
  const same = prev.status.state === next.status.state;
  const nextWins = movesForward(prev.status.state, next.status.state) || (same && next.at >= prev.at);
  // The winner's fields over the other's (a container id reported once is kept).
  return nextWins ? { nodeId: next.nodeId, status: { ...prev.status, ...next.status }, timestamps, at: next.at } : { nodeId: prev.nodeId, status: { ...next.status, ...prev.status }, timestamps, at: prev.at };
}

export class StatusQueue {
  private readonly queued = new Map<string, QueuedStatus>();

  get size(): number {
    return this.queued.size;
  }

  /** An agent's report: it replaces the task's queued one unless that one is later. */
  add(taskId: string, q: QueuedStatus): void {
    this.queued.set(taskId, laterOf(this.queued.get(taskId), q));
  }

  /** Everything queued, for one write; the queue starts again empty. */
  take(): [string, QueuedStatus][] {
    const batch = [...this.queued.entries()];
    this.queued.clear();
    return batch;
  }

  /** Reports whose write failed go back, each unless a later report of its task came meanwhile. */
  putBack(entries: [string, QueuedStatus][]): void {
    for (const [id, q] of entries) {
      // The one queued since came later: it stands unless the one put back is further on.
      const since = this.queued.get(id);
      this.queued.set(id, since ? laterOf(q, since) : q);
    }
  }

  get(taskId: string): QueuedStatus | undefined {
    return this.queued.get(taskId);
  }
}
