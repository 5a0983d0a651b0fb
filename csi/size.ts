// Sizes written by people: 1073741824, 512M, 1G, 1.5GiB (binary units: K = 1024).
const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(s.trim());
  if (!m) throw new Error(`${JSON.stringify(s)} is not a size (examples: 1073741824, 512M, 1G, 2GiB)`);
  const n = Math.round(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${JSON.stringify(s)} is not a positive size`);
  return n;
}
