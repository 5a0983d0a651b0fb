// shoal-csi's command line: bad arguments are refused with a clear message and exit status 2,
// before anything is created; SIGTERM stops it and removes its sockets.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { driverMain, startDriverProc } from './testing/driver-proc.js';
import { leftovers, sweep, testDir } from './testing/leaks.js';

const run = (...args: string[]) => spawnSync(process.execPath, [driverMain(), ...args], { encoding: 'utf8', timeout: 90_000 });
const ok = ['--endpoint', 'unix:///tmp/x.sock', '--pool', '/tmp/p', '--node-id', 'n1'];

for (const [args, msg] of [
  [[], /--endpoint must be unix:/],
  [['--endpoint', 'tcp://127.0.0.1:1', '--pool', '/tmp/p', '--node-id', 'n'], /--endpoint must be unix:\/\/\/absolute/],
  [['--endpoint', 'unix://rel.sock', '--pool', '/tmp/p', '--node-id', 'n'], /--endpoint must be unix:\/\/\/absolute/],
  [['--endpoint', 'unix:///tmp/x.sock', '--node-id', 'n'], /--pool must be an absolute directory/],
  [['--endpoint', 'unix:///tmp/x.sock', '--pool', 'rel', '--node-id', 'n'], /--pool must be an absolute directory/],
  [['--endpoint', 'unix:///tmp/x.sock', '--pool', '/tmp/p'], /--node-id must be/],
  [['--endpoint', 'unix:///tmp/x.sock', '--pool', '/tmp/p', '--node-id', 'a/b'], /--node-id must be/],
  [[...ok, '--registry-dir', 'rel'], /--registry-dir must be an absolute directory/],
  [[...ok, '--name', '-bad-'], /--name must be a domain-style name/],
  [[...ok, '--capacity', 'lots'], /--capacity: "lots" is not a size/],
  [[...ok, '--watch-interval', '0'], /--watch-interval must be a positive number/],
  [[...ok, '--fence-grace', 'x'], /--fence-grace must be a positive number/],
  [['--bogus'], /unknown argument --bogus/],
  [['--pool'], /--pool needs a value/],
] as [string[], RegExp][]) {
  t.test(`refuses ${JSON.stringify(args)}`, async (t) => {
    const r = run(...args);
    t.equal(r.status, 2);
    t.match(r.stderr, msg);
    t.match(r.stderr, /usage: shoal-csi --endpoint/);
  });
}

t.test('serves, registers, and on SIGTERM removes its sockets', async (t) => {
  const dir = testDir('main');
  t.teardown(() => sweep(dir));
  const p = await startDriverProc({ socket: join(dir, 'csi.sock'), pool: join(dir, 'pool'), nodeId: `m-${process.pid}`, registryDir: join(dir, 'plugins_registry') });
  t.ok(existsSync(join(dir, 'plugins_registry', 'block.csi.shoal.io-reg.sock')), 'the registration socket');
  t.match(p.stderr(), /serving CSI on unix:\/\/.*registered through/);
  await p.kill('SIGTERM');
  t.equal(p.proc.exitCode, 0, 'exits 0');
  t.notOk(existsSync(join(dir, 'csi.sock')), 'CSI socket removed');
  t.notOk(existsSync(join(dir, 'plugins_registry', 'block.csi.shoal.io-reg.sock')), 'registration socket removed');
  t.same(leftovers(dir), { loops: [], mounts: [] });
});

t.test('refuses to start over a regular file where its socket goes', async (t) => {
  const dir = testDir('main2');
  t.teardown(() => sweep(dir));
  const file = join(dir, 'not-a-socket');
  spawnSync('touch', [file]);
  const p = spawn(process.execPath, [driverMain(), '--endpoint', `unix://${file}`, '--pool', join(dir, 'pool'), '--node-id', 'n1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (b: Buffer) => { err += b; });
  const code = await new Promise((r) => p.once('exit', r));
  t.equal(code, 1);
  t.match(err, /exists and is not a socket; refusing to replace it/);
});
