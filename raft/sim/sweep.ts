// Runs many seeds, spread over worker threads (one per core by default), and gathers the failed
// runs' reports. Seeds are dealt round-robin so both workers get a similar mix of 3- and 5-node
// clusters; results do not depend on the number of workers (each seed is a pure function).

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { formatViolation, runSeed, type DiskSpeed, type SimResult } from './simulator.js';

export interface SweepOptions {
  from: number;
  count: number;
  steps: number;
  nodes?: number;
  tornWrites?: boolean;
  disk?: DiskSpeed;
  /** Worker threads; 0 runs in this thread (default: available cores). */
  workers?: number;
  /** Called for each finished seed (in completion order). */
  onResult?: (r: SweepItem) => void;
}

export interface SweepItem {
  seed: number;
  ok: boolean;
  traceHash: number;
  /** formatViolation() for failed runs. */
  report?: string;
  invariant?: string;
}

export interface WorkerJob {
  seeds: number[];
  steps: number;
  nodes?: number;
  tornWrites?: boolean;
  disk?: DiskSpeed;
}

export function toItem(r: SimResult): SweepItem {
  return r.ok
    ? { seed: r.seed, ok: true, traceHash: r.traceHash }
    : { seed: r.seed, ok: false, traceHash: r.traceHash, report: formatViolation(r), invariant: r.violation?.invariant };
}

export async function sweep(o: SweepOptions): Promise<SweepItem[]> {
  const seeds = Array.from({ length: o.count }, (_, i) => (o.from + i) >>> 0);
  const workers = Math.min(o.workers ?? availableParallelism(), seeds.length);
  const out: SweepItem[] = [];
  if (workers <= 0) {
    for (const seed of seeds) {
      const item = toItem(runSeed({ seed, steps: o.steps, nodes: o.nodes, tornWrites: o.tornWrites, disk: o.disk }));
      out.push(item);
      o.onResult?.(item);
    }
    return out;
  }
  const url = new URL('./worker.js', import.meta.url);
  await Promise.all(
    Array.from({ length: workers }, (_, w) => {
      const job: WorkerJob = { seeds: seeds.filter((_, i) => i % workers === w), steps: o.steps, nodes: o.nodes, tornWrites: o.tornWrites, disk: o.disk };
      return new Promise<void>((resolve, reject) => {
        const worker = new Worker(url, { workerData: job });
        worker.on('message', (item: SweepItem) => {
          out.push(item);
          o.onResult?.(item);
        });
        worker.on('error', reject);
        worker.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sim worker ${w} exited with code ${code}`))));
      });
    }),
  );
  out.sort((a, b) => a.seed - b.seed);
  return out;
}
