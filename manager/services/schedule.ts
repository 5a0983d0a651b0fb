// Scheduled jobs, as Kubernetes' CronJob defines them: a job service with a cron schedule starts
// a new run of the job at each tick. A run is one iteration of the job: its tasks carry the run's
// number (TaskSpec.iteration), and completions are counted per run. What the schedule has done
// lives in the service's status (the last scheduled time, the runs still going and the finished
// ones kept), so a new leader continues exactly where the old one stopped.
import { CronError, checkTimeZone, nextTick, parseCron } from '../orchestrator/cron-expr.js';
import type { ModeName, ServiceObject, TaskObject } from './model.js';

export type ConcurrencyPolicy = 'allow' | 'forbid' | 'replace';
export const CONCURRENCY_POLICIES: readonly ConcurrencyPolicy[] = ['allow', 'forbid', 'replace'];

export interface JobSchedule {
  /** Five-field cron expression (or @hourly, @daily, ...). */
  cron: string;
  /** IANA time zone the expression is read in. */
  timeZone: string;
  /** What a tick does while an earlier run still goes: run alongside, skip the tick, or replace it. */
  concurrencyPolicy: ConcurrencyPolicy;
  /** A tick not started within this many seconds (a leader change, forbid) is skipped. */
  startingDeadlineSeconds?: number;
  /** Finished runs kept (their tasks and logs), as CronJob's successful/failedJobsHistoryLimit. */
  successfulRunsHistoryLimit: number;
  failedRunsHistoryLimit: number;
  /** No new runs while set; runs already going continue. */
  suspend: boolean;
}

export const DEFAULT_SUCCESSFUL_HISTORY = 3;
export const DEFAULT_FAILED_HISTORY = 1;

export type RunResult = 'succeeded' | 'failed' | 'replaced';

/** One run (iteration) of a scheduled job. */
export interface JobRun {
  iteration: number;
  /** The tick it was started for. */
  scheduledAt: number;
  /** When the leader started it (later than the tick after a failover or a forbid wait). */
  startedAt: number;
  finishedAt?: number;
  result?: RunResult;
  message?: string;
}

export interface ScheduleStatus {
  /** Ticks after this time count (the schedule's start). */
  since: number;
  /** The newest run's number (0: none yet). */
  iteration: number;
  /** The tick of the newest run started: a tick at or before it is never started again. */
  lastScheduleTime?: number;
  lastSuccessfulTime?: number;
  /** Runs still going (no result) and the finished ones kept, oldest first. */
  runs: JobRun[];
  /** Ticks that started no run (forbid while a run went on, or past the starting deadline). */
  skipped: number;
  lastSkip?: { scheduledAt: number; reason: string };
  /** A tick held back by forbid: it starts when the run ends, unless a newer tick or its deadline comes first. */
  waiting?: { scheduledAt: number; reason: string };
}

export class ScheduleError extends Error {}

/** Wire shapes (proto-loader objects with snake_case field names). */
export interface WireSchedule {
  cron?: string;
  time_zone?: string;
  concurrency_policy?: string;
  starting_deadline_seconds?: number | null;
  successful_runs_history_limit?: number | null;
  failed_runs_history_limit?: number | null;
  suspend?: boolean;
}

function count(v: number | null | undefined, field: string, dflt: number | undefined): number | undefined {
  if (v === undefined || v === null) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 1e9) throw new ScheduleError(`schedule ${field} must be a whole number of at least 0, got ${v}`);
  return n;
}

/** The stored schedule of a spec; throws ScheduleError (or CronError) naming the field. */
export function scheduleFromWire(w: WireSchedule, mode: ModeName): JobSchedule {
  if (mode !== 'replicated-job' && mode !== 'global-job') throw new ScheduleError(`schedule applies to jobs only: use mode replicated-job or global-job (this service is ${mode})`);
  parseCron(w.cron ?? '');
  const policy = (w.concurrency_policy || 'allow') as ConcurrencyPolicy;
  if (!CONCURRENCY_POLICIES.includes(policy)) throw new ScheduleError(`schedule concurrency policy ${JSON.stringify(w.concurrency_policy)} is not known: use allow, forbid or replace`);
  const s: JobSchedule = {
    cron: (w.cron ?? '').trim(),
    timeZone: checkTimeZone(w.time_zone || 'UTC'),
    concurrencyPolicy: policy,
    successfulRunsHistoryLimit: count(w.successful_runs_history_limit, 'successful runs history limit', DEFAULT_SUCCESSFUL_HISTORY)!,
    failedRunsHistoryLimit: count(w.failed_runs_history_limit, 'failed runs history limit', DEFAULT_FAILED_HISTORY)!,
    suspend: !!w.suspend,
  };
  const deadline = count(w.starting_deadline_seconds, 'starting deadline (seconds)', undefined);
  if (deadline !== undefined) {
    // Kubernetes warns below 10 s: the controller may not act that fast. A deadline of 0 would
    // skip every tick.
    if (deadline < 1) throw new ScheduleError('schedule starting deadline must be at least 1 second (leave it out for no deadline)');
    s.startingDeadlineSeconds = deadline;
  }
  return s;
}

export function scheduleToWire(s: JobSchedule): WireSchedule {
  return {
    cron: s.cron,
    time_zone: s.timeZone,
    concurrency_policy: s.concurrencyPolicy,
    starting_deadline_seconds: s.startingDeadlineSeconds ?? null,
    successful_runs_history_limit: s.successfulRunsHistoryLimit,
    failed_runs_history_limit: s.failedRunsHistoryLimit,
    suspend: s.suspend,
  };
}

/** The next tick after `now` (for `service inspect`); 0 if suspended or never. */
export function nextScheduleTime(s: JobSchedule, now: number): number {
  if (s.suspend) return 0;
  try {
    return nextTick(parseCron(s.cron), now, s.timeZone) ?? 0;
  } catch (e) {
    if (e instanceof CronError) return 0;
    throw e;
  }
}

export function scheduleStatusToWire(st: ScheduleStatus | undefined, s: JobSchedule, now: number) {
  return {
    iteration: st?.iteration ?? 0,
    last_schedule_ms: st?.lastScheduleTime ?? 0,
    last_successful_ms: st?.lastSuccessfulTime ?? 0,
    next_schedule_ms: nextScheduleTime(s, now),
    runs: (st?.runs ?? []).map((r) => ({
      iteration: r.iteration,
      scheduled_at_ms: r.scheduledAt,
      started_at_ms: r.startedAt,
      finished_at_ms: r.finishedAt ?? 0,
      result: r.result ?? 'running',
      message: r.message ?? '',
    })),
    skipped: st?.skipped ?? 0,
    last_skip_ms: st?.lastSkip?.scheduledAt ?? 0,
    last_skip_reason: st?.lastSkip?.reason ?? '',
    waiting_ms: st?.waiting?.scheduledAt ?? 0,
    waiting_reason: st?.waiting?.reason ?? '',
  };
}

/** The tasks of a scheduled job's newest run (what `service ls` counts). */
export function latestRunTasks(s: ServiceObject, tasks: TaskObject[]): TaskObject[] {
  const it = s.status?.schedule?.iteration ?? 0;
  return tasks.filter((t) => (t.spec.iteration ?? 0) === it);
}
