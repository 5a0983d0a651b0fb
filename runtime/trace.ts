// Optional step timing for finding where an RPC's time goes (SHOAL_TRACE=1): each RPC handler
// and each marked step inside it is summed per name and printed to stderr when the process
// gets SIGUSR2. Costs one branch when tracing is off.
const on = !!process.env['SHOAL_TRACE'];
const sums = new Map<string, { n: number; ms: number }>();

export function traceAdd(name: string, ms: number): void {
  if (!on) return;
  const s = sums.get(name) ?? { n: 0, ms: 0 };
  s.n++; s.ms += ms;
  sums.set(name, s);
}

/** Times a promise-returning step under `name`. */
export async function traced<T>(name: string, f: () => Promise<T>): Promise<T> {
  if (!on) return f();
  const t = performance.now();
  try { return await f(); } finally { traceAdd(name, performance.now() - t); }
}

export function traceReport(): string {
  return [...sums.entries()].map(([k, v]) => `${k}: n=${v.n} mean=${(v.ms / v.n).toFixed(2)} ms`).join('\n');
}

if (on) process.on('SIGUSR2', () => { process.stderr.write(`trace\n${traceReport()}\n`); sums.clear(); });
