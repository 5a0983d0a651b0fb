// scripts/setup.sh on a machine where another apt holds the dpkg lock (unattended-upgrades on a
// fresh machine): it waits, says what it waits for, and goes on once the lock is free; it gives
// up after its limit with a message naming the lock. Run against locks of the test's own.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'wait-dpkg-lock.sh');
const dir = mkdtempSync(join(tmpdir(), `shoal-dpkg-lock-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const lock = join(dir, 'lock-frontend');
writeFileSync(lock, '');
const env = { ...process.env, SHOAL_DPKG_LOCKS: `${lock} ${join(dir, 'absent')}` };

t.test('free locks: returns at once', async (t) => {
  const r = spawnSync('bash', [script, '5'], { env, encoding: 'utf8' });
  t.equal(r.status, 0);
  t.equal(r.stderr, '', 'nothing to say');
});

t.test('a held lock: waits, names the holder, goes on when it is released', async (t) => {
  const holder = spawn('flock', [lock, 'sleep', '2'], { stdio: 'ignore' });
  t.teardown(() => holder.kill('SIGKILL'));
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  const r = spawnSync('bash', [script, '30'], { env, encoding: 'utf8' });
  t.equal(r.status, 0, 'exits 0 once the lock is free');
  t.ok(Date.now() - t0 >= 1000, 'after waiting for it');
  t.match(r.stderr, new RegExp(`waiting for ${lock}, held by \\d+ `), `says what it waits for: ${r.stderr.trim()}`);
});

t.test('a lock held past the limit: gives up, naming it', async (t) => {
  const holder = spawn('flock', [lock, 'sleep', '30'], { stdio: 'ignore' });
  t.teardown(() => holder.kill('SIGKILL'));
  await new Promise((r) => setTimeout(r, 300));
  const r = spawnSync('bash', [script, '2'], { env, encoding: 'utf8' });
  t.equal(r.status, 1, 'exits 1');
  t.match(r.stderr, new RegExp(`gave up after 2 s waiting for ${lock}`));
});
