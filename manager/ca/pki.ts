// The cluster's PKI: a self-signed ECDSA P-256 root, node keys and CSRs, and issuing node
// certificates whose subject the CA writes (CN = node id, OU = role, O = cluster id). Built on
// @peculiar/x509 over WebCrypto; node:crypto's X509Certificate checks signatures and dates.
import { X509Certificate as NodeX509, createPublicKey, randomBytes, randomInt, webcrypto } from 'node:crypto';
import * as x509 from './x509.js';
import { MANAGER_SAN, type Role } from './names.js';

export { MANAGER_SAN, type Role };

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as never);

const ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

export const ROLES: readonly Role[] = ['manager', 'worker'];
export const CA_CN = 'shoal-ca';
export const NODE_CERT_DAYS = 90;
const CA_YEARS = 20;
/** Certificates are backdated a little so a peer whose clock runs behind still accepts them. */
const BACKDATE_MS = 60 * 60 * 1000;

export interface KeyPairPem {
  keyPem: string;
  publicKeyPem: string;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function derOf(p: string, label: string): Buffer {
  const m = new RegExp(`-----BEGIN ${label}-----([^-]+)-----END ${label}-----`).exec(p);
  if (!m) throw new Error(`not a PEM ${label}`);
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function importPrivate(keyPem: string): Promise<CryptoKey> {
  return (await webcrypto.subtle.importKey('pkcs8', derOf(keyPem, 'PRIVATE KEY'), ALG, true, ['sign'])) as CryptoKey;
}

function serial(): string {
  const b = randomBytes(16);
  b[0]! &= 0x7f; // positive
  return b.toString('hex');
}

export interface RootCA {
  certPem: string;
  keyPem: string;
}

/** A new self-signed root (ECDSA P-256, 20 years). */
export async function createRootCA(clusterId: string): Promise<RootCA> {
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${CA_CN}, O=${clusterId}`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + CA_YEARS * 365 * 86400_000),
    signingAlgorithm: SIGN,
    keys: keys as never,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

/** A node's own key and a CSR for it. The key never leaves the node; the subject is ignored by the CA. */
export async function createKeyAndCSR(): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await newKeys();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=shoal-node', keys: keys as never, signingAlgorithm: SIGN });
  return { keyPem: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), csrPem: csr.toString('pem') + '\n' };
}

export class BadCSRError extends Error {
  override name = 'BadCSRError';
}

export interface IssueParams {
  ca: RootCA;
  csrPem: string;
  nodeId: string;
  role: Role;
  clusterId: string;
  days?: number;
  /** Validity in seconds (overrides days). */
  seconds?: number;
  /** For tests of expiry: an explicit validity window. */
  notBefore?: Date;
  notAfter?: Date;
}

/**
 * Signs a node certificate. Only the CSR's public key is used (after checking the CSR's own
 * signature, which proves the requester holds the private key); the subject and SANs come from
 * the CA: CN = node id, OU = role, O = cluster id; SANs = node id, role, and `shoal-manager` for
 * managers.
 */
export async function issueNodeCertificate(p: IssueParams): Promise<{ certPem: string; serial: string; notAfter: number }> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(p.csrPem);
  } catch (e) {
    throw new BadCSRError(`the CSR is not a PEM PKCS#10 request: ${(e as Error).message}`);
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch (e) {
    throw new BadCSRError(`the CSR's key or signature cannot be read: ${(e as Error).message}`);
  }
  if (!ok) throw new BadCSRError('the CSR signature does not verify: the requester does not hold the key it asks a certificate for');
  const alg = csr.publicKey.algorithm as { name: string; namedCurve?: string };
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') throw new BadCSRError(`the CSR key must be ECDSA P-256, got ${alg.name} ${alg.namedCurve ?? ''}`);
  const caCert = new x509.X509Certificate(p.ca.certPem);
  const signingKey = await importPrivate(p.ca.keyPem);
  const now = Date.now();
  const validityMs = p.seconds ? p.seconds * 1000 : (p.days ?? NODE_CERT_DAYS) * 86400_000;
  // Backdated for peers whose clock runs behind, but never by more than a tenth of the validity.
  const notBefore = p.notBefore ?? new Date(now - Math.min(BACKDATE_MS, validityMs / 10));
  const notAfter = p.notAfter ?? new Date(now + validityMs);
  const sn = serial();
  const dns = [p.nodeId, `shoal-${p.role}`];
  if (p.role === 'manager') dns.push(MANAGER_SAN);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: sn,
    subject: `CN=${p.nodeId}, OU=${p.role}, O=${p.clusterId}`,
    issuer: caCert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: SIGN,
    publicKey: csr.publicKey,
    signingKey: signingKey as never,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(dns.map((d) => ({ type: 'dns' as const, value: d }))),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', serial: sn, notAfter: notAfter.getTime() };
}

export interface CertInfo {
  cn: string;
  ou: string;
  o: string;
  serial: string;
  notBefore: number;
  notAfter: number;
  publicKeyDer: Buffer;
}

function field(subject: string, key: string): string {
  // node's X509Certificate.subject is "K=V\nK=V"
  for (const line of subject.split('\n')) {
    const i = line.indexOf('=');
    if (line.slice(0, i) === key) return line.slice(i + 1);
  }
  return '';
}

export function certInfo(certPem: string | Buffer): CertInfo {
  const c = new NodeX509(certPem);
  return {
    cn: field(c.subject, 'CN'),
    ou: field(c.subject, 'OU'),
    o: field(c.subject, 'O'),
    serial: c.serialNumber.toLowerCase().replace(/^0+/, ''),
    notBefore: Date.parse(c.validFrom),
    notAfter: Date.parse(c.validTo),
    publicKeyDer: c.publicKey.export({ type: 'spki', format: 'der' }) as Buffer,
  };
}

/** Checks that `certPem` is signed by the CA, is currently valid, and (optionally) holds `keyPem`'s public key. */
export function verifyNodeCert(certPem: string, caPem: string, keyPem?: string, now = Date.now()): CertInfo {
  const c = new NodeX509(certPem);
  const ca = new NodeX509(caPem);
  if (!c.checkIssued(ca) || !c.verify(ca.publicKey)) throw new Error('the certificate is not signed by the cluster CA');
  const info = certInfo(certPem);
  if (now < info.notBefore) throw new Error(`the certificate is not valid before ${new Date(info.notBefore).toISOString()}`);
  if (now > info.notAfter) throw new Error(`the certificate expired at ${new Date(info.notAfter).toISOString()}`);
  if (keyPem) {
    const pub = createPublicKey(keyPem).export({ type: 'spki', format: 'der' }) as Buffer;
    if (!pub.equals(info.publicKeyDer)) throw new Error('the certificate does not hold this node\'s public key');
  }
  return info;
}

/** When to renew: a random point between 50 % and 80 % of the validity (spreads the load). */
export function renewAt(notBefore: number, notAfter: number): number {
  const life = notAfter - notBefore;
  return notBefore + Math.floor(life * (0.5 + randomInt(0, 300_001) / 1_000_000));
}
