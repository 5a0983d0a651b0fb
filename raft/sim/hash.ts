// Cheap content hashes for the invariant checker and the trace: 53-bit numbers built from two
// independent 32-bit FNV-1a style lanes, so comparisons are plain number equality and a collision
// (which could only hide a violation, never invent one) is vanishingly unlikely.

const HI = 2 ** 21;

export function hashBytes(b: Uint8Array, seed = 0): number {
  let h1 = (0x811c9dc5 ^ seed) >>> 0;
  let h2 = (0x01000193 ^ Math.imul(seed, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < b.length; i++) {
    h1 = Math.imul(h1 ^ b[i], 0x01000193);
    h2 = Math.imul(h2 ^ b[i], 0x5bd1e995) ^ (h2 >>> 15);
  }
  return (h1 >>> 0) * HI + ((h2 >>> 0) & (HI - 1));
}

/** Combines an accumulated hash with more numbers (order-sensitive). */
export function mix(acc: number, ...xs: number[]): number {
  let h1 = (acc / HI) >>> 0;
  let h2 = acc % HI >>> 0;
  for (const x of xs) {
    const lo = x >>> 0;
    const hi = Math.floor(x / 4294967296) >>> 0;
    h1 = Math.imul(h1 ^ lo, 0x01000193) ^ Math.imul(hi, 0x85ebca6b);
    h1 ^= h1 >>> 13;
    h2 = Math.imul(h2 ^ lo ^ (h1 >>> 7), 0x5bd1e995) ^ Math.imul(hi + 1, 0xc2b2ae35);
    h2 ^= h2 >>> 15;
  }
  return (h1 >>> 0) * HI + ((h2 >>> 0) & (HI - 1));
}

const enc = new TextEncoder();
export function hashString(s: string): number {
  return hashBytes(enc.encode(s));
}
