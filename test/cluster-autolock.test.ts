// Autolock on a real cluster (three shoald managers on loopback): turned on, a secret written, a
// restarted manager stays locked (the CLI says so, `node ls` elsewhere shows it, its API does not
// answer) until `shoal unlock` is given the key; malformed and wrong keys are refused and change
// nothing; the right key brings it back into raft. The key is rotated and another manager is
// restarted: only the new key unlocks it. Then the raw bytes of every manager's state directory
// (WAL, snapshots, every file) are searched for the CA key, the secret and the data key: never
// found. Turned off again, a restarted manager comes up unlocked.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHOAL, TestCluster, waitFor, type CliResult } from './cluster-harness.js';
import { decodeBackup } from '../proto/backup-file.js';
import { decodeSnapshot } from '../manager/store/codec.js';
import { rootCA } from '../manager/ca/ca-key.js';
import type { ClusterObject } from '../manager/control/model.js';
import { keyPath, loadDataKey, readDataKeyFile, type DataKey } from '../manager/secrets/datakey.js';
import { UnlockKey } from '../manager/secrets/unlock-key.js';

const c = new TestCluster();
t.teardown(() => c.destroy());
t.setTimeout(10 * 60_000);

const MANAGERS = ['m1', 'm2', 'm3'];
const SECRET = `autolock-secret-${process.pid}-the-launch-codes`;
const ok = async (node: string, ...args: string[]) => {
  const r = await c.cli(node, ...args);
  if (r.code !== 0) throw new Error(`shoal ${args.join(' ')} on ${node}: ${r.stderr}`);
  return r.stdout;
};
const nodes = (on: string) => c.json<any[]>(on, 'node', 'ls');

/** `shoal unlock` with the key on standard input (as an operator pipes it from a file). */
function unlockStdin(node: string, key: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [SHOAL, '--state-dir', c.state(node), 'unlock'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    p.stdin.end(key + '\n');
  });
}

/** Every manager's data key file is sealed under this unlock key (each re-seals on its own). */
const sealedUnder = (id: string, names = MANAGERS) =>
  waitFor(`the data key files of ${names.join(', ')} sealed under unlock key ${id}`, async () => names.every((n) => {
    const f = readDataKeyFile(c.state(n));
    return f.state === 'locked' && f.unlockKeyId === id;
  }), 60_000);

async function restartLocked(t: Test, node: string): Promise<void> {
  await c.kill(node, 'SIGTERM');
  await c.start(node);
  const local = await c.cli(node, 'node', 'ls');
  t.not(local.code, 0, `${node} restarted: its local CLI is refused`);
  t.match(local.stderr, /this manager is locked \(autolock is on and shoald restarted\).*run "shoal unlock" on this host/, 'saying it is locked and what to do');
  const other = MANAGERS.find((n) => n !== node)!;
  await waitFor(`${other} shows ${node} locked`, async () => (await nodes(other)).find((n) => n.hostname === node)?.managerStatus?.locked, 60_000);
  const table = await ok(other, 'node', 'ls');
  t.match(table, new RegExp(`${node}\\s+manager.*Locked \\(run shoal unlock on it\\)`), `node ls on ${other} says ${node} is locked and what to do`);
  const api = await c.cliRaw(['--state-dir', c.state(other), '--host', c.addr(node), 'node', 'ls']);
  t.not(api.code, 0, `${node} does not serve as a manager (its API does not answer): ${api.stderr.trim().split('\n')[0]}`);
}

let dataKey: DataKey;
let caKeyPem = '';
let key1 = '';
let key2 = '';

t.test('three managers; autolock on: every data key file sealed; a secret', async (t) => {
  for (const n of MANAGERS) await c.start(n);
  await ok('m1', 'init');
  const mt = (await ok('m1', 'join-token', 'manager', '-q')).trim();
  for (const n of ['m2', 'm3']) await ok(n, 'join', '--token', mt, c.addr('m1'));
  await waitFor('3 voters', async () => (await nodes('m1')).filter((n) => n.managerStatus?.voter).length === 3, 120_000);
  // What the test must never find on disk: the CA key (opened from a backup with the data key that
  // m1's state dir holds in clear before autolock) and the data key itself.
  dataKey = loadDataKey(c.state('m1'))!;
  const backup = join(c.dir, 'before.backup');
  await ok('m1', 'cluster', 'backup', backup);
  const cl = decodeSnapshot(decodeBackup(readFileSync(backup)).data).objects.find((o) => o.kind === 'cluster') as ClusterObject;
  t.notOk(cl.spec.ca.keyPem, 'the store holds no clear CA key');
  caKeyPem = rootCA(cl, () => dataKey).keyPem;
  t.match(caKeyPem, /BEGIN PRIVATE KEY/, 'the data key opens the sealed CA key');

  const on = await c.cli('m1', 'cluster', 'update', '--autolock=true');
  t.equal(on.code, 0, on.stderr);
  key1 = /SHL-UNLOCK-1-[A-Za-z0-9_-]{43}/.exec(on.stdout)?.[0] ?? '';
  t.ok(key1, 'the unlock key is printed once');
  t.match(on.stdout, /Autolock is on.*Keep it somewhere safe/s);
  await sealedUnder(UnlockKey.parse(key1).id);
  t.pass('every manager sealed its data key file under the unlock key');
  t.equal((await ok('m2', 'unlock-key', '-q')).trim(), key1, 'unlock-key shows the same key on another manager');
  t.match(await ok('m1', 'cluster', 'inspect'), /Autolock: on/);
  t.match((await c.cli('m1', 'cluster', 'update', '--autolock=true')).stdout, /already on/, 'turning it on again changes nothing');
  const bad = await c.cli('m1', 'cluster', 'update', '--autolock=maybe');
  t.equal(bad.code, 2, 'a bad --autolock value is a usage error');
  t.match(bad.stderr, /--autolock takes true or false/);

  const file = join(c.dir, 'secret.txt');
  writeFileSync(file, SECRET, { mode: 0o600 });
  await ok('m1', 'secret', 'create', 'launch-codes', file);
});

t.test('a restarted manager stays locked; bad keys are refused; the right key unlocks it', async (t) => {
  await restartLocked(t, 'm3');
  const before = readFileSync(keyPath(c.state('m3')));
  const malformed = await unlockStdin('m3', key1.slice(0, -3));
  t.not(malformed.code, 0);
  t.match(malformed.stderr, /the unlock key is malformed/, 'a truncated key: malformed');
  const wrongFile = join(c.dir, 'wrong.key');
  writeFileSync(wrongFile, UnlockKey.generate().toString(), { mode: 0o600 });
  const wrong = await c.cli('m3', 'unlock', '--key-file', wrongFile);
  t.not(wrong.code, 0);
  t.match(wrong.stderr, /wrong unlock key/, 'another key: refused');
  t.same(readFileSync(keyPath(c.state('m3'))), before, 'the refusals changed nothing on disk');
  t.not((await c.cli('m3', 'node', 'ls')).code, 0, 'still locked');

  const r = await unlockStdin('m3', key1);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /unlocked/);
  await waitFor('m3 back: unlocked, a reachable voter', async () => {
    const m = (await nodes('m1')).find((n) => n.hostname === 'm3')?.managerStatus;
    return m && !m.locked && m.voter && m.reachability === 'reachable';
  }, 120_000);
  t.equal((await ok('m3', 'secret', 'ls', '--format', 'json')).includes('launch-codes'), true, 'm3 serves as a manager again (reads the secret list)');
  t.match((await c.cli('m3', 'unlock', '--key-file', wrongFile)).stderr, /is not locked/, 'unlocking an unlocked manager says so');
});

t.test('rotation: every manager re-seals; a manager restarted after it opens only with the new key', async (t) => {
  key2 = (await ok('m1', 'unlock-key', '--rotate', '-q')).trim();
  t.match(key2, /^SHL-UNLOCK-1-/);
  t.not(key2, key1, 'a new key');
  await sealedUnder(UnlockKey.parse(key2).id);
  t.pass('every manager re-sealed its data key file under the new key');
  await restartLocked(t, 'm2');
  const old = await unlockStdin('m2', key1);
  t.not(old.code, 0);
  t.match(old.stderr, /wrong unlock key/, 'the key from before the rotation no longer opens it');
  const r = await unlockStdin('m2', key2);
  t.equal(r.code, 0, r.stderr);
  await waitFor('m2 back: unlocked, a reachable voter', async () => {
    const m = (await nodes('m1')).find((n) => n.hostname === 'm2')?.managerStatus;
    return m && !m.locked && m.voter && m.reachability === 'reachable';
  }, 120_000);
  await ok('m2', 'secret', 'create', 'after-rotation', join(c.dir, 'secret.txt'));
});

/** Every regular file under `dir`, recursively. */
function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...files(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

t.test('at rest: no manager state directory holds the CA key, the secret or the data key', async (t) => {
  const body = caKeyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const needles: [string, Buffer][] = [
    ['the CA key (DER)', Buffer.from(body, 'base64')],
    ['the CA key (PEM body)', Buffer.from(body)],
    ['a line of the CA key PEM', Buffer.from(caKeyPem.split('\n')[1]!)],
    ['the secret', Buffer.from(SECRET)],
    ['the data key', dataKey.key],
    ['the data key (base64)', Buffer.from(dataKey.key.toString('base64'))],
    ['the unlock key', Buffer.from(key2)],
  ];
  let scanned = 0;
  let bytes = 0;
  for (const n of MANAGERS) {
    const list = files(c.state(n));
    t.ok(list.some((f) => f.includes(`${n}/raft/`)), `${n} has raft files (WAL, snapshots) to search`);
    for (const f of list) {
      const raw = readFileSync(f);
      scanned++;
      bytes += raw.length;
      for (const [what, needle] of needles) if (raw.includes(needle)) t.fail(`${what} found in ${f}`);
    }
  }
  t.ok(scanned > 10 && bytes > 0, `searched ${scanned} files, ${bytes} bytes: none holds any of ${needles.map(([w]) => w).join(', ')}`);
  // The search does read the raft data: what the store keeps in clear (the secret's name) is found
  // in each manager's WAL or snapshots.
  for (const n of MANAGERS) t.ok(files(join(c.state(n), 'raft')).some((f) => readFileSync(f).includes(Buffer.from('after-rotation'))), `the search finds the secret's name (kept in clear) in ${n}'s raft files`);
  t.ok(statSync(keyPath(c.state('m1'))).size > 0, 'and the data key file is there, sealed');
});

t.test('autolock off: the data key files unsealed; a restarted manager needs no key', async (t) => {
  const off = await c.cli('m1', 'cluster', 'update', '--autolock=false');
  t.equal(off.code, 0, off.stderr);
  await waitFor('every data key file unsealed', async () => MANAGERS.every((n) => readDataKeyFile(c.state(n)).state === 'plain'), 60_000);
  const none = await c.cli('m1', 'unlock-key');
  t.not(none.code, 0);
  t.match(none.stderr, /autolock is off/, 'unlock-key says autolock is off');
  await c.kill('m3', 'SIGTERM');
  await c.start('m3');
  await waitFor('m3 answers as a manager without a key', async () => (await c.cli('m3', 'node', 'ls')).code === 0, 60_000);
  t.pass('restarted unlocked');
});
