#!/usr/bin/env node
// npm run sim -- --seeds N [--from S] [--steps K] [--seed S] [--nodes N] [--workers W]
//                [--torn-writes|--no-torn-writes] [--disk fast|slow|stalls] [--verbose]
//
// --torn-writes: a crash may leave any prefix of the write in progress (an etcd-style WAL; also a
// snapshot without its hard state, FINDINGS.md #3); --no-torn-writes: raft/storage's rule, the
// write in progress is on disk whole or not at all. Default: the seed chooses (one in four torn).
// --disk fixes the disks' latency (default: the seed chooses fast, slow or with stalls).
//
// Runs the deterministic raft simulation for a range of seeds (or one seed), prints every failed
// seed with its fault schedule and first broken invariant, then the wall time, and last the line
// `seeds: N, violations: V`. Exits 1 when V > 0, 2 on bad arguments.

import { formatViolation, runSeed, type DiskSpeed } from './simulator.js';
import { sweep } from './sweep.js';

interface Args {
  seeds: number;
  from: number;
  steps: number;
  seed?: number;
  nodes?: number;
  workers?: number;
  tornWrites?: boolean;
  disk?: DiskSpeed;
  verbose: boolean;
}

const USAGE = 'usage: sim --seeds N [--from S] [--steps K] [--nodes 3|5] [--workers W] [--torn-writes|--no-torn-writes] [--disk fast|slow|stalls] | --seed S [--steps K] [--nodes 3|5] [--torn-writes|--no-torn-writes] [--disk D] [--verbose]';

export function parseArgs(argv: string[]): Args {
  const a: Args = { seeds: 100, from: 1, steps: 2000, verbose: false };
  const int = (flag: string, v: string | undefined, min: number, max: number): number => {
    if (v === undefined) throw new Error(`${flag} needs a value; ${USAGE}`);
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${flag} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    switch (f) {
      case '--seeds':
        a.seeds = int(f, argv[++i], 1, 10_000_000);
        break;
      case '--from':
        a.from = int(f, argv[++i], 0, 0xffffffff);
        break;
      case '--steps':
        a.steps = int(f, argv[++i], 1, 100_000_000);
        break;
      case '--seed':
        a.seed = int(f, argv[++i], 0, 0xffffffff);
        break;
      case '--nodes':
        a.nodes = int(f, argv[++i], 3, 5);
        if (a.nodes === 4) throw new Error('--nodes must be 3 or 5');
        break;
      case '--workers':
        a.workers = int(f, argv[++i], 0, 64);
        break;
      case '--torn-writes':
        a.tornWrites = true;
        break;
      case '--no-torn-writes':
        a.tornWrites = false;
        break;
      case '--disk': {
        const d = argv[++i];
        if (d !== 'fast' && d !== 'slow' && d !== 'stalls') throw new Error(`--disk must be fast, slow or stalls; ${USAGE}`);
        a.disk = d;
        break;
      }
      case '--verbose':
      case '-v':
        a.verbose = true;
        break;
      case '--help':
      case '-h':
        throw new Error(USAGE);
      default:
        throw new Error(`unknown argument ${JSON.stringify(f)}; ${USAGE}`);
    }
  }
  if (a.verbose && a.seed === undefined) throw new Error('--verbose narrates one run: give it --seed S');
  return a;
}

// `| head` closing the pipe is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const started = performance.now();
  let violations = 0;
  let count = 0;
  if (args.seed !== undefined) {
    count = 1;
    const r = runSeed({ seed: args.seed, steps: args.steps, nodes: args.nodes, tornWrites: args.tornWrites, disk: args.disk, narrate: args.verbose ? (l) => process.stdout.write(`${l}\n`) : undefined });
    const s = r.stats;
    process.stdout.write(
      `seed ${r.seed}: ${s.steps} steps, ${s.virtualMs}ms virtual, ${s.nodes} nodes, ${s.leaders} leaderships (max term ${s.maxTerm}), ` +
        `commit ${s.commitIndex}, ${s.crashes} crashes, ${s.confChanges} conf changes, ${s.snapshotsSent} snapshots sent / ${s.snapshotsInstalled} installed, ` +
        `${s.opsCompleted} ops answered, ${s.opsOpen} writes left open, ${s.lateMessages} late messages, ${s.deferredHardStates} deferred hard states, ` +
        `${s.slowWrites} slow writes (${s.disk} disks${s.tornWrites ? ', torn writes' : ''}), ${s.calmStages} calm stages, ${s.checks} invariant checks, trace ${r.traceHash.toString(16)}\n`,
    );
    if (!r.ok) {
      violations++;
      process.stdout.write(`${formatViolation(r)}\n`);
    }
  } else {
    count = args.seeds;
    let done = 0;
    const items = await sweep({
      from: args.from,
      count: args.seeds,
      steps: args.steps,
      nodes: args.nodes,
      tornWrites: args.tornWrites,
      disk: args.disk,
      workers: args.workers,
      onResult: (it) => {
        done++;
        if (!it.ok) process.stdout.write(`${it.report}\n`);
        if (done % 1000 === 0) process.stderr.write(`... ${done}/${args.seeds} seeds\n`);
      },
    });
    violations = items.filter((i) => !i.ok).length;
  }
  process.stdout.write(`elapsed: ${((performance.now() - started) / 1000).toFixed(1)}s\n`);
  process.stdout.write(`seeds: ${count}, violations: ${violations}\n`);
  return violations > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`sim: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 2;
  },
);
