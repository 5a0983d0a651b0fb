// Regression tests for what the simulator found in raft/core (see FINDINGS.md). Each replays the
// exact seed that failed; they pass once the core is fixed.
import t from 'tap';
import { formatViolation, runSeed } from './simulator.js';

// FINDINGS.md #1 is open in raft/core at the time of writing: these runs still end leaderless.
const OPEN = 'raft/core: permanently leaderless after a joint change that removes the leader (FINDINGS.md #1), not fixed yet';

t.test('liveness after a joint change that removes the leader (FINDINGS.md #1)', { skip: OPEN }, async (t) => {
  for (const [seed, steps] of [[1174, 4000], [101193, 10000]]) {
    const r = runSeed({ seed, steps });
    t.ok(r.ok, `seed ${seed} --steps ${steps}`) || t.comment(formatViolation(r));
  }
});
