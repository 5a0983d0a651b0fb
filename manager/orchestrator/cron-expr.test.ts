// The cron parser and tick arithmetic: the grammar Kubernetes' CronJob accepts (and what it
// refuses), known next ticks, the day-of-month/day-of-week rule, descriptors, time zones across
// both daylight-saving changes, and a brute-force comparison: for several schedules and zones,
// nextTick and lastTick agree with a minute-by-minute scan of the wall clock.
import t from 'tap';
import { CronError, checkTimeZone, instantOf, lastTick, nextTick, parseCron, wallOf } from './cron-expr.js';

const iso = (ms: number | undefined) => (ms === undefined ? 'never' : new Date(ms).toISOString());
const at = (s: string) => Date.parse(s);

t.test('next ticks of known schedules (UTC)', async (t) => {
  const cases: [string, string, string][] = [
    ['* * * * *', '2024-05-01T10:00:00Z', '2024-05-01T10:01:00.000Z'],
    ['* * * * *', '2024-05-01T10:00:30Z', '2024-05-01T10:01:00.000Z'],
    ['*/15 * * * *', '2024-05-01T10:07:00Z', '2024-05-01T10:15:00.000Z'],
    ['5/15 * * * *', '2024-05-01T10:21:00Z', '2024-05-01T10:35:00.000Z'],
    ['0 3 * * *', '2024-05-01T10:00:00Z', '2024-05-02T03:00:00.000Z'],
    ['30 2 1 * *', '2024-01-31T00:00:00Z', '2024-02-01T02:30:00.000Z'],
    ['0 0 31 * *', '2024-04-01T00:00:00Z', '2024-05-31T00:00:00.000Z'],
    ['0 0 29 2 *', '2024-03-01T00:00:00Z', '2028-02-29T00:00:00.000Z'],
    ['0 9 * * mon-fri', '2024-05-03T09:00:00Z', '2024-05-06T09:00:00.000Z'],
    ['0 0 1 jan,JUL *', '2024-02-01T00:00:00Z', '2024-07-01T00:00:00.000Z'],
    ['0 12 * * 0', '2024-05-01T00:00:00Z', '2024-05-05T12:00:00.000Z'],
    ['@hourly', '2024-05-01T10:00:00Z', '2024-05-01T11:00:00.000Z'],
    ['@daily', '2024-05-01T10:00:00Z', '2024-05-02T00:00:00.000Z'],
    ['@weekly', '2024-05-01T10:00:00Z', '2024-05-05T00:00:00.000Z'],
    ['@monthly', '2024-05-01T10:00:00Z', '2024-06-01T00:00:00.000Z'],
    ['@yearly', '2024-05-01T10:00:00Z', '2025-01-01T00:00:00.000Z'],
    ['0-10/5 8-9 * * *', '2024-05-01T08:06:00Z', '2024-05-01T08:10:00.000Z'],
    // Both day fields restricted: either matches (the 13th, or any Friday).
    ['0 0 13 * 5', '2024-05-01T00:00:00Z', '2024-05-03T00:00:00.000Z'],
    ['0 0 13 * 5', '2024-05-10T00:00:00Z', '2024-05-13T00:00:00.000Z'],
    // A starred day field leaves the other to decide alone (both must match: * always does).
    ['0 0 13 * *', '2024-05-01T00:00:00Z', '2024-05-13T00:00:00.000Z'],
    ['0 0 * * 5', '2024-05-01T00:00:00Z', '2024-05-03T00:00:00.000Z'],
    // `*/2` in the day-of-week is a restriction (robfig/cron): OR with the 13th.
    ['0 0 13 * */2', '2024-05-01T00:00:00Z', '2024-05-02T00:00:00.000Z'],
  ];
  for (const [expr, from, want] of cases) t.equal(iso(nextTick(parseCron(expr), at(from))), want, `${expr} after ${from}`);
});

t.test('refused expressions name the field and what to write', async (t) => {
  const bad: [string, RegExp][] = [
    ['', /schedule is empty/],
    ['* * * *', /has 4 field\(s\): write exactly five/],
    ['0 * * * * *', /has 6 field\(s\).*no seconds field/],
    ['60 * * * *', /minute field: 60 is outside 0-59/],
    ['* 24 * * *', /hour field: 24 is outside 0-23/],
    ['* * 0 * *', /day-of-month field: 0 is outside 1-31/],
    ['* * * 13 *', /month field: 13 is outside 1-12/],
    ['* * * * 7', /day-of-week field: 7 is outside 0-6 \(use 0 for Sunday\)/],
    ['* * * foo *', /month field: "foo" is not a number or a name/],
    ['5-1 * * * *', /the range 5-1 goes backwards/],
    ['*/0 * * * *', /step "0" must be a positive whole number/],
    ['1,,2 * * * *', /empty list item/],
    ['1-2-3 * * * *', /is not a value or a range/],
    ['*/2/3 * * * *', /more than one '\/'/],
    ['L * * * *', /"L" is not a number/],
    ['@every 5m', /@every is not a cron schedule/],
    ['@fortnightly', /unknown descriptor/],
    ['CRON_TZ=Europe/Berlin 0 * * * *', /time zone inside the schedule is not supported/],
    ['TZ=UTC 0 * * * *', /time zone inside the schedule is not supported/],
  ];
  for (const [expr, msg] of bad) t.throws(() => parseCron(expr), msg, `${JSON.stringify(expr)} refused`);
  t.ok((() => {
    try {
      parseCron('x * * * *');
    } catch (e) {
      return e instanceof CronError;
    }
    return false;
  })(), 'a CronError');
  t.throws(() => checkTimeZone('Mars/Olympus'), /time zone "Mars\/Olympus" is not known/);
  t.equal(checkTimeZone('Europe/Berlin'), 'Europe/Berlin');
});

t.test('a schedule that never fires', async (t) => {
  t.equal(nextTick(parseCron('0 0 30 2 *'), at('2024-01-01T00:00:00Z')), undefined, '30 February: never');
  t.equal(lastTick(parseCron('0 0 31 4 *'), at('2024-01-01T00:00:00Z')), undefined, '31 April: never');
});

t.test('time zones: wall clock, the skipped hour and the repeated hour (Europe/Berlin)', async (t) => {
  const tz = 'Europe/Berlin';
  t.equal(iso(nextTick(parseCron('0 3 * * *'), at('2024-05-01T12:00:00Z'), tz)), '2024-05-02T01:00:00.000Z', '03:00 CEST is 01:00 UTC');
  t.equal(iso(nextTick(parseCron('0 3 * * *'), at('2024-01-01T12:00:00Z'), tz)), '2024-01-02T02:00:00.000Z', '03:00 CET is 02:00 UTC');
  // 2024-03-31: 02:00 -> 03:00 local. 02:30 does not exist that day: no tick.
  t.equal(iso(nextTick(parseCron('30 2 * * *'), at('2024-03-30T12:00:00Z'), tz)), '2024-04-01T00:30:00.000Z', 'the skipped 02:30 does not fire; the next day does');
  t.equal(instantOf(Date.UTC(2024, 2, 31, 2, 30), tz), undefined, '02:30 on 31 March is in the gap');
  // 2024-10-27: 03:00 -> 02:00 local. 02:30 happens twice: it fires once, the first time.
  const first = nextTick(parseCron('30 2 * * *'), at('2024-10-26T12:00:00Z'), tz);
  t.equal(iso(first), '2024-10-27T00:30:00.000Z', 'the repeated 02:30 fires at its first occurrence (CEST)');
  t.equal(iso(nextTick(parseCron('30 2 * * *'), first!, tz)), '2024-10-28T01:30:00.000Z', 'and not at its second (CET): next is the following day');
  t.equal(iso(lastTick(parseCron('30 2 * * *'), at('2024-10-27T01:45:00Z'), tz)), '2024-10-27T00:30:00.000Z', 'seen from the second 02:45, the last tick is the first 02:30');
  // 00:45Z reads 02:45 CEST; at 01:00Z the clock reads 02:00 again (CET): those wall times have
  // happened already, so the next half hour to fire is 03:00 CET (02:00Z).
  t.equal(iso(nextTick(parseCron('*/30 * * * *'), at('2024-10-27T00:45:00Z'), tz)), '2024-10-27T02:00:00.000Z', 'every half hour: the repeated hour does not fire again');
  t.equal(wallOf(at('2024-10-27T00:30:00Z'), tz), wallOf(at('2024-10-27T01:30:00Z'), tz), 'both instants read 02:30');
});

/** Minute by minute: a tick is a minute whose wall time matches and is that wall time's first occurrence. */
function scan(expr: string, tz: string, from: number, to: number): number[] {
  const s = parseCron(expr);
  const out: number[] = [];
  const seen = new Set<number>();
  for (let m = Math.floor(from / 60_000) * 60_000; m <= to; m += 60_000) {
    const w = wallOf(m, tz);
    const d = new Date(w);
    const dom = s.days[d.getUTCDate()]!;
    const dow = s.weekdays[d.getUTCDay()]!;
    const day = s.daysStar || s.weekdaysStar ? dom && dow : dom || dow;
    const first = !seen.has(w);
    seen.add(w);
    if (first && day && s.months[d.getUTCMonth() + 1] && s.hours[d.getUTCHours()] && s.minutes[d.getUTCMinutes()] && m >= from) out.push(m);
  }
  return out;
}

t.test('nextTick and lastTick agree with a minute-by-minute scan', async (t) => {
  const exprs = ['*/7 * * * *', '30 2 * * *', '0 */5 * * 1-5', '15 1,2,3 * * *', '0 0 13 * 5', '45 23 28-31 * *'];
  const windows: [string, number, number][] = [
    ['Europe/Berlin', at('2024-03-29T00:00:00Z'), at('2024-04-02T00:00:00Z')],
    ['Europe/Berlin', at('2024-10-25T00:00:00Z'), at('2024-10-29T00:00:00Z')],
    ['America/New_York', at('2024-11-02T00:00:00Z'), at('2024-11-05T00:00:00Z')],
    ['UTC', at('2024-02-27T00:00:00Z'), at('2024-03-03T00:00:00Z')],
    ['Asia/Kolkata', at('2024-05-30T00:00:00Z'), at('2024-06-02T00:00:00Z')],
  ];
  let checked = 0;
  for (const [tz, from, to] of windows) {
    for (const expr of exprs) {
      const want = scan(expr, tz, from, to);
      const s = parseCron(expr);
      const got: number[] = [];
      for (let x = nextTick(s, from - 1, tz); x !== undefined && x <= to; x = nextTick(s, x, tz)) got.push(x);
      t.same(got.map(iso), want.map(iso), `${expr} in ${tz}: ${want.length} ticks`);
      // Going back from each tick (and from just before the next) finds that tick.
      for (let i = 0; i < got.length; i++) {
        const before = i + 1 < got.length ? got[i + 1]! - 1 : to;
        if (lastTick(s, before, tz) !== got[i]) t.fail(`${expr} in ${tz}: lastTick(${iso(before)}) = ${iso(lastTick(s, before, tz))}, want ${iso(got[i])}`);
        checked++;
      }
    }
  }
  t.ok(checked > 500, `lastTick checked against ${checked} ticks`);
});
