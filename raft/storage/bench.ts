// Micro benchmark of DiskStorage.save (not a test): N batches of K entries of S bytes.
//
//   node <build>/raft/storage/bench.js [--batches N] [--entries K] [--size S] [--concurrency C]
//                                      [--preallocate 0|1] [--segment BYTES] [--dir D]
//
// Mode "sequential" awaits each save before the next (one Ready at a time, as a RawNode host
// does). With --concurrency C > 1, C saves are kept outstanding, so saves that queue behind an
// fsync in progress are merged into one record and one fsync (group commit). Prints saves/s,
// entries/s, MB/s and the latency of the fdatasync itself (p50/p99) and of the whole save.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EntryType, type Entry } from '../types.js';
import { DiskStorage } from './disk-storage.js';

const { values } = parseArgs({
  options: {
    batches: { type: 'string', default: '5000' },
    entries: { type: 'string', default: '16' },
    size: { type: 'string', default: '256' },
    concurrency: { type: 'string', default: '1' },
    preallocate: { type: 'string', default: '1' },
    segment: { type: 'string', default: String(64 * 1024 * 1024) },
    dir: { type: 'string' },
  },
});
const N = Number(values.batches);
const K = Number(values.entries);
const SIZE = Number(values.size);
const C = Number(values.concurrency);
const PREALLOCATE = values.preallocate !== '0';
const SEGMENT = Number(values.segment);
for (const [k, v] of Object.entries({ batches: N, entries: K, size: SIZE, concurrency: C, segment: SEGMENT })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer, got ${String(v)}`);
}

function pct(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

const dir = values.dir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'shoal-raftdisk-bench-')));
try {
  const syncs: number[] = [];
  let records = 0;
  const s = await DiskStorage.open(dir, { preallocate: PREALLOCATE, segmentSizeBytes: SEGMENT, onSync: (i) => (syncs.push(i.syncMs), records++) });
  const payload = Buffer.alloc(SIZE, 0xab);
  let next = s.lastIndex() + 1;
  const term = Math.max(1, s.initialState().hardState.term);
  const saveLat: number[] = [];
  const batch = (): Entry[] => {
    const out: Entry[] = [];
    for (let i = 0; i < K; i++) out.push({ index: next++, term, type: EntryType.Normal, data: payload });
    return out;
  };
  const t0 = performance.now();
  let issued = 0;
  const worker = async () => {
    while (issued < N) {
      issued++;
      const entries = batch();
      const a = performance.now();
      await s.save({ entries, hardState: { term, vote: 1, commit: entries[0]!.index - 1 } });
      saveLat.push(performance.now() - a);
    }
  };
  await Promise.all(Array.from({ length: C }, worker));
  const secs = (performance.now() - t0) / 1000;
  await s.close();
  // Recovery: how long open() takes to replay and check everything just written.
  const o0 = performance.now();
  const reopened = await DiskStorage.open(dir, { preallocate: PREALLOCATE, segmentSizeBytes: SEGMENT });
  const openMs = performance.now() - o0;
  const held = reopened.lastIndex() - reopened.firstIndex() + 1;
  await reopened.close();
  syncs.sort((a, b) => a - b);
  saveLat.sort((a, b) => a - b);
  const f = (n: number) => n.toFixed(3);
  console.log(
    `raft storage bench: ${N} saves x ${K} entries x ${SIZE} B, concurrency ${C}, preallocate ${PREALLOCATE}, ` +
      `segments ${SEGMENT} B, dir ${dir} (${os.cpus().length} cpus, load ${os.loadavg()[0]!.toFixed(1)})\n` +
      `  saves/s     ${(N / secs).toFixed(0)}\n` +
      `  entries/s   ${((N * K) / secs).toFixed(0)}\n` +
      `  MB/s        ${((N * K * SIZE) / secs / 1e6).toFixed(1)}\n` +
      `  WAL records ${records} (fsyncs; < saves means saves were merged)\n` +
      `  fdatasync   p50 ${f(pct(syncs, 0.5))} ms  p99 ${f(pct(syncs, 0.99))} ms\n` +
      `  save()      p50 ${f(pct(saveLat, 0.5))} ms  p99 ${f(pct(saveLat, 0.99))} ms\n` +
      `  reopen      ${openMs.toFixed(0)} ms to replay ${held} entries`,
  );
} finally {
  if (!values.dir) await fs.rm(dir, { recursive: true, force: true });
}
