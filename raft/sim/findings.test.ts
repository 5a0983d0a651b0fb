// Regression tests for what the simulator found in raft/core (see FINDINGS.md). Each replays the
// exact seed that failed.
import t, { type Test } from 'tap';
import { formatViolation, runSeed } from './simulator.js';

function replay(t: Test, seed: number, steps: number): void {
  const r = runSeed({ seed, steps });
  if (!t.ok(r.ok, `seed ${seed} --steps ${steps}`)) t.comment(formatViolation(r));
}

t.test('liveness after a joint change that removes the leader (FINDINGS.md #1, fixed in raft/core)', async (t) => {
  replay(t, 1174, 4000);
  replay(t, 101193, 10000);
});

// Open in raft/core at the time of writing; un-skip when it is fixed.
const OPEN_2 = 'raft/core: snapshot restored between Ready and Advance makes a committed conf change throw (FINDINGS.md #2), not fixed yet';
t.test('a snapshot restored between Ready and Advance (FINDINGS.md #2)', { skip: OPEN_2 }, async (t) => {
  replay(t, 5968, 4000);
  replay(t, 201135, 20000);
});
