// A small seeded PRNG (sfc32). The protocol core takes randomness only from an
// injected Rng so that a simulator run replays bit-for-bit from its seed.

export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
}

export function seededRng(seed: number): Rng {
  let a = 0x9e3779b9 ^ seed;
  let b = 0x243f6a88 ^ Math.imul(seed, 0x85ebca6b);
  let c = 0xb7e15162 ^ Math.imul(seed, 0xc2b2ae35);
  let d = 1;
  const step = (): number => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    const t = (a + b + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  // Mix the state away from the seed's low entropy.
  for (let i = 0; i < 15; i++) step();
  return {
    next: step,
    int: (n: number) => Math.floor(step() * n),
  };
}

/** Fisher-Yates in place. */
export function shuffle<T>(rng: Rng, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = items[i] as T;
    items[i] = items[j] as T;
    items[j] = tmp;
  }
  return items;
}

/** Up to k distinct items chosen uniformly from those accepted by `pick`. */
export function kRandom<T>(rng: Rng, items: readonly T[], k: number, pick: (item: T) => boolean): T[] {
  const out: T[] = [];
  // Bounded random probing (like memberlist's kRandomNodes): cheap for large
  // lists, then a linear fallback so small lists still yield every candidate.
  const n = items.length;
  for (let i = 0; i < 3 * n && out.length < k; i++) {
    const item = items[rng.int(n)] as T;
    if (!pick(item) || out.includes(item)) continue;
    out.push(item);
  }
  if (out.length < k) {
    const rest = items.filter((it) => pick(it) && !out.includes(it));
    shuffle(rng, rest);
    for (const it of rest) {
      if (out.length >= k) break;
      out.push(it);
    }
  }
  return out;
}
