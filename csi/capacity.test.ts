// Capacity ranges to image sizes (the CSI rules: honour required and limit; 0 means unset;
// never shrink), and sizes people write. Pure functions, no driver.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { ALIGN, DEFAULT_VOLUME_BYTES, expandTo, fits, GiB, MiB, MIN_VOLUME_BYTES, sizeFor } from './capacity.js';
import { CsiError } from './errors.js';
import { parseSize } from './size.js';

const code = (f: () => unknown) => { try { f(); return 'OK'; } catch (e) { return e instanceof CsiError ? grpc.status[e.code] : String(e); } };

t.test('sizeFor', async (t) => {
  const cases: [string, { required_bytes?: number; limit_bytes?: number } | null, number | string][] = [
    ['no range: the default', null, DEFAULT_VOLUME_BYTES],
    ['exact 1 GiB', { required_bytes: GiB, limit_bytes: GiB }, GiB],
    ['required only, rounded up to a MiB', { required_bytes: 100 * MiB + 1 }, 101 * MiB],
    ['required below the minimum: the minimum', { required_bytes: 1 }, MIN_VOLUME_BYTES],
    ['limit only, above the default: the default', { limit_bytes: 5 * GiB }, DEFAULT_VOLUME_BYTES],
    ['limit only, below the default: the limit (aligned down)', { limit_bytes: 100 * MiB + 123 }, Math.floor((100 * MiB + 123) / ALIGN) * ALIGN],
    ['rounding up would pass the limit: aligned limit', { required_bytes: 100 * MiB + 1, limit_bytes: 100 * MiB + 8192 }, 100 * MiB + 8192],
    ['limit below the minimum', { limit_bytes: MiB }, 'OUT_OF_RANGE'],
    ['no aligned size fits', { required_bytes: 20 * MiB + 1, limit_bytes: 20 * MiB + 100 }, 'OUT_OF_RANGE'],
    ['required above limit', { required_bytes: 2 * GiB, limit_bytes: GiB }, 'INVALID_ARGUMENT'],
    ['negative required', { required_bytes: -1 }, 'INVALID_ARGUMENT'],
    ['negative limit', { limit_bytes: -5 }, 'INVALID_ARGUMENT'],
  ];
  for (const [name, r, want] of cases) {
    if (typeof want === 'number') t.equal(sizeFor(r), want, name);
    else t.equal(code(() => sizeFor(r)), want, name);
  }
});

t.test('fits (idempotent CreateVolume)', async (t) => {
  t.ok(fits(GiB, { required_bytes: GiB, limit_bytes: GiB }), 'same exact size');
  t.ok(fits(GiB, { required_bytes: 512 * MiB }), 'bigger than required, no limit');
  t.ok(fits(GiB, null), 'no range');
  t.notOk(fits(GiB, { required_bytes: 2 * GiB, limit_bytes: 2 * GiB }), 'a different exact size');
  t.notOk(fits(GiB, { limit_bytes: 512 * MiB }), 'above the limit');
});

t.test('expandTo', async (t) => {
  t.equal(expandTo(GiB, { required_bytes: 2 * GiB }), 2 * GiB, 'grows to required');
  t.equal(expandTo(GiB, { required_bytes: GiB / 2 }), GiB, 'never shrinks: already big enough');
  t.equal(expandTo(GiB, { required_bytes: GiB + 1, limit_bytes: 2 * GiB }), GiB + MiB, 'rounded up to a MiB');
  t.equal(code(() => expandTo(GiB, { limit_bytes: GiB / 2 })), 'OUT_OF_RANGE', 'limit below the current size');
  t.equal(code(() => expandTo(GiB, {})), 'INVALID_ARGUMENT', 'no range at all');
});

t.test('parseSize', async (t) => {
  t.equal(parseSize('1073741824'), GiB);
  t.equal(parseSize('1G'), GiB);
  t.equal(parseSize('1GiB'), GiB);
  t.equal(parseSize('512m'), 512 * MiB);
  t.equal(parseSize('1.5G'), 1.5 * GiB);
  for (const bad of ['', 'G', '-1G', '1X', '0']) t.throws(() => parseSize(bad), /size/, `refuses ${JSON.stringify(bad)}`);
});
