// The unlock key (autolock's key-encryption key): its printed form, how bad input is refused, and
// the sealed data key file it opens: only with the right key, never holding the data key in clear.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { LOCKED_PREFIX, UnlockKey, isLocked, parseLocked } from './unlock-key.js';

t.test('the printed key reads back; bad input is refused, saying what is wrong', async (t) => {
  const k = UnlockKey.generate();
  const s = k.toString();
  t.match(s, /^SHL-UNLOCK-1-[A-Za-z0-9_-]{43}$/, 'SHL-UNLOCK-1- and 43 base64url characters');
  t.same(UnlockKey.parse(`  ${s}\n`).key, k.key, 'read back (surrounding whitespace ignored)');
  t.equal(UnlockKey.parse(s).id, k.id, 'the same id');
  t.not(UnlockKey.generate().id, k.id, 'a new key has another id');
  t.throws(() => UnlockKey.parse(''), /no unlock key was given/, 'empty');
  t.throws(() => UnlockKey.parse('SHL-1-abc-def'), /not a shoal unlock key: it should start with SHL-UNLOCK-1-.*join token/, 'a join token');
  t.throws(() => UnlockKey.parse(s.slice(0, -1)), /malformed: .*43 characters .* got 42; check it was copied whole/, 'one character short');
  t.throws(() => UnlockKey.parse(s + 'A'), /malformed/, 'one too many');
  t.throws(() => UnlockKey.parse(s.slice(0, -2) + '!!'), /malformed/, 'characters outside base64url');
  t.throws(() => new UnlockKey(Buffer.alloc(16)), /32 bytes/, 'a key has 32 bytes');
});

t.test('a data key sealed under the unlock key opens only with it', async (t) => {
  const k = UnlockKey.generate();
  const dk = randomBytes(32);
  const text = k.sealDataKey(dk);
  t.ok(isLocked(text) && text.startsWith(LOCKED_PREFIX + k.id + ':'), 'the file names the unlock key that sealed it');
  t.notOk(text.includes(dk.toString('base64')) || Buffer.from(text).includes(dk) || text.includes(dk.toString('hex')), 'the data key is in it in no clear form');
  t.same(k.openDataKey(text), dk, 'the right key opens it');
  t.not(k.sealDataKey(dk), text, 'a fresh salt and IV each time');
  const other = UnlockKey.generate();
  t.throws(() => other.openDataKey(text), new RegExp(`wrong unlock key: this manager's data key is sealed under unlock key ${k.id}, this is key ${other.id}.*key from before the rotation`), 'a wrong key is refused and named');
  const parts = parseLocked(text);
  t.equal(parts.keyId, k.id);
  const flipped = Buffer.from(parts.blob);
  flipped[flipped.length - 1]! ^= 1;
  t.throws(() => k.openDataKey(`${LOCKED_PREFIX}${k.id}:${flipped.toString('base64')}`), /does not authenticate under it \(corrupted\?\)/, 'a changed byte is detected');
  // The id is authenticated too: a file relabelled with another key's id does not open.
  t.throws(() => k.openDataKey(text.replace(k.id, other.id)), /wrong unlock key/, 'a relabelled file is refused');
  t.throws(() => k.openDataKey(`${LOCKED_PREFIX}${k.id}:AAAA`), /damaged/, 'a truncated file is named damaged');
  t.throws(() => k.openDataKey('garbage'), /damaged/, 'garbage is named damaged');
});
