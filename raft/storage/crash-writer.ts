// Child process for crash.test.ts: appends entries to a DiskStorage under load until it is
// killed. Protocol on stdout, one line each:
//   open <firstIndex> <lastIndex> <term> <commit>      after DiskStorage.open
//   begin <first> <last> <term> <commit>               a save is about to start (at most one in flight)
//   ack <first> <last> <term> <commit>                 that save resolved: it is durable
//   snap <index> <term>                                saveSnapshot + compact resolved
// Usage: node crash-writer.js <dir> <seed> <segmentSizeBytes> <preallocate 0|1>

import { writeSync } from 'node:fs';
import { Entry } from '../types.js';
import { DiskStorage } from './disk-storage.js';
import { makeEntries, prng } from './testkit.js';

const [dir, seedArg, segArg, preArg] = process.argv.slice(2);
if (!dir || !seedArg || !segArg || !preArg) {
  process.stderr.write('usage: crash-writer.js <dir> <seed> <segmentSizeBytes> <preallocate 0|1>\n');
  process.exit(2);
}
const rnd = prng(Number(seedArg));
const SNAPSHOT_EVERY = 800;
const KEEP = 200;

// Synchronous writes: a line is out before the next save starts, so the parent never misses an ack.
// stdout is a non-blocking pipe: when a busy parent lets it fill, writeSync throws EAGAIN, so wait
// a millisecond and write the rest.
const pause = new Int32Array(new SharedArrayBuffer(4));
function say(line: string): void {
  const buf = Buffer.from(line + '\n');
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(1, buf, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

const s = await DiskStorage.open(dir, { segmentSizeBytes: Number(segArg), preallocate: preArg === '1' });
let { term, commit } = s.initialState().hardState;
if (term === 0) term = 1;
say(`open ${s.firstIndex()} ${s.lastIndex()} ${term} ${commit}`);

for (;;) {
  const last = s.lastIndex();
  let first = last + 1;
  // Now and then a new leader overwrites an uncommitted suffix (conflict truncation).
  if (rnd() < 0.06 && last - commit > 2) {
    first = commit + 1 + Math.floor(rnd() * (last - commit - 1));
    term++;
  }
  const big = rnd() < 0.1;
  const count = 1 + Math.floor(rnd() * (big ? 400 : 48));
  const size = 16 + Math.floor(rnd() * (big ? 2000 : 400));
  const entries: Entry[] = makeEntries(first, count, term, size);
  const newLast = first + count - 1;
  commit = Math.max(commit, Math.min(newLast - 10, first - 1));
  say(`begin ${first} ${newLast} ${term} ${commit}`);
  await s.save({ entries, hardState: { term, vote: 1, commit } });
  say(`ack ${first} ${newLast} ${term} ${commit}`);
  if (commit - s.snapshot().meta.index >= SNAPSHOT_EVERY) {
    const at = commit;
    const t = s.term(at);
    await s.saveSnapshot({
      meta: { index: at, term: t, conf: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } },
      data: Buffer.from(`snapshot@${at}:${t}`),
    });
    await s.compact(Math.max(at - KEEP, s.firstIndex() - 1));
    say(`snap ${at} ${t}`);
  }
}
