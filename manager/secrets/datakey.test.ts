// The data key and its seal: AES-256-GCM blobs that carry the key's id, open only with that key
// and for the object they were sealed for, and fail loudly when changed; the key file is 0600 and
// a file anyone else can read, or that holds no key, is refused.
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DataKey, keyPath, loadDataKey, removeDataKey, saveDataKey } from './datakey.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-datakey-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('seal and open', async (t) => {
  const k = DataKey.generate();
  const plain = Buffer.from('the launch codes are 0000');
  const sealed = k.seal(plain, 'shoal secret A');
  t.notOk(sealed.includes(plain), 'the sealed bytes do not hold the clear text');
  t.notOk(sealed.includes(plain.subarray(0, 8)), 'nor a part of it');
  t.same(k.open(sealed, 'shoal secret A'), plain, 'opens with the same key and object');
  t.not(k.seal(plain, 'shoal secret A').toString('hex'), sealed.toString('hex'), 'a fresh IV each time: equal secrets do not look equal');
  t.throws(() => k.open(sealed, 'shoal secret B'), /does not authenticate under data key/, "another object's additional data: refused");
  const other = DataKey.generate();
  t.throws(() => other.open(sealed, 'shoal secret A'), new RegExp(`sealed with data key ${k.id}, but this manager holds data key ${other.id}`), 'another key: says which key sealed it');
  for (const at of [0, 5, 30, sealed.length - 1]) {
    const bad = Buffer.from(sealed);
    bad[at]! ^= 1;
    t.throws(() => k.open(bad, 'shoal secret A'), /unknown format|sealed with data key|does not authenticate/, `a flipped bit at byte ${at} is detected`);
  }
  t.throws(() => k.open(Buffer.alloc(10), 'x'), /unknown format/, 'too short');
  t.throws(() => new DataKey(Buffer.alloc(16)), /32 bytes/, 'a key has 32 bytes');
  t.equal(new DataKey(k.key).id, k.id, 'the id is a function of the key');
  t.equal(k.id.length, 16);
});

t.test('the key file', async (t) => {
  t.equal(loadDataKey(dir), undefined, 'no file: no key');
  const k = DataKey.generate();
  saveDataKey(dir, k);
  t.equal(statSync(keyPath(dir)).mode & 0o777, 0o600, 'written 0600');
  t.same(loadDataKey(dir)!.key, k.key, 'read back');
  chmodSync(keyPath(dir), 0o644);
  t.throws(() => loadDataKey(dir), /readable by others \(mode 644\).*chmod 600/, 'a key file others can read is refused');
  writeFileSync(keyPath(dir), 'not a key', { mode: 0o600 });
  chmodSync(keyPath(dir), 0o600);
  t.throws(() => loadDataKey(dir), /does not hold a data key/, 'garbage is refused');
  removeDataKey(dir);
  t.equal(loadDataKey(dir), undefined, 'removed');
});

t.test('a key file sealed under an unlock key (autolock)', async (t) => {
  const { UnlockKey } = await import('./unlock-key.js');
  const { DataKeyLockedError, readDataKeyFile } = await import('./datakey.js');
  const { readFileSync } = await import('node:fs');
  const k = DataKey.generate();
  const uk = UnlockKey.generate();
  saveDataKey(dir, k, uk);
  t.equal(statSync(keyPath(dir)).mode & 0o777, 0o600, 'written 0600');
  const raw = readFileSync(keyPath(dir));
  t.notOk(raw.includes(k.key) || raw.includes(Buffer.from(k.key.toString('base64'))), 'the file does not hold the data key in clear');
  t.same(readDataKeyFile(dir), { state: 'locked', text: raw.toString('utf8'), unlockKeyId: uk.id }, 'read as locked, naming the unlock key');
  let locked: unknown;
  try {
    loadDataKey(dir);
  } catch (e) {
    locked = e;
  }
  t.ok(locked instanceof DataKeyLockedError && (locked as InstanceType<typeof DataKeyLockedError>).unlockKeyId === uk.id, 'without the unlock key: locked, naming the key');
  t.throws(() => loadDataKey(dir), /this manager is locked \(autolock\).*run "shoal unlock"/, 'saying what to do');
  t.throws(() => loadDataKey(dir, UnlockKey.generate()), /wrong unlock key/, 'a wrong key is refused');
  t.same(readFileSync(keyPath(dir)), raw, 'and the file is unchanged');
  t.same(loadDataKey(dir, uk)!.key, k.key, 'the right key opens it');
  saveDataKey(dir, k);
  t.same(loadDataKey(dir)!.key, k.key, 'saved unsealed again (autolock off): read without a key');
  removeDataKey(dir);
});
