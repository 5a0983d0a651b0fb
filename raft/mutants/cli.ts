#!/usr/bin/env node
// npm run mutants -- [--only id,id] [--jobs N] [--all-layers] [--layer unit|sim] [--seeds N]
//                    [--from S] [--no-baseline] [--json FILE] [--list]
//
// The mutation harness: every planted bug of mutants.ts is applied to a copy of the compiled
// raft tree and run against the CI-sized checks (raft's unit and scenario tests, and the CI
// simulator sweep); a mutant is killed when any of them fails. First the unmutated copy must
// pass (the baseline), or no verdict would mean anything. Prints one line per mutant and ends
// with `mutants: N, killed: K, survived: S` and the survivors' names. Exit 1 if any survived,
// 2 on bad arguments or a mutant that no longer applies.
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { CI_SEEDS } from '../sim/sim-seeds.js';
import { buildCopy, makeScratch, patchedSources, removeScratch } from './build.js';
import { MUTANTS, type Mutant } from './mutants.js';
import { killChildren, runMutant, type RunOptions, type Verdict } from './run.js';

interface Args extends RunOptions {
  ids?: string[];
  jobs: number;
  baseline: boolean;
  json?: string;
  list: boolean;
  simSeeds: { from: number; count: number };
}

const USAGE = 'usage: mutants [--only id,id] [--jobs N] [--all-layers] [--layer unit|sim] [--seeds N] [--from S] [--no-baseline] [--json FILE] [--list]';

function parse(argv: string[]): Args {
  const a: Args = { jobs: Math.max(1, availableParallelism()), baseline: true, list: false, simSeeds: { ...CI_SEEDS } };
  const num = (f: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min) throw new Error(`${f} needs an integer >= ${min}; ${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    if (f === '--only') a.ids = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (f === '--jobs') a.jobs = num(f, argv[++i], 1);
    else if (f === '--all-layers') a.allLayers = true;
    else if (f === '--layer') {
      const l = argv[++i];
      if (l !== 'unit' && l !== 'sim') throw new Error(`--layer must be unit or sim; ${USAGE}`);
      a.only = l;
    } else if (f === '--seeds') a.simSeeds.count = num(f, argv[++i], 1);
    else if (f === '--from') a.simSeeds.from = num(f, argv[++i], 0);
    else if (f === '--no-baseline') a.baseline = false;
    else if (f === '--json') a.json = argv[++i];
    else if (f === '--list') a.list = true;
    else throw new Error(`unknown argument ${JSON.stringify(f)}; ${USAGE}`);
  }
  if (a.ids) {
    const known = new Set(MUTANTS.map((m) => m.id));
    const bad = a.ids.filter((id) => !known.has(id));
    if (bad.length) throw new Error(`unknown mutant(s) ${bad.join(', ')}; --list shows them`);
  }
  return a;
}

function fmtMs(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}

async function main(): Promise<number> {
  let a: Args;
  try {
    a = parse(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  const chosen: Mutant[] = a.ids ? MUTANTS.filter((m) => a.ids!.includes(m.id)) : MUTANTS;
  if (a.list) {
    for (const m of MUTANTS) process.stdout.write(`${m.id.padEnd(34)} ${m.rule}\n${' '.repeat(35)}${m.what}\n`);
    process.stdout.write(`mutants: ${MUTANTS.length}, rules: ${new Set(MUTANTS.map((m) => m.rule)).size}\n`);
    return 0;
  }
  // Every patch must apply before anything runs.
  try {
    for (const m of chosen) patchedSources(m);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  const scratch = makeScratch();
  const stop = () => {
    killChildren();
    removeScratch(scratch);
    process.exit(130);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const t0 = performance.now();
  const seeds = `${a.simSeeds.count} seeds from ${a.simSeeds.from}`;
  process.stdout.write(`mutants: ${chosen.length} planted bugs against raft's unit/scenario tests and the CI sim sweep (${seeds}), ${a.jobs} at a time\n`);
  try {
    if (a.baseline) {
      process.stdout.write('baseline (no mutation): running every check, it must pass ...\n');
      const v = await runMutant(buildCopy(scratch, 'baseline', null), { ...a, allLayers: true, only: a.only });
      if (v.killed) {
        process.stdout.write(`baseline FAILS (${v.by}: ${v.detail}): the checks fail without any mutation, so no verdict would mean anything\n`);
        return 1;
      }
      process.stdout.write(`baseline passes (${fmtMs(v.ms)})\n`);
    }
    const verdicts = new Map<string, Verdict>();
    let next = 0;
    let finished = 0;
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= chosen.length) return;
        const m = chosen[i]!;
        const copy = buildCopy(scratch, m.id, m);
        const v = await runMutant(copy, a);
        removeScratch(copy);
        verdicts.set(m.id, v);
        finished++;
        const what = v.killed ? `killed by ${v.by}` : 'SURVIVED';
        const layers = a.allLayers ? ` [unit: ${v.unit?.killed ? v.unit.by : 'survived'}; sim: ${v.sim?.killed ? v.sim.by : 'survived'}]` : '';
        process.stdout.write(`[${finished}/${chosen.length}] ${m.id}: ${what}${v.detail && v.killed ? ` — ${v.detail}` : ''}${layers} (${fmtMs(v.ms)})\n`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(a.jobs, chosen.length) }, worker));
    const killed = chosen.filter((m) => verdicts.get(m.id)?.killed);
    const survivors = chosen.filter((m) => !verdicts.get(m.id)?.killed);
    process.stdout.write('\n| mutant | rule | killed by |\n|---|---|---|\n');
    for (const m of chosen) {
      const v = verdicts.get(m.id)!;
      process.stdout.write(`| ${m.id} | ${m.rule} | ${v.killed ? v.by : '**survived**'} |\n`);
    }
    if (a.json) writeFileSync(a.json, JSON.stringify(chosen.map((m) => ({ id: m.id, rule: m.rule, what: m.what, ...verdicts.get(m.id) })), null, 1));
    process.stdout.write(`elapsed: ${fmtMs(performance.now() - t0)}\n`);
    if (survivors.length) process.stdout.write(`survivors: ${survivors.map((m) => m.id).join(', ')}\n`);
    process.stdout.write(`mutants: ${chosen.length}, killed: ${killed.length}, survived: ${survivors.length}\n`);
    return survivors.length > 0 ? 1 : 0;
  } finally {
    removeScratch(scratch);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    killChildren();
    process.stderr.write(`mutants: ${(e as Error).stack ?? e}\n`);
    process.exitCode = 2;
  },
);
