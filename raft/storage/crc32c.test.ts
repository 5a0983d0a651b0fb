import t from 'tap';
import { crc32c, crc32cBitwise } from './crc32c.js';

t.test('known CRC-32C vectors (RFC 3720 B.4 and the "check" value)', async (t) => {
  t.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  t.equal(crc32c(new Uint8Array(0)), 0);
  t.equal(crc32c(new Uint8Array(32)), 0x8a9136aa, '32 zero bytes');
  t.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43, '32 0xFF bytes');
  t.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e, '32 ascending bytes');
  t.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c, '32 descending bytes');
  t.equal(crc32c(Buffer.from('a')), 0xc1d04330);
});

t.test('slice-by-8 agrees with the bit-at-a-time reference on every length and alignment', async (t) => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const big = Uint8Array.from({ length: 300 }, rnd);
  let mismatches = 0;
  for (let start = 0; start < 9; start++) {
    for (let len = 0; len < 140; len++) {
      const piece = big.subarray(start, start + len);
      if (crc32c(big, 0, start, start + len) !== crc32cBitwise(piece)) mismatches++;
      if (crc32c(piece) !== crc32cBitwise(piece)) mismatches++;
    }
  }
  t.equal(mismatches, 0);
});

t.test('a checksum continues across pieces', async (t) => {
  const all = Buffer.from('the quick brown fox jumps over the lazy dog, twice over');
  for (const cut of [0, 1, 7, 8, 9, 30, all.length]) {
    t.equal(crc32c(all.subarray(cut), crc32c(all.subarray(0, cut))), crc32c(all), `cut at ${cut}`);
  }
});

t.test('every single-bit flip changes the checksum', async (t) => {
  const data = Buffer.from(entryish());
  const good = crc32c(data);
  let undetected = 0;
  for (let i = 0; i < data.length * 8; i++) {
    data[i >> 3] ^= 1 << (i & 7);
    if (crc32c(data) === good) undetected++;
    data[i >> 3] ^= 1 << (i & 7);
  }
  t.equal(undetected, 0);
});

function entryish(): Uint8Array {
  return Uint8Array.from({ length: 100 }, (_, i) => (i * 37) & 0xff);
}
