import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { Keyring } from './keyring.js';
import { ENCRYPTION_OVERHEAD, overhead, protect, SecurityError, unprotect } from './security.js';

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const data = Buffer.from('hello gossip');

// Asserts that fn fails with a SecurityError (what the transport drops and counts).
function refused(t: Test, fn: () => unknown, what: string): void {
  try {
    fn();
    t.fail(`${what}: accepted`);
  } catch (e) {
    t.ok(e instanceof SecurityError, what);
  }
}

t.test('seal/open round trip, 29 bytes of overhead, fresh nonce every time', async (t) => {
  const kr = new Keyring([k1]);
  const a = protect({ keyring: kr, label: '' }, data);
  const b = protect({ keyring: kr, label: '' }, data);
  t.equal(a.length, data.length + ENCRYPTION_OVERHEAD);
  t.notSame(a, b);
  t.same(unprotect({ keyring: kr, label: '' }, a), data);
  t.equal(overhead({ keyring: kr, label: 'prod' }), 29 + 6);
});

t.test('a wrong key, a tampered byte or a truncated payload are refused', async (t) => {
  const sealed = protect({ keyring: new Keyring([k1]), label: '' }, data);
  const other = { keyring: new Keyring([k2]), label: '' };
  refused(t, () => unprotect(other, sealed), 'refused');
  const tampered = Buffer.from(sealed);
  tampered[20] = (tampered[20] as number) ^ 1;
  t.throws(() => unprotect({ keyring: new Keyring([k1]), label: '' }, tampered), /no installed key/);
  refused(t, () => unprotect({ keyring: new Keyring([k1]), label: '' }, sealed.subarray(0, 10)), 'refused');
  refused(t, () => unprotect({ keyring: new Keyring([k1]), label: '' }, data), 'plaintext to an encrypted member');
});

t.test('the cluster label separates clusters, with and without encryption', async (t) => {
  const kr = new Keyring([k1]);
  const a = protect({ keyring: kr, label: 'blue' }, data);
  t.same(unprotect({ keyring: kr, label: 'blue' }, a), data);
  t.throws(() => unprotect({ keyring: kr, label: 'green' }, a), /cluster label "blue" is not ours/);
  t.throws(() => unprotect({ keyring: kr, label: '' }, a), /carries a cluster label/);
  // Forging the header does not help: the label is GCM additional data.
  const forged = Buffer.concat([Buffer.from([0xf4, 5]), Buffer.from('green'), a.subarray(6)]);
  t.throws(() => unprotect({ keyring: kr, label: 'green' }, forged), /no installed key/);
  const plain = protect({ label: 'blue' }, data);
  t.same(unprotect({ label: 'blue' }, plain), data);
  refused(t, () => unprotect({ label: 'green' }, plain), 'refused');
  t.throws(() => unprotect({ label: 'blue' }, data), /no cluster label/);
});

t.test('key rotation: install, use, remove', async (t) => {
  const old = new Keyring([k1]);
  const rotating = new Keyring([k1]);
  rotating.install(k2);
  t.same(unprotect({ keyring: rotating, label: '' }, protect({ keyring: old, label: '' }, data)), data, 'new key installed: old traffic still opens');
  rotating.use(k2);
  const fresh = protect({ keyring: rotating, label: '' }, data);
  refused(t, () => unprotect({ keyring: old, label: '' }, fresh), 'a member without k2 cannot read k2 traffic');
  rotating.remove(k1);
  refused(t, () => unprotect({ keyring: rotating, label: '' }, protect({ keyring: old, label: '' }, data)), 'k1 removed');
  t.equal(rotating.getKeys().length, 1);
});

t.test('keyring refuses bad keys and unsafe operations with clear errors', async (t) => {
  t.throws(() => new Keyring([]), /at least one key/);
  t.throws(() => new Keyring([randomBytes(16)]), /needs exactly 32/);
  const kr = new Keyring([k1]);
  t.throws(() => kr.use(k2), /not installed/);
  t.throws(() => kr.remove(k1), /cannot remove the primary/);
  t.throws(() => kr.remove(k2), /not installed/);
  t.throws(() => Keyring.parseKey('not base64!'), /not base64/);
  t.equal(Keyring.parseKey(k1.toString('base64')).length, 32);
});
