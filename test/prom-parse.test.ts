// The strict Prometheus text-format parser the metrics tests rely on: it must accept what a real
// exporter (prom-client, as shoald serves it) writes, and refuse what Prometheus would refuse, or
// the metrics tests could pass on a page no scraper can read.
import t from 'tap';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { PromParseError, parsePrometheusText, sumOf } from './prom-parse.js';

t.test("prom-client's own output parses, values and labels intact", async (t) => {
  const r = new Registry();
  collectDefaultMetrics({ register: r, prefix: 'x_' });
  const c = new Counter({ name: 'x_calls_total', help: 'calls with "quotes" and a \\ backslash\nand a newline', labelNames: ['method'], registers: [r] });
  c.inc({ method: 'A' }, 2);
  c.inc({ method: 'we"ird\\name\n' }, 3);
  const g = new Gauge({ name: 'x_level', help: 'a level', registers: [r] });
  g.set(-1.5e-3);
  const h = new Histogram({ name: 'x_latency_seconds', help: 'latency', buckets: [0.1, 1], labelNames: ['op'], registers: [r] });
  h.observe({ op: 'put' }, 0.05);
  h.observe({ op: 'put' }, 0.5);
  h.observe({ op: 'put' }, 5);
  const fams = parsePrometheusText(await r.metrics());
  t.equal(fams.get('x_calls_total')!.type, 'counter');
  t.equal(fams.get('x_calls_total')!.help, 'calls with "quotes" and a \\ backslash\nand a newline', 'HELP escapes undone');
  t.equal(sumOf(fams, 'x_calls_total'), 5);
  t.equal(sumOf(fams, 'x_calls_total', { method: 'we"ird\\name\n' }), 3, 'label value escapes undone');
  t.equal(sumOf(fams, 'x_level'), -1.5e-3);
  t.equal(sumOf(fams, 'x_latency_seconds', { op: 'put' }, 'x_latency_seconds_count'), 3);
  t.equal(sumOf(fams, 'x_latency_seconds', { op: 'put', le: '1' }, 'x_latency_seconds_bucket'), 2, 'cumulative buckets');
  t.equal(sumOf(fams, 'x_latency_seconds', { op: 'put', le: '+Inf' }, 'x_latency_seconds_bucket'), 3);
  t.ok(sumOf(fams, 'x_process_resident_memory_bytes') > 0, 'default process metrics present');
  t.throws(() => sumOf(fams, 'x_missing'), /no metric family x_missing/);
});

t.test('malformed expositions are refused, naming the line', async (t) => {
  const bad: [string, RegExp][] = [
    ['x_a 1\n', /no # TYPE declared/],
    ['# TYPE x_a counter\nx_a 1', /end with a newline/],
    ['# TYPE x_a counter\nx_a one\n', /line 2/],
    ['# TYPE x_a wobble\n', /unknown type "wobble"/],
    ['# TYPE x_a counter\nx_a 1\n# TYPE x_a counter\n', /after its samples/],
    ['# TYPE x_a counter\nx_a 1\n# TYPE x_b gauge\nx_b 1\nx_a 2\n', /not next to the rest of family x_a/],
    ['# TYPE x_a counter\nx_a{method="A} 1\n', /line 2/],
    ['# TYPE x_a counter\nx_a{9bad="A"} 1\n', /line 2/],
    ['# TYPE 9bad counter\n', /bad metric name/],
    ['# TYPE x_h histogram\nx_h_bucket{le="1"} 3\nx_h_bucket{le="+Inf"} 2\nx_h_sum 1\nx_h_count 2\n', /x_h/],
    ['# TYPE x_h histogram\nx_h_bucket{le="1"} 1\nx_h_sum 1\nx_h_count 1\n', /\+Inf/],
  ];
  for (const [text, why] of bad) {
    t.throws(() => parsePrometheusText(text), why, JSON.stringify(text));
  }
  t.ok(new PromParseError(3, 'x') instanceof Error);
  const ok = parsePrometheusText('# some comment\n# HELP x_a a\n# TYPE x_a gauge\nx_a{l="v"} NaN\nx_a{l="w"} +Inf 1700000000000\n');
  t.equal(ok.get('x_a')!.samples.length, 2, 'NaN, +Inf and timestamps are valid');
});
