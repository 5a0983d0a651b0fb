// Join tokens: SHL-1-<digest>-<secret>. The digest pins the CA bundle (SHA-256 of its exact bytes,
// base 36, 50 chars), the secret authenticates the joiner (16 random bytes, base 36, 25 chars).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const TOKEN_PREFIX = 'SHL-1';
const DIGEST_LEN = 50;
const SECRET_LEN = 25;

function base36(b: Buffer, width: number): string {
  return BigInt('0x' + b.toString('hex')).toString(36).padStart(width, '0');
}

/** The digest of a CA bundle as tokens carry it. */
export function caDigest(bundle: string | Buffer): string {
  return base36(createHash('sha256').update(bundle).digest(), DIGEST_LEN);
}

export function newSecret(): string {
  return base36(randomBytes(16), SECRET_LEN);
}

export function makeToken(bundle: string | Buffer, secret: string): string {
  return `${TOKEN_PREFIX}-${caDigest(bundle)}-${secret}`;
}

export interface ParsedToken {
  digest: string;
  secret: string;
}

export class BadTokenError extends Error {
  override name = 'BadTokenError';
}

export function parseToken(token: string): ParsedToken {
  const parts = token.trim().split('-');
  if (parts.length !== 4 || `${parts[0]}-${parts[1]}` !== TOKEN_PREFIX) {
    throw new BadTokenError(`the join token is malformed: expected ${TOKEN_PREFIX}-<digest>-<secret>; get one with "shoal join-token worker|manager" on a manager`);
  }
  const [, , digest, secret] = parts as [string, string, string, string];
  checkPart(digest, DIGEST_LEN, 'CA digest');
  checkPart(secret, SECRET_LEN, 'secret');
  return { digest, secret };
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A token part: exactly `len` characters of 0-9 and a-z; the error names what is wrong. */
function checkPart(v: string, len: number, what: string): void {
  const bad = /[^0-9a-z]/.exec(v);
  if (bad) throw new BadTokenError(`the join token's ${what} holds ${JSON.stringify(bad[0])} at position ${bad.index + 1}: only digits and lower-case letters (base 36) belong there; copy the token again exactly as "shoal join-token" prints it`);
  if (v.length !== len) throw new BadTokenError(`the join token's ${what} must be ${len} characters, got ${v.length}: the token was cut or padded; copy it again exactly as "shoal join-token" prints it`);
}
