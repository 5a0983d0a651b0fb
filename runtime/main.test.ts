// shoal-runtime's command line: bad arguments are refused with a clear message, exit status 2.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('./main.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 90_000 });

for (const [args, msg] of [
  [[], /--listen must be unix:/],
  [['--listen', 'tcp://127.0.0.1:1', '--root', '/tmp/x'], /--listen must be unix:/],
  [['--listen', 'unix://relative.sock', '--root', '/tmp/x'], /--listen must be unix:\/\/\/absolute/],
  [['--listen', 'unix:///tmp/x.sock'], /--root must be an absolute directory/],
  [['--listen', 'unix:///tmp/x.sock', '--root', 'rel'], /--root must be an absolute directory/],
  [['--listen', 'unix:///tmp/x.sock', '--root', '/tmp/x', '--pids-limit', '-3'], /--pids-limit must be a non-negative integer/],
  [['--listen', 'unix:///tmp/x.sock', '--root', '/tmp/x', '--shim', 'rel/shim'], /--shim must be an absolute path/],
  [['--listen', 'unix:///tmp/x.sock', '--root', '/tmp/x', '--start-timeout', '0'], /--start-timeout must be a positive number/],
  [['--bogus'], /unknown argument --bogus/],
  [['--root'], /--root needs a value/],
] as [string[], RegExp][]) {
  t.test(`refuses ${JSON.stringify(args)}`, async (t) => {
    const r = run(...args);
    t.equal(r.status, 2);
    t.match(r.stderr, msg);
    t.match(r.stderr, /usage: shoal-runtime --listen/);
  });
}
