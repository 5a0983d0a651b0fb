// IPv4 addresses and prefixes as numbers: parsing with clear errors, containment, the n-th host.
export interface Cidr { base: number; bits: number }

export function parseIp(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) throw new Error(`"${s}" is not an IPv4 address (a.b.c.d)`);
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) throw new Error(`"${s}" is not an IPv4 address (each part 0-255)`);
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

export function fmtIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function maskOf(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

/** Parses "a.b.c.d/n"; the host bits must be zero. */
export function parseCidr(s: string): Cidr {
  const i = s.indexOf('/');
  if (i < 0) throw new Error(`"${s}" is not a CIDR (a.b.c.d/n)`);
  const base = parseIp(s.slice(0, i));
  const bitsS = s.slice(i + 1);
  if (!/^\d{1,2}$/.test(bitsS) || Number(bitsS) > 32) throw new Error(`"${s}": prefix length must be 0-32`);
  const bits = Number(bitsS);
  if (((base & ~maskOf(bits)) >>> 0) !== 0) throw new Error(`"${s}" has host bits set; did you mean ${fmtIp((base & maskOf(bits)) >>> 0)}/${bits}?`);
  return { base, bits };
}

export function fmtCidr(c: Cidr): string {
  return `${fmtIp(c.base)}/${c.bits}`;
}

export function size(c: Cidr): number {
  return 2 ** (32 - c.bits);
}

export function contains(c: Cidr, ip: number): boolean {
  return ((ip & maskOf(c.bits)) >>> 0) === c.base;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const bits = Math.min(a.bits, b.bits);
  return ((a.base & maskOf(bits)) >>> 0) === ((b.base & maskOf(bits)) >>> 0);
}

/** The address `n` places after the subnet's base (n=1: the first host). */
export function nth(c: Cidr, n: number): number {
  return (c.base + n) >>> 0;
}
