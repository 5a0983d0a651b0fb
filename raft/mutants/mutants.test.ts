// The mutation harness itself: every planted bug still applies to the current sources (a refactor
// that moves the code must update raft/mutants/mutants.ts, not silently test nothing), there are
// enough of them to cover every rule, and the pipeline works end to end: a mutant copy is built,
// the simulator in it catches the bug, and the unmutated copy passes the same seeds.
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import t from 'tap';
import { buildCopy, makeScratch, patchedSources, removeScratch, transpile } from './build.js';
import { MUTANTS } from './mutants.js';

t.test('every mutant applies exactly once and still parses', async (t) => {
  for (const m of MUTANTS) {
    let ok = true;
    try {
      for (const [file, text] of patchedSources(m)) transpile(text, file);
    } catch (e) {
      ok = false;
      t.fail(`${m.id}: ${(e as Error).message}`);
    }
    if (ok) t.pass(`${m.id} applies`);
  }
  const ids = new Set(MUTANTS.map((m) => m.id));
  t.equal(ids.size, MUTANTS.length, 'mutant ids are unique');
  t.ok(MUTANTS.length >= 25, `at least 25 mutants (${MUTANTS.length})`);
  for (const m of MUTANTS) t.ok(m.rule && m.what && m.patches.length > 0, `${m.id} names its rule and bug`);
});

t.test('a mutant copy is caught by its own simulator; the unmutated copy passes the same seeds', async (t) => {
  const scratch = makeScratch('shoal-mutants-test-');
  t.teardown(() => removeScratch(scratch));
  const load = async (dir: string) => (await import(pathToFileURL(join(dir, 'raft', 'sim', 'simulator.js')).href)) as typeof import('../sim/simulator.js');
  const mutant = MUTANTS.find((m) => m.id === 'vote-twice')!;
  const bad = await load(buildCopy(scratch, 'm', mutant));
  const good = await load(buildCopy(scratch, 'baseline', null));
  let caught: number | undefined;
  for (let seed = 1; seed <= 20 && caught === undefined; seed++) if (!bad.runSeed({ seed, steps: 2000 }).ok) caught = seed;
  t.ok(caught, `the mutant ${mutant.id} is caught within 20 seeds (seed ${caught})`);
  for (let seed = 1; seed <= (caught ?? 0); seed++) t.ok(good.runSeed({ seed, steps: 2000 }).ok, `seed ${seed} passes unmutated`);
});
