// The PKI and join tokens: subjects written by the CA (not the CSR), validity and expiry checks,
// renewal times, token format and parsing errors, sealed tokens.
import { randomInt } from 'node:crypto';
import t from 'tap';
import { BadCSRError, certInfo, createKeyAndCSR, createRootCA, issueNodeCertificate, renewAt, verifyNodeCert } from './pki.js';
import { seal, unseal } from './seal.js';
import { BadTokenError, caDigest, hashSecret, makeToken, newSecret, parseToken, secretMatches } from './tokens.js';

t.test('node certificates: the CA writes the subject, the CSR gives only the key', async (t) => {
  const ca = await createRootCA('cluster1');
  const { keyPem, csrPem } = await createKeyAndCSR();
  const c = await issueNodeCertificate({ ca, csrPem, nodeId: 'node1', role: 'worker', clusterId: 'cluster1' });
  const i = verifyNodeCert(c.certPem, ca.certPem, keyPem);
  t.equal(i.cn, 'node1');
  t.equal(i.ou, 'worker');
  t.equal(i.o, 'cluster1');
  t.equal(i.serial, c.serial.replace(/^0+/, ''));
  const days = (i.notAfter - Date.now()) / 86400_000;
  t.ok(days > 89.9 && days <= 90, `90-day validity (${days.toFixed(3)} days)`);
  const other = await createKeyAndCSR();
  t.throws(() => verifyNodeCert(c.certPem, ca.certPem, other.keyPem), /does not hold this node's public key/);
  const ca2 = await createRootCA('cluster2');
  t.throws(() => verifyNodeCert(c.certPem, ca2.certPem), /not signed by the cluster CA/);
});

t.test('expired and not-yet-valid certificates are refused', async (t) => {
  const ca = await createRootCA('c');
  const { csrPem } = await createKeyAndCSR();
  const now = Date.now();
  const old = await issueNodeCertificate({ ca, csrPem, nodeId: 'n', role: 'manager', clusterId: 'c', notBefore: new Date(now - 10 * 86400_000), notAfter: new Date(now - 86400_000) });
  t.throws(() => verifyNodeCert(old.certPem, ca.certPem), /the certificate expired at/);
  const future = await issueNodeCertificate({ ca, csrPem, nodeId: 'n', role: 'manager', clusterId: 'c', notBefore: new Date(now + 86400_000), notAfter: new Date(now + 2 * 86400_000) });
  t.throws(() => verifyNodeCert(future.certPem, ca.certPem), /not valid before/);
});

t.test('bad CSRs are refused with a clear error', async (t) => {
  const ca = await createRootCA('c');
  await t.rejects(issueNodeCertificate({ ca, csrPem: 'hello', nodeId: 'n', role: 'worker', clusterId: 'c' }), { name: 'BadCSRError', message: /not a PEM PKCS#10 request/ });
  const { csrPem } = await createKeyAndCSR();
  // Flip one byte inside the signed body: the CSR's own signature no longer verifies.
  const b64 = csrPem.split('\n').filter((l) => !l.startsWith('-----')).join('');
  const der = Buffer.from(b64, 'base64');
  const at = der.indexOf(Buffer.from('shoal-node'));
  t.ok(at > 0, 'found the subject in the CSR');
  der[at] = der[at]! ^ 0x01;
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  await t.rejects(issueNodeCertificate({ ca, csrPem: tampered, nodeId: 'n', role: 'worker', clusterId: 'c' }), { name: 'BadCSRError', message: /the CSR signature does not verify/ });
  void BadCSRError;
});

t.test('renewal falls between 50 % and 80 % of the validity', async (t) => {
  const nb = 1_000_000;
  const na = nb + 90 * 86400_000;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < 2000; i++) {
    const f = (renewAt(nb, na) - nb) / (na - nb);
    lo = Math.min(lo, f);
    hi = Math.max(hi, f);
  }
  t.ok(lo >= 0.5 && hi <= 0.8, `range [${lo.toFixed(3)}, ${hi.toFixed(3)}]`);
  t.ok(hi - lo > 0.2, 'spread over the window, not a fixed point');
});

t.test('join tokens', async (t) => {
  const ca = await createRootCA('c');
  const s = newSecret();
  const tok = makeToken(ca.certPem, s);
  t.match(tok, /^SHL-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
  const p = parseToken(tok);
  t.equal(p.digest, caDigest(ca.certPem));
  t.equal(p.secret, s);
  t.ok(secretMatches(s, hashSecret(s)));
  t.notOk(secretMatches(newSecret(), hashSecret(s)));
  t.not(caDigest(ca.certPem), caDigest(ca.certPem + '\n'), 'the digest covers the exact bundle bytes');
  t.throws(() => parseToken('SWMTKN-1-abc-def'), { name: 'BadTokenError', message: /malformed/ });
  void BadTokenError;
  t.throws(() => parseToken('SHL-1-abc'), /malformed/);
  t.throws(() => parseToken(`SHL-1-${'a'.repeat(49)}-${s}`), /digest must be 50/);
  t.throws(() => parseToken(`SHL-1-${p.digest}-${s}x`), /secret must be 25/);
  t.throws(() => parseToken(`SHL-1-${p.digest.replace(/[a-z]/, 'X')}-${s}`), /CA digest holds "X" at position \d+: only digits and lower-case letters/, 'a wrong character is named, not the (right) length');
  t.throws(() => parseToken(`SHL-1-${p.digest}-${s.slice(0, 24)}!`), /secret holds "!" at position 25/);
  void randomInt;
});

t.test('sealed tokens open only with the CA key', async (t) => {
  const a = await createRootCA('a');
  const b = await createRootCA('b');
  const sealed = seal(a.keyPem, 'SHL-1-x');
  t.equal(unseal(a.keyPem, sealed), 'SHL-1-x');
  t.throws(() => unseal(b.keyPem, sealed));
  t.equal(certInfo(a.certPem).cn, 'shoal-ca');
});
