// A job's schedule as the control API takes it: defaults (Kubernetes' CronJob's), every refusal
// with the field and what to write, and the spec's way back to the wire unchanged.
import t from 'tap';
import { specFromWire, specToWire, type WireSpec } from './validate.js';
import { nextScheduleTime, scheduleStatusToWire } from './schedule.js';

const job = (schedule: WireSpec['schedule'], mode = 'replicated-job'): WireSpec => ({ mode, main: { name: 'main', image: 'busybox:1' }, schedule });

t.test('defaults and the way back', async (t) => {
  const s = specFromWire(job({ cron: ' */5 * * * * ' }));
  t.same(s.schedule, { cron: '*/5 * * * *', timeZone: 'UTC', concurrencyPolicy: 'allow', successfulRunsHistoryLimit: 3, failedRunsHistoryLimit: 1, suspend: false }, 'allow, UTC, 3 succeeded and 1 failed run kept, no deadline');
  const full = specFromWire(job({ cron: '0 3 * * *', time_zone: 'Europe/Berlin', concurrency_policy: 'forbid', starting_deadline_seconds: 120, successful_runs_history_limit: 0, failed_runs_history_limit: 7, suspend: true }, 'global-job'));
  t.same(specFromWire(specToWire(full)), full, 'specToWire then specFromWire: the same spec');
  t.equal(specFromWire(job(null)).schedule, undefined, 'no schedule: a plain job');
  t.equal(nextScheduleTime(full.schedule!, Date.parse('2024-05-01T12:00:00Z')), 0, 'suspended: no next run');
  t.equal(new Date(nextScheduleTime(s.schedule!, Date.parse('2024-05-01T12:01:00Z'))).toISOString(), '2024-05-01T12:05:00.000Z');
  t.match(scheduleStatusToWire(undefined, s.schedule!, Date.parse('2024-05-01T12:01:00Z')), { iteration: 0, runs: [], skipped: 0, next_schedule_ms: Date.parse('2024-05-01T12:05:00Z') }, 'a schedule that has not run yet');
});

t.test('refusals name the field', async (t) => {
  const bad: [WireSpec, RegExp][] = [
    [{ ...job({ cron: '* * * * *' }), mode: 'replicated' }, /schedule applies to jobs only: use mode replicated-job or global-job \(this service is replicated\)/],
    [{ ...job({ cron: '* * * * *' }), mode: 'global' }, /schedule applies to jobs only/],
    [job({ cron: '' }), /schedule is empty/],
    [job({ cron: '*/5 * * *' }), /has 4 field\(s\)/],
    [job({ cron: '* * * * *', time_zone: 'Moon/Base' }), /time zone "Moon\/Base" is not known/],
    [job({ cron: '* * * * *', concurrency_policy: 'sometimes' }), /concurrency policy "sometimes" is not known: use allow, forbid or replace/],
    [job({ cron: '* * * * *', starting_deadline_seconds: 0 }), /starting deadline must be at least 1 second/],
    [job({ cron: '* * * * *', starting_deadline_seconds: -5 }), /starting deadline \(seconds\) must be a whole number of at least 0, got -5/],
    [job({ cron: '* * * * *', successful_runs_history_limit: 1.5 }), /successful runs history limit must be a whole number/],
  ];
  for (const [w, msg] of bad) t.throws(() => specFromWire(w), msg, msg.source);
});
