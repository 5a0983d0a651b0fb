// Packet and stream protection. Layout of a protected payload:
//   [label header, if a cluster label is set] [sealed body, if a keyring is set]
// label header = 0xF4, length (1 byte), label bytes
// sealed body  = version (1) | nonce (12) | ciphertext | GCM tag (16)
// The label is also GCM additional data, so a packet from another cluster
// fails authentication even if it forges the header. Anything that fails is
// dropped by the caller and counted by reason.

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Keyring } from './keyring.js';

export const ENCRYPTION_VERSION = 1;
export const NONCE = 12;
export const TAG = 16;
export const ENCRYPTION_OVERHEAD = 1 + NONCE + TAG;
export const LABEL_MAGIC = 0xf4;

export type DropReason = 'label' | 'decrypt' | 'short';

export class SecurityError extends Error {
  constructor(readonly reason: DropReason, message: string) {
    super(message);
  }
}

export interface Protection {
  keyring?: Keyring | undefined;
  label: string;
}

export function overhead(p: Protection): number {
  return (p.label ? 2 + Buffer.byteLength(p.label) : 0) + (p.keyring ? ENCRYPTION_OVERHEAD : 0);
}

/** version | nonce | ciphertext | tag. `version` tells apart what is sealed (stream-frame.ts). */
export function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, version = ENCRYPTION_VERSION): Buffer {
  const nonce = randomBytes(NONCE);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad);
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([Buffer.from([version]), nonce, body, c.getAuthTag()]);
}

/** Try every key; throws SecurityError('decrypt') if none authenticates. */
export function open(keyring: Keyring, data: Uint8Array, aad: Uint8Array, version = ENCRYPTION_VERSION): Buffer {
  if (data.length < ENCRYPTION_OVERHEAD) throw new SecurityError('short', 'encrypted payload shorter than its header');
  if (data[0] !== version) throw new SecurityError('decrypt', `unknown encryption version ${data[0]} (expected ${version})`);
  const nonce = data.subarray(1, 1 + NONCE);
  const tag = data.subarray(data.length - TAG);
  const body = data.subarray(1 + NONCE, data.length - TAG);
  for (const key of keyring.getKeys()) {
    try {
      const d = createDecipheriv('aes-256-gcm', key, nonce);
      d.setAAD(aad);
      d.setAuthTag(tag);
      return Buffer.concat([d.update(body), d.final()]);
    } catch {
      // wrong key: try the next one
    }
  }
  throw new SecurityError('decrypt', 'no installed key authenticates this payload');
}

export function protect(p: Protection, plaintext: Uint8Array): Buffer {
  const label = Buffer.from(p.label);
  const body = p.keyring ? seal(p.keyring.primary(), plaintext, label) : Buffer.from(plaintext);
  if (!p.label) return body;
  return Buffer.concat([Buffer.from([LABEL_MAGIC, label.length]), label, body]);
}

export function unprotect(p: Protection, data: Uint8Array): Buffer {
  let body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const hasHeader = body.length >= 2 && body[0] === LABEL_MAGIC;
  if (p.label) {
    if (!hasHeader) throw new SecurityError('label', `payload has no cluster label; expected "${p.label}"`);
    const len = body[1] as number;
    if (body.length < 2 + len) throw new SecurityError('short', 'truncated label header');
    const got = body.subarray(2, 2 + len).toString();
    if (got !== p.label) throw new SecurityError('label', `cluster label "${got}" is not ours ("${p.label}")`);
    body = body.subarray(2 + len);
  } else if (hasHeader) {
    throw new SecurityError('label', 'payload carries a cluster label but this member has none');
  }
  return p.keyring ? open(p.keyring, body, Buffer.from(p.label)) : body;
}
