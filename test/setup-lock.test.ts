// scripts/setup.sh on a machine where another apt holds the dpkg lock (unattended-upgrades on a
// fresh machine): it waits, says what it waits for, and goes on once the lock is free; it gives
// up after its limit with a message naming the lock. Run against locks of the test's own.
import t, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
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

/** Holds the lock until killed; resolves once it really holds it (at load, a fixed pause was
 * not always enough and the script then found the lock free). */
async function holdLock(t: Test): Promise<ChildProcess> {
  // Its own process group: sleep inherits the locked descriptor, so both must go to release it.
  const holder = spawn('flock', [lock, 'sleep', '600'], { stdio: 'ignore', detached: true });
  t.teardown(() => release(holder));
  for (;;) {
    if (spawnSync('flock', ['-n', '-E', '99', lock, 'true']).status === 99) return holder;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function release(holder: ChildProcess): void {
  try { process.kill(-holder.pid!, 'SIGKILL'); } catch { /* gone */ }
}

t.test('a held lock: waits, names the holder, goes on when it is released', async (t) => {
  const holder = await holdLock(t);
  const p = spawn('bash', [script, '300'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => p.kill('SIGKILL'));
  let stderr = '';
  let exited = false;
  const done = new Promise<number | null>((r) => p.once('close', (code) => { exited = true; r(code); }));
  p.stderr!.setEncoding('utf8');
  // Released only once the script has said it waits: it cannot have gone on without the lock.
  await new Promise<void>((r) => p.stderr!.on('data', (d: string) => { stderr += d; if (/waiting for/.test(stderr)) r(); }));
  t.notOk(exited, 'still waiting while the lock is held');
  release(holder);
  t.equal(await done, 0, 'exits 0 once the lock is free');
  // "held by 812 flock ...": the holder by PID and command, without ps's padding of short PIDs
  // (CI's PIDs were shorter than pid_max's width and the message read "held by  812").
  t.match(stderr, new RegExp(`waiting for ${lock}, held by \\d+ \\S`), `says what it waits for: ${stderr.trim()}`);
  t.match(stderr, new RegExp(`(, held by |; )${holder.pid} flock ${lock} sleep 600`), 'names the holding process');
});

t.test('a lock held past the limit: gives up, naming it', async (t) => {
  const holder = await holdLock(t);
  const r = spawnSync('bash', [script, '2'], { env, encoding: 'utf8' });
  t.equal(r.status, 1, 'exits 1');
  t.match(r.stderr, new RegExp(`gave up after 2 s waiting for ${lock} \\(held by: (\\d+ [^;]*; )?${holder.pid} flock `));
});
