// The restart policy decision, table-driven: condition none / on-failure / any, the delay (the
// successor's time), max attempts, and the window, which is counted from when the task ended so
// the answer does not depend on when (or by which leader) it is asked.
import t from 'tap';
import type { RestartPolicy, TaskState } from '../services/model.js';
import { replicated, service, task } from './fixtures.js';
import { endedAt, restartDue } from './restart.js';

const policy = (p: Partial<RestartPolicy>): RestartPolicy => ({ condition: 'any', delayMs: 5000, maxAttempts: 0, windowMs: 0, ...p });
const s = service('s', replicated(1));

interface Row {
  name: string;
  state: TaskState;
  policy: Partial<RestartPolicy>;
  restarts?: number[];
  endedAt?: number;
  now?: number;
  job?: boolean;
  want: { restart: false; why: RegExp } | { restart: true; at: number; restarts: number[] };
}

const rows: Row[] = [
  { name: 'a running task is not restarted', state: 'running', policy: {}, want: { restart: false, why: /still running/ } },
  { name: 'any: a failed task restarts after the delay', state: 'failed', policy: {}, endedAt: 100_000, want: { restart: true, at: 105_000, restarts: [105_000] } },
  { name: 'any: a completed task restarts too (a service runs for ever)', state: 'complete', policy: { delayMs: 0 }, endedAt: 100_000, want: { restart: true, at: 100_000, restarts: [100_000] } },
  { name: 'any: a job task that completed is done', state: 'complete', policy: {}, job: true, want: { restart: false, why: /completed/ } },
  { name: 'none: a failed task stays down', state: 'failed', policy: { condition: 'none' }, want: { restart: false, why: /condition none/ } },
  { name: 'none: a completed task stays down', state: 'complete', policy: { condition: 'none' }, want: { restart: false, why: /condition none/ } },
  { name: 'on-failure: failed restarts', state: 'failed', policy: { condition: 'on-failure', delayMs: 1000 }, endedAt: 50_000, want: { restart: true, at: 51_000, restarts: [51_000] } },
  { name: 'on-failure: rejected (image pull refused) restarts', state: 'rejected', policy: { condition: 'on-failure', delayMs: 0 }, endedAt: 50_000, want: { restart: true, at: 50_000, restarts: [50_000] } },
  { name: 'on-failure: completed does not', state: 'complete', policy: { condition: 'on-failure' }, want: { restart: false, why: /on-failure and the task ended complete/ } },
  { name: 'on-failure: shut down does not', state: 'shutdown', policy: { condition: 'on-failure' }, want: { restart: false, why: /on-failure and the task ended shutdown/ } },
  {
    name: 'orphaned (its node was lost) is replaced at once, without counting an attempt, even under none',
    state: 'orphaned', policy: { condition: 'none', maxAttempts: 1 }, restarts: [1, 2], now: 7_000_000,
    want: { restart: true, at: 7_000_000, restarts: [1, 2] },
  },
  { name: 'max attempts: below the limit restarts', state: 'failed', policy: { maxAttempts: 3 }, restarts: [10, 20], endedAt: 100_000, want: { restart: true, at: 105_000, restarts: [10, 20, 105_000] } },
  { name: 'max attempts: at the limit gives up', state: 'failed', policy: { maxAttempts: 2 }, restarts: [10, 20], want: { restart: false, why: /restarted 2 time\(s\), the policy's maximum/ } },
  {
    name: 'window: restarts older than the window (before the task ended) do not count',
    state: 'failed', policy: { maxAttempts: 2, windowMs: 60_000 }, restarts: [10_000, 100_000], endedAt: 150_000,
    want: { restart: true, at: 155_000, restarts: [100_000, 155_000] },
  },
  {
    name: 'window: two restarts within it give up',
    state: 'failed', policy: { maxAttempts: 2, windowMs: 60_000 }, restarts: [100_000, 120_000], endedAt: 150_000,
    want: { restart: false, why: /restarted 2 time\(s\) within 60 s/ },
  },
  {
    name: 'window: a slot given up stays given up when asked again much later',
    state: 'failed', policy: { maxAttempts: 2, windowMs: 60_000 }, restarts: [100_000, 120_000], endedAt: 150_000, now: 10_000_000,
    want: { restart: false, why: /within 60 s/ },
  },
  {
    name: 'no limit: only the last 10 restart times are kept',
    state: 'failed', policy: { delayMs: 0 }, restarts: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], endedAt: 11,
    want: { restart: true, at: 11, restarts: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11] },
  },
];

for (const r of rows) {
  t.test(r.name, async (t) => {
    const ended = r.endedAt ?? 200_000;
    const x = task(s, 'x', { slot: 1, state: r.state, restarts: r.restarts ?? [], timestamps: { running: ended - 10_000, [r.state]: ended } });
    const got = restartDue(x, policy(r.policy), r.now ?? ended + 1, r.job ?? false);
    if (r.want.restart) {
      t.same(got, r.want);
    } else {
      t.equal(got.restart, false);
      if (!got.restart) t.match(got.why, r.want.why);
    }
  });
}

t.test('the same ended task gives the same answer whenever it is asked', async (t) => {
  const x = task(s, 'x', { slot: 1, state: 'failed', restarts: [100_000], timestamps: { failed: 150_000 } });
  const p = policy({ maxAttempts: 3, windowMs: 30_000 });
  const answers = [150_001, 170_000, 400_000, 9_000_000].map((now) => JSON.stringify(restartDue(x, p, now, false)));
  t.equal(new Set(answers).size, 1, answers.join(' | '));
});

t.test('endedAt: the latest terminal timestamp, else the latest of any state', async (t) => {
  t.equal(endedAt(task(s, 'a', { state: 'failed', timestamps: { running: 5, shutdown: 7, failed: 9 } })), 9);
  t.equal(endedAt(task(s, 'b', { state: 'failed', timestamps: { running: 50, failed: 9 } })), 9, 'a terminal time wins over a later running time');
  t.equal(endedAt(task(s, 'c', { state: 'failed', timestamps: { running: 50 } })), 50, 'no terminal time: the latest known');
});
