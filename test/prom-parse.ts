// A parser for Prometheus' text exposition format (version 0.0.4), strict enough to catch what a
// real scraper would reject: every sample must belong to a family declared by # TYPE before it,
// label values are unescaped, values are Go floats (NaN, +Inf, -Inf), a family appears once, and
// histograms must be well formed (cumulative buckets ending in +Inf that equals _count).
// Used by the tests that scrape shoald's /metrics.

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The sample's own name (for a histogram: NAME_bucket, NAME_sum or NAME_count). */
  name: string;
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}

export interface Family {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

export class PromParseError extends Error {
  constructor(line: number, msg: string) {
    super(`metrics text line ${line}: ${msg}`);
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function unescape(s: string, line: number, quotes: boolean): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = s[++i];
    if (n === '\\') out += '\\';
    else if (n === 'n') out += '\n';
    else if (n === '"' && quotes) out += '"';
    else throw new PromParseError(line, `bad escape \\${n ?? ''}`);
  }
  return out;
}

function parseFloatGo(s: string, line: number): number {
  // Go's strconv.ParseFloat, which Prometheus uses, takes NaN and Inf in any case (prom-client
  // writes "Nan" for an event-loop lag not yet measured).
  const w = s.toLowerCase();
  if (w === 'nan') return NaN;
  if (w === '+inf' || w === 'inf' || w === '+infinity' || w === 'infinity') return Infinity;
  if (w === '-inf' || w === '-infinity') return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new PromParseError(line, `${JSON.stringify(s)} is not a number`);
  return Number(s);
}

/** The family a sample name belongs to, given the declared families. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
  }
  return undefined;
}

/** Reads a sample line: NAME[{LABELS}] VALUE [TIMESTAMP]. */
function parseSample(text: string, line: number): Sample {
  let i = 0;
  while (i < text.length && /[a-zA-Z0-9_:]/.test(text[i]!)) i++;
  const name = text.slice(0, i);
  if (!NAME.test(name)) throw new PromParseError(line, `bad metric name in ${JSON.stringify(text)}`);
  const labels: Record<string, string> = {};
  if (text[i] === '{') {
    i++;
    for (;;) {
      while (text[i] === ' ') i++;
      if (text[i] === '}') {
        i++;
        break;
      }
      const start = i;
      while (i < text.length && /[a-zA-Z0-9_]/.test(text[i]!)) i++;
      const label = text.slice(start, i);
      if (!LABEL.test(label)) throw new PromParseError(line, `bad label name at column ${start + 1}`);
      if (text[i] !== '=' || text[i + 1] !== '"') throw new PromParseError(line, `label ${label}: expected ="value"`);
      i += 2;
      let raw = '';
      for (;;) {
        if (i >= text.length) throw new PromParseError(line, `label ${label}: unterminated value`);
        const c = text[i]!;
        if (c === '\\') {
          raw += c + (text[i + 1] ?? '');
          i += 2;
          continue;
        }
        if (c === '"') break;
        raw += c;
        i++;
      }
      i++;
      if (label in labels) throw new PromParseError(line, `label ${label} repeated`);
      labels[label] = unescape(raw, line, true);
      while (text[i] === ' ') i++;
      if (text[i] === ',') i++;
      else if (text[i] !== '}') throw new PromParseError(line, `expected , or } after label ${label}`);
    }
  }
  const rest = text.slice(i).trim().split(/[ \t]+/);
  if (text[i] !== ' ' && text[i] !== '\t') throw new PromParseError(line, `expected a space before the value`);
  if (rest.length < 1 || rest.length > 2 || rest[0] === '') throw new PromParseError(line, `expected VALUE [TIMESTAMP], got ${JSON.stringify(text.slice(i).trim())}`);
  const value = parseFloatGo(rest[0]!, line);
  const s: Sample = { name, labels, value };
  if (rest[1] !== undefined) {
    if (!/^-?\d+$/.test(rest[1])) throw new PromParseError(line, `bad timestamp ${rest[1]}`);
    s.timestampMs = Number(rest[1]);
  }
  return s;
}

function checkHistogram(f: Family): void {
  // Group by the labels other than `le`.
  const series = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let e = series.get(key);
    if (!e) series.set(key, (e = { buckets: [] }));
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`histogram ${f.name}: a bucket without le`);
      e.buckets.push([parseFloatGo(le, 0), s.value]);
    } else if (s.name === `${f.name}_count`) e.count = s.value;
    else if (s.name === `${f.name}_sum`) e.sum = s.value;
  }
  for (const [key, e] of series) {
    const where = `histogram ${f.name}${key === '[]' ? '' : ` ${key}`}`;
    if (e.count === undefined || e.sum === undefined) throw new Error(`${where}: missing _count or _sum`);
    const inf = e.buckets.find(([le]) => le === Infinity);
    if (!inf) throw new Error(`${where}: no +Inf bucket`);
    if (inf[1] !== e.count) throw new Error(`${where}: +Inf bucket ${inf[1]} differs from _count ${e.count}`);
    const sorted = [...e.buckets].sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]![1] < sorted[i - 1]![1]) throw new Error(`${where}: buckets are not cumulative at le=${sorted[i]![0]}`);
    }
  }
}

/** Parses a whole exposition; throws PromParseError (or Error for a malformed histogram). */
export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  let current: Family | undefined;
  const declare = (name: string, line: number): Family => {
    if (!NAME.test(name)) throw new PromParseError(line, `bad metric name ${JSON.stringify(name)}`);
    let f = families.get(name);
    if (!f) {
      if (closed.has(name)) throw new PromParseError(line, `family ${name} appears twice`);
      f = { name, help: '', type: 'untyped', samples: [] };
      families.set(name, f);
    }
    if (current && current !== f) closed.add(current.name);
    current = f;
    return f;
  };
  const lines = text.split('\n');
  if (lines[lines.length - 1] !== '') throw new PromParseError(lines.length, 'the exposition must end with a newline');
  lines.forEach((raw, idx) => {
    const line = idx + 1;
    const l = raw.trim();
    if (l === '') return;
    if (l.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s+(.*))?$/.exec(l);
      if (!m) return; // other comments are allowed
      const f = declare(m[2]!, line);
      if (m[1] === 'HELP') f.help = unescape(m[3] ?? '', line, false);
      else {
        const t = (m[3] ?? '').trim() as MetricType;
        if (!TYPES.has(t)) throw new PromParseError(line, `unknown type ${JSON.stringify(t)} for ${f.name}`);
        if (f.samples.length > 0) throw new PromParseError(line, `# TYPE of ${f.name} after its samples`);
        f.type = t;
      }
      return;
    }
    const s = parseSample(l, line);
    const f = familyOf(s.name, families);
    if (!f) throw new PromParseError(line, `sample ${s.name} has no # TYPE declared before it`);
    if (f !== current) throw new PromParseError(line, `sample ${s.name} is not next to the rest of family ${f.name}`);
    f.samples.push(s);
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

/** Sum of a family's samples named `sample` (default: the family's own name) matching `labels`. */
export function sumOf(families: Map<string, Family>, family: string, labels: Record<string, string> = {}, sample = family): number {
  const f = families.get(family);
  if (!f) throw new Error(`no metric family ${family}`);
  return f.samples
    .filter((s) => s.name === sample && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}
