// Five-field cron expressions as Kubernetes' CronJob reads them (robfig/cron v3's standard
// parser): `minute hour day-of-month month day-of-week`, each field `*`, `?`, a value, a range
// `a-b`, any of these with `/step` (`5/15` means `5-max/15`), or a comma list of them; month and
// weekday names (JAN..DEC, SUN..SAT); weekdays 0-6 with 0 = Sunday; the descriptors @yearly,
// @annually, @monthly, @weekly, @daily, @midnight and @hourly. When both day fields are
// restricted a day matches if either does (Vixie cron's rule); a field is unrestricted when it is
// `*` or `?` (with no step above 1), as robfig/cron decides it.
//
// Times are computed on the wall clock of an IANA time zone (Node's ICU data): a wall time that
// does not exist (the hour skipped when clocks go forward) does not fire, and one that happens
// twice (clocks going back) fires once, at its first occurrence.
//
// Written here rather than taken from npm: the popular parsers accept a superset (a seconds
// field, L/W/#, `?` meaning "now") that Kubernetes refuses, and the scheduler needs exactly two
// pure functions (the next tick after a time, the latest tick at or before it) that every
// manager computes alike.

export class CronError extends Error {}

export interface CronSchedule {
  /** The expression as written. */
  source: string;
  minutes: boolean[];
  hours: boolean[];
  /** Index 1..31. */
  days: boolean[];
  /** Index 1..12. */
  months: boolean[];
  /** Index 0..6, Sunday = 0. */
  weekdays: boolean[];
  /** The day-of-month / day-of-week field was `*` or `?`: the other one decides alone. */
  daysStar: boolean;
  weekdaysStar: boolean;
}

interface Field {
  name: string;
  min: number;
  max: number;
  names?: Record<string, number>;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const FIELDS: Field[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: Object.fromEntries(MONTHS.map((m, i) => [m, i + 1])) },
  { name: 'day-of-week', min: 0, max: 6, names: Object.fromEntries(DAYS.map((d, i) => [d, i])) },
];

const DESCRIPTORS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

function value(s: string, f: Field, expr: string): number {
  const named = f.names?.[s.toLowerCase()];
  if (named !== undefined) return named;
  if (!/^\d+$/.test(s)) {
    const hint = f.names ? ` or a name (${Object.keys(f.names).map((n) => n.toUpperCase()).join(', ')})` : '';
    throw new CronError(`schedule ${JSON.stringify(expr)}: ${f.name} field: ${JSON.stringify(s)} is not a number${hint}`);
  }
  const n = Number(s);
  if (n < f.min || n > f.max) {
    const sunday = f.name === 'day-of-week' && n === 7 ? ' (use 0 for Sunday)' : '';
    throw new CronError(`schedule ${JSON.stringify(expr)}: ${f.name} field: ${n} is outside ${f.min}-${f.max}${sunday}`);
  }
  return n;
}

/** One field: its allowed values, and whether it was written unrestricted (`*` or `?`). */
function field(text: string, f: Field, expr: string): { set: boolean[]; star: boolean } {
  const set = new Array<boolean>(f.max + 1).fill(false);
  let star = false;
  for (const part of text.split(',')) {
    if (part === '') throw new CronError(`schedule ${JSON.stringify(expr)}: ${f.name} field ${JSON.stringify(text)} has an empty list item`);
    const slash = part.split('/');
    if (slash.length > 2) throw new CronError(`schedule ${JSON.stringify(expr)}: ${f.name} field: ${JSON.stringify(part)} has more than one '/'`);
    const [range, stepText] = slash as [string, string | undefined];
    let lo: number;
    let hi: number;
    let partStar = false;
    if (range === '*' || range === '?') {
      lo = f.min;
      hi = f.max;
      partStar = true;
    } else {
      const dash = range.split('-');
      if (dash.length > 2 || dash.some((x) => x === '')) throw new CronError(`schedule ${JSON.stringify(expr)}: ${f.name} field: ${JSON.stringify(range)} is not a value or a range a-b`);
      lo = value(dash[0]!, f, expr);
      hi = dash.length === 2 ? value(dash[1]!, f, expr) : lo;
      // `N/step` means N through the maximum, every step.
      if (dash.length === 1 && stepText !== undefined) hi = f.max;
      if (lo > hi) throw new CronError(`schedule ${JSON.stringify(expr)}: ${f.name} field: the range ${range} goes backwards (${lo} > ${hi})`);
    }
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) < 1) throw new CronError(`schedule ${JSON.stringify(expr)}: ${f.name} field: step ${JSON.stringify(stepText)} must be a positive whole number`);
      step = Number(stepText);
    }
    if (partStar && step === 1) star = true;
    for (let i = lo; i <= hi; i += step) set[i] = true;
  }
  return { set, star };
}

/** Parses a five-field expression or a descriptor; throws CronError naming the field at fault. */
export function parseCron(expr: string): CronSchedule {
  if (typeof expr !== 'string' || expr.trim() === '') throw new CronError('schedule is empty: write five fields, minute hour day-of-month month day-of-week (e.g. "*/5 * * * *"), or @hourly, @daily, ...');
  const src = expr.trim();
  if (/^(CRON_)?TZ=/.test(src)) throw new CronError(`schedule ${JSON.stringify(expr)}: a time zone inside the schedule is not supported (nor by Kubernetes): give it as the schedule's time zone instead`);
  let text = src;
  if (text.startsWith('@')) {
    if (text.startsWith('@every')) throw new CronError(`schedule ${JSON.stringify(expr)}: @every is not a cron schedule: write five fields (e.g. "*/10 * * * *")`);
    const d = DESCRIPTORS[text.toLowerCase()];
    if (!d) throw new CronError(`schedule ${JSON.stringify(expr)}: unknown descriptor; use one of ${Object.keys(DESCRIPTORS).join(', ')}`);
    text = d;
  }
  const parts = text.split(/\s+/);
  if (parts.length !== 5) throw new CronError(`schedule ${JSON.stringify(expr)} has ${parts.length} field(s): write exactly five, minute hour day-of-month month day-of-week (no seconds field)`);
  const [mi, h, dom, mo, dow] = parts.map((p, i) => field(p, FIELDS[i]!, src));
  const s: CronSchedule = { source: src, minutes: mi!.set, hours: h!.set, days: dom!.set, months: mo!.set, weekdays: dow!.set, daysStar: dom!.star, weekdaysStar: dow!.star };
  return s;
}

// ---- time zones ----

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formatters.set(tz, f);
  }
  return f;
}

/** Throws CronError unless `tz` is an IANA time zone this Node knows. */
export function checkTimeZone(tz: string): string {
  try {
    formatter(tz);
  } catch {
    throw new CronError(`time zone ${JSON.stringify(tz)} is not known: use an IANA name such as UTC, Europe/Berlin or America/New_York`);
  }
  return tz;
}

const MINUTE = 60_000;
const DAY = 86_400_000;

/** The wall-clock time of an instant in `tz`, as a "naive" UTC millisecond count (seconds dropped). */
export function wallOf(ms: number, tz: string): number {
  const floor = (x: number) => Math.floor(x / MINUTE) * MINUTE;
  if (tz === 'UTC') return floor(ms);
  const p: Record<string, number> = {};
  for (const part of formatter(tz).formatToParts(new Date(ms))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!);
}

/** The earliest instant whose wall clock in `tz` reads `wall`; undefined in a gap (clocks going forward). */
export function instantOf(wall: number, tz: string): number | undefined {
  if (tz === 'UTC') return wall;
  let best: number | undefined;
  // The offsets in force a day either side cover any one transition around this wall time.
  for (const probe of [wall - DAY, wall, wall + DAY]) {
    const offset = wallOf(probe, tz) - Math.floor(probe / MINUTE) * MINUTE;
    const cand = wall - offset;
    if (wallOf(cand, tz) === wall && (best === undefined || cand < best)) best = cand;
  }
  return best;
}

function dayMatches(s: CronSchedule, wall: Date): boolean {
  const dom = s.days[wall.getUTCDate()]!;
  const dow = s.weekdays[wall.getUTCDay()]!;
  return s.daysStar || s.weekdaysStar ? dom && dow : dom || dow;
}

/** How far the search looks: far enough for 29 February under any weekday restriction. */
const HORIZON = 30 * 366 * DAY;

/** The first tick strictly after `afterMs`, or undefined if the schedule never fires again. */
export function nextTick(s: CronSchedule, afterMs: number, tz = 'UTC'): number | undefined {
  let w = wallOf(afterMs, tz) + MINUTE;
  const end = w + HORIZON;
  while (w < end) {
    const d = new Date(w);
    const y = d.getUTCFullYear();
    const mo = d.getUTCMonth();
    const day = d.getUTCDate();
    const h = d.getUTCHours();
    if (!s.months[mo + 1]) w = Date.UTC(y, mo + 1, 1);
    else if (!dayMatches(s, d)) w = Date.UTC(y, mo, day + 1);
    else if (!s.hours[h]) w = Date.UTC(y, mo, day, h + 1);
    else if (!s.minutes[d.getUTCMinutes()]) w += MINUTE;
    else {
      const at = instantOf(w, tz);
      if (at !== undefined && at > afterMs) return at;
      w += MINUTE;
    }
  }
  return undefined;
}

/** The latest tick at or before `atMs`, or undefined if there was none within the horizon. */
export function lastTick(s: CronSchedule, atMs: number, tz = 'UTC'): number | undefined {
  let w = wallOf(atMs, tz);
  const end = w - HORIZON;
  while (w > end) {
    const d = new Date(w);
    const y = d.getUTCFullYear();
    const mo = d.getUTCMonth();
    const day = d.getUTCDate();
    const h = d.getUTCHours();
    if (!s.months[mo + 1]) w = Date.UTC(y, mo, 1) - MINUTE;
    else if (!dayMatches(s, d)) w = Date.UTC(y, mo, day) - MINUTE;
    else if (!s.hours[h]) w = Date.UTC(y, mo, day, h) - MINUTE;
    else if (!s.minutes[d.getUTCMinutes()]) w -= MINUTE;
    else {
      const at = instantOf(w, tz);
      if (at !== undefined && at <= atMs) return at;
      w -= MINUTE;
    }
  }
  return undefined;
}
