// The CI seed sweep, shared by the two test files that split it (so `npm test`, which runs two
// files at a time, uses both cores). Each file runs its range of seeds in its own thread.

import type { Test } from 'tap';
import { formatViolation, runSeed, type SimResult } from './simulator.js';

export const CI_STEPS = 4000;
/** The seeds `npm test` runs (split over sim-sweep-a/b); the mutation harness runs the same. */
export const CI_SEEDS = { from: 1, count: 2000 };

/** One CI run: the options are the CI sweep's, so the mutation harness measures exactly CI. */
export function runCiSeed(seed: number): SimResult {
  return runSeed({ seed, steps: CI_STEPS });
}

export function sweepTest(t: Test, from: number, count: number): void {
  const failures: string[] = [];
  const total = { leaders: 0, snapshotsInstalled: 0, confChanges: 0, jointConfigs: 0, crashes: 0, opsCompleted: 0, opsOpen: 0, checks: 0, steps: 0 };
  for (let seed = from; seed < from + count; seed++) {
    const r = runCiSeed(seed);
    if (!r.ok) failures.push(formatViolation(r));
    total.leaders += r.stats.leaders;
    total.snapshotsInstalled += r.stats.snapshotsInstalled;
    total.confChanges += r.stats.confChanges;
    total.jointConfigs += r.stats.jointConfigs;
    total.crashes += r.stats.crashes;
    total.opsCompleted += r.stats.opsCompleted;
    total.opsOpen += r.stats.opsOpen;
    total.checks += r.stats.checks;
    total.steps += r.stats.steps;
  }
  t.equal(failures.length, 0, `seeds ${from}..${from + count - 1} (${CI_STEPS} fault steps each): no violations`);
  for (const f of failures) t.comment(f);
  t.comment(`totals: ${JSON.stringify(total)}`);
  // The runs must have exercised what they claim to (a sweep that does nothing passes vacuously).
  t.ok(total.leaders >= count, 'leaders were elected (and re-elected)');
  t.ok(total.crashes >= count, 'nodes crashed and restarted');
  t.ok(total.snapshotsInstalled > count / 4, 'snapshots were sent and installed');
  t.ok(total.confChanges > count / 4, 'membership changed');
  t.ok(total.jointConfigs > 0, 'joint configurations were entered');
  t.ok(total.opsCompleted > count * 10, 'clients got answers');
  t.ok(total.opsOpen > 0, 'some writes were left open (timed out) and still checked');
  t.ok(total.steps >= count * CI_STEPS, 'every seed ran its steps');
}
