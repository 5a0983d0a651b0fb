// The commands package.json installs (npm link puts them on PATH) must be runnable as they are:
// built files are executable and start with a shebang, so `shoal ...` does not end in
// "Permission denied" (it did after a rebuild once: tsc writes plain 0644 files).
import { accessSync, constants, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { protoDir } from '../proto/load.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
const dist = join(dirname(fileURLToPath(import.meta.url)), '..');

for (const [name, rel] of Object.entries(pkg.bin)) {
  // package.json names dist/...; run what this build produced (dist/ in CI, .build/NAME/ locally).
  const file = join(dist, rel.replace(/^(\.\/)?dist\//, ''));
  t.test(`${name} (${rel})`, async (t) => {
    t.doesNotThrow(() => accessSync(file, constants.X_OK), 'executable');
    t.match(readFileSync(file, 'utf8').split('\n')[0]!, /^#!\/usr\/bin\/env (-S )?node\b/, 'starts with a node shebang');
    const r = spawnSync(file, ['--no-such-flag'], { encoding: 'utf8', timeout: 90_000 });
    t.equal(r.error, undefined, `runs directly (${r.error?.message ?? 'ok'})`);
    t.match(r.stderr + r.stdout, /usage|unknown/i, 'and answers a bad flag with its usage');
  });
}

t.test('shoal --version names the version and the checkout it runs from (npm link points the PATH at one clone)', async (t) => {
  const r = spawnSync(process.execPath, [join(dist, 'cli', 'main.js'), '--version'], { encoding: 'utf8', timeout: 90_000 });
  t.equal(r.status, 0);
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  t.equal(r.stdout, `shoal ${version} (${dirname(protoDir())})\n`);
});
