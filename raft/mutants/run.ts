// Runs one mutant copy (see build.ts) against the CI-sized checks: the raft unit and scenario
// tests (each file as its own process, as tap runs them) and the CI simulator sweep
// (sim-check.js, stopping at the first violation). The verdict names what killed it first.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface LayerResult {
  killed: boolean;
  /** 'unit <file>: <first failing test>' or 'sim seed S: <invariant>'. */
  by?: string;
  detail?: string;
  ms: number;
}

export interface Verdict {
  killed: boolean;
  by?: string;
  detail?: string;
  ms: number;
  unit?: LayerResult;
  sim?: LayerResult;
}

export interface RunOptions {
  /** Run both layers to the end (to report what each one catches) instead of stopping at the first kill. */
  allLayers?: boolean;
  /** Only this layer. */
  only?: 'unit' | 'sim';
  /** Seeds of the quick sim pass run before the unit tests (the rest after them). */
  quickSeeds?: number;
  simSeeds?: { from: number; count: number };
  unitTimeoutMs?: number;
  simTimeoutMs?: number;
}

const live = new Set<ChildProcess>();

/** Kills every child this module started (on SIGINT). */
export function killChildren(): void {
  for (const c of live) if (c.exitCode === null) c.kill('SIGKILL');
}

function runNode(args: string[], cwd: string, timeoutMs: number): Promise<{ code: number | null; out: string; timedOut: boolean; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    // tap's own per-file timeout (30 s when a test file runs directly) would call a slow run on a
    // busy machine a failure; the harness has its own timeout for hangs.
    const env = { ...process.env, TAP_TIMEOUT: String(Math.ceil(timeoutMs / 1000)) };
    const c = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(c);
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (out += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      c.kill('SIGKILL');
    }, timeoutMs);
    c.on('close', (code) => {
      clearTimeout(timer);
      live.delete(c);
      resolve({ code, out, timedOut, ms: performance.now() - t0 });
    });
  });
}

/** The raft test files CI runs, minus the seed sweeps (the sim layer runs those) and the harness's own. */
export function unitTestFiles(copy: string): string[] {
  const files: string[] = [];
  for (const dir of ['core', 'sim', 'storage']) {
    for (const f of readdirSync(join(copy, 'raft', dir)).sort()) {
      if (!f.endsWith('.test.js')) continue;
      // The sweeps are the sim layer; broken/fault-classes test the simulator with their own bugs.
      if (dir === 'sim' && (f.startsWith('sim-sweep') || f === 'broken.test.js' || f === 'fault-classes.test.js')) continue;
      // Storage's own tests do not involve the core (core-integration does).
      if (dir === 'storage' && f !== 'core-integration.test.js') continue;
      files.push(join('raft', dir, f));
    }
  }
  return files;
}

function firstFailure(tap: string): string {
  const lines = tap.split('\n');
  // The innermost failing assertion, with its enclosing test name when there is one.
  const fails = lines.filter((l) => /^\s*not ok \d+/.test(l)).map((l) => l.trim().replace(/^not ok \d+ - /, ''));
  if (fails.length === 0) {
    const err = lines.find((l) => /Error|invariant/.test(l));
    return err ? err.trim().slice(0, 200) : 'exited non-zero';
  }
  return fails.slice(0, 2).join(' / ').slice(0, 240);
}

export async function runUnit(copy: string, timeoutMs: number, stopAtFirst: boolean): Promise<LayerResult> {
  const t0 = performance.now();
  let result: LayerResult | undefined;
  for (const f of unitTestFiles(copy)) {
    const r = await runNode([f], copy, timeoutMs);
    if (r.code !== 0) {
      const by = `unit ${f.replace(/^raft\//, '').replace(/\.js$/, '.ts')}`;
      const detail = r.timedOut ? `timed out after ${timeoutMs} ms (a hang counts as caught)` : firstFailure(r.out);
      result ??= { killed: true, by, detail, ms: 0 };
      if (stopAtFirst) break;
    }
  }
  return { ...(result ?? { killed: false }), ms: performance.now() - t0 };
}

export async function runSim(copy: string, from: number, count: number, timeoutMs: number): Promise<LayerResult> {
  const t0 = performance.now();
  if (count <= 0) return { killed: false, ms: 0 };
  const r = await runNode([join('raft', 'mutants', 'sim-check.js'), '--from', String(from), '--count', String(count)], copy, timeoutMs);
  if (r.timedOut) return { killed: true, by: `sim (seeds ${from}..${from + count - 1})`, detail: `timed out after ${timeoutMs} ms (a hang counts as caught)`, ms: performance.now() - t0 };
  const line = r.out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (r.code !== 0 || !line) {
    const err = r.out.split('\n').find((l) => /Error/.test(l)) ?? `exit ${r.code}`;
    return { killed: true, by: 'sim (the simulator crashed)', detail: err.trim().slice(0, 240), ms: performance.now() - t0 };
  }
  const j = JSON.parse(line) as { killed: boolean; seed?: number; invariant?: string; detail?: string };
  return j.killed
    ? { killed: true, by: `sim seed ${j.seed}: ${j.invariant}`, detail: j.detail, ms: performance.now() - t0 }
    : { killed: false, ms: performance.now() - t0 };
}

export async function runMutant(copy: string, o: RunOptions & { simSeeds: { from: number; count: number } }): Promise<Verdict> {
  const t0 = performance.now();
  const unitTimeout = o.unitTimeoutMs ?? 900_000;
  const simTimeout = o.simTimeoutMs ?? 30 * 60_000;
  const { from, count } = o.simSeeds;
  const done = (v: Omit<Verdict, 'ms'>): Verdict => ({ ...v, ms: performance.now() - t0 });
  if (o.allLayers || o.only) {
    const unit = o.only === 'sim' ? undefined : await runUnit(copy, unitTimeout, false);
    const sim = o.only === 'unit' ? undefined : await runSim(copy, from, count, simTimeout);
    const first = [sim, unit].find((l) => l?.killed);
    return done({ killed: !!first, by: first?.by, detail: first?.detail, unit, sim });
  }
  // A quick pass of the first seeds kills most mutants in seconds; then the unit tests; then the rest.
  const quick = Math.min(count, o.quickSeeds ?? 100);
  let sim = await runSim(copy, from, quick, simTimeout);
  if (sim.killed) return done({ killed: true, by: sim.by, detail: sim.detail, sim });
  const unit = await runUnit(copy, unitTimeout, true);
  if (unit.killed) return done({ killed: true, by: unit.by, detail: unit.detail, unit });
  sim = await runSim(copy, from + quick, count - quick, simTimeout);
  return done({ killed: sim.killed, by: sim.by, detail: sim.detail, unit, sim });
}
