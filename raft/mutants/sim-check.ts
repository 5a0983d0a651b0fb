// Runs the CI-sized simulator sweep against whatever core sits beside it (in a mutant's copy, the
// mutated one), seed by seed in CI order, and stops at the first violation. Prints one JSON line:
//   {"killed":true,"seed":S,"invariant":"...","detail":"...","seeds":N,"ms":T} or {"killed":false,...}
//
//   node <copy>/raft/mutants/sim-check.js [--from S] [--count N]
import { runCiSeed, CI_SEEDS } from '../sim/sim-seeds.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) {
    process.stderr.write(`sim-check: ${name} needs a non-negative integer\n`);
    process.exit(2);
  }
  return v;
}

const from = arg('--from', CI_SEEDS.from);
const count = arg('--count', CI_SEEDS.count);
const t0 = performance.now();
let seeds = 0;
let out: Record<string, unknown> = { killed: false };
for (let seed = from; seed < from + count; seed++) {
  seeds++;
  const r = runCiSeed(seed);
  if (!r.ok && r.violation) {
    out = { killed: true, seed, invariant: r.violation.invariant, detail: r.violation.detail.split('\n')[0] };
    break;
  }
}
process.stdout.write(JSON.stringify({ ...out, seeds, ms: Math.round(performance.now() - t0) }) + '\n');
