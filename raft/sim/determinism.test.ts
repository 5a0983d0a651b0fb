// Every run is a pure function of its seed: same seed, same trace; the CLI replays a seed exactly
// and spreads sweeps over worker threads without changing any result.

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { runSeed } from './simulator.js';
import { sweep } from './sweep.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('./cli.js', import.meta.url));

t.test('same seed gives an identical trace; different seeds differ', async (t) => {
  for (const seed of [1, 2, 77, 4242]) {
    const a = runSeed({ seed, steps: 2000 });
    const b = runSeed({ seed, steps: 2000 });
    t.equal(a.traceHash, b.traceHash, `seed ${seed}: trace hash`);
    t.same(a.stats, b.stats, `seed ${seed}: stats`);
    t.same(a.schedule, b.schedule, `seed ${seed}: fault schedule`);
  }
  const hashes = new Set([1, 2, 3, 4, 5, 6, 7, 8].map((seed) => runSeed({ seed, steps: 500 }).traceHash));
  t.equal(hashes.size, 8, 'eight seeds, eight traces');
});

t.test('the node count option is honoured and changes the run', async (t) => {
  const three = runSeed({ seed: 9, steps: 800, nodes: 3 });
  const five = runSeed({ seed: 9, steps: 800, nodes: 5 });
  t.ok(three.ok && five.ok);
  t.not(three.traceHash, five.traceHash);
  t.throws(() => runSeed({ seed: 1, steps: 10, nodes: 0 }), /nodes must be an integer in 1\.\.7/);
});

t.test('a sweep gives the same per-seed results in worker threads and in this thread', async (t) => {
  const inThread = await sweep({ from: 20, count: 6, steps: 600, workers: 0 });
  const inWorkers = await sweep({ from: 20, count: 6, steps: 600, workers: 2 });
  t.same(inWorkers.map((i) => [i.seed, i.traceHash, i.ok]), inThread.map((i) => [i.seed, i.traceHash, i.ok]));
});

t.test('cli: --seed replays exactly and ends with the summary line', async (t) => {
  const a = await run(process.execPath, [cli, '--seed', '31', '--steps', '700']);
  const b = await run(process.execPath, [cli, '--seed', '31', '--steps', '700']);
  const lines = a.stdout.trim().split('\n');
  t.equal(lines[lines.length - 1], 'seeds: 1, violations: 0');
  t.match(lines[lines.length - 2], /^elapsed: \d+\.\ds$/);
  t.equal(a.stdout.split('\n')[0], b.stdout.split('\n')[0], 'same first line (stats and trace hash)');
  t.match(a.stdout, /trace [0-9a-f]+/);
});

t.test('cli: --verbose narrates elections, faults and client operations', async (t) => {
  const { stdout } = await run(process.execPath, [cli, '--seed', '13', '--steps', '1500', '--verbose']);
  t.match(stdout, /became leader of term/);
  t.match(stdout, /⚡/);
  t.match(stdout, /answered after/);
  t.match(stdout, /heal: network repaired/);
  t.match(stdout, /liveness: the probe write committed/);
  t.match(stdout.trim().split('\n').pop() as string, /^seeds: 1, violations: 0$/);
});

t.test('cli: a multi-seed sweep prints the exact final line', async (t) => {
  const { stdout } = await run(process.execPath, [cli, '--seeds', '4', '--from', '100', '--steps', '400', '--workers', '2']);
  t.equal(stdout.trim().split('\n').pop(), 'seeds: 4, violations: 0');
});

t.test('cli: bad arguments exit 2 with a clear message', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--seeds', 'abc'], /--seeds must be an integer/],
    [['--nodes', '4'], /--nodes must be 3 or 5/],
    [['--verbose'], /--verbose narrates one run: give it --seed S/],
    [['--frobnicate'], /unknown argument "--frobnicate"/],
    [['--steps'], /--steps needs a value/],
  ];
  for (const [args, msg] of cases) {
    const err = await run(process.execPath, [cli, ...args]).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    t.ok(err, `${args.join(' ')} fails`);
    t.equal(err?.code, 2, `${args.join(' ')} exits 2`);
    t.match(err?.stderr ?? '', msg);
  }
});
