// Seals join tokens under a key derived from the CA key, so any manager can show them again while
// the store keeps them no more exposed than the CA key itself.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

function key(caKeyPem: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(caKeyPem), Buffer.alloc(0), 'shoal join tokens', 32));
}

export function seal(caKeyPem: string, text: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key(caKeyPem), iv);
  const body = Buffer.concat([c.update(text, 'utf8'), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64');
}

export function unseal(caKeyPem: string, sealed: string): string {
  const b = Buffer.from(sealed, 'base64');
  const d = createDecipheriv('aes-256-gcm', key(caKeyPem), b.subarray(0, 12));
  d.setAuthTag(b.subarray(12, 28));
  return Buffer.concat([d.update(b.subarray(28)), d.final()]).toString('utf8');
}
