// Small pieces the side-by-side benchmarks share: flags, medians, the load average, and one
// cleanup that runs once whether the run ends, fails, or is stopped by SIGINT/SIGTERM.
import { loadavg } from 'node:os';

export const median = (xs: number[]): number => {
  const v = [...xs].sort((a, b) => a - b);
  const k = v.length >> 1;
  return v.length % 2 ? v[k]! : (v[k - 1]! + v[k]!) / 2;
};

/** The 1, 5 and 15 minute load averages, as /proc/loadavg shows them. */
export const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

export const secs = (x: number): string => x.toFixed(2);

/** `--name N` as a positive integer (or `def`); exits 2 with a clear message otherwise. */
export function intFlag(prog: string, argv: string[], name: string, def: number, min = 1): number {
  const i = argv.indexOf(name);
  if (i < 0) return def;
  const raw = argv[i + 1];
  const v = Number(raw);
  if (raw === undefined || !Number.isInteger(v) || v < min) {
    process.stderr.write(`${prog}: ${name} needs a whole number of at least ${min}, got ${JSON.stringify(raw ?? '')}\n`);
    process.exit(2);
  }
  return v;
}

/** Refuses flags the benchmark does not know (a typo must not silently run the default). */
export function checkFlags(prog: string, argv: string[], known: string[], usage: string): void {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!known.includes(a)) {
      process.stderr.write(`${prog}: unknown argument ${JSON.stringify(a)}\n${usage}\n`);
      process.exit(2);
    }
    i++; // every known flag takes a value
  }
}

/**
 * Runs `body`; `cleanup` runs exactly once afterwards, also when the body fails or the process
 * gets SIGINT/SIGTERM (then it exits 130/143 once clean, without waiting for the body). The
 * line the body returns (the result) is printed last, after the clean-up's verdict.
 */
export async function withCleanup(prog: string, body: () => Promise<string>, cleanup: () => Promise<string[]>): Promise<void> {
  let cleaning: Promise<void> | undefined;
  let interrupted = false;
  const clean = () => (cleaning ??= cleanup().then((left) => {
    if (left.length) {
      process.stderr.write(`${prog}: could not remove: ${left.join(', ')}\n`);
      process.exitCode = 1;
    }
  }, (e: Error) => {
    process.stderr.write(`${prog}: cleanup failed: ${e.message}\n`);
    process.exitCode = 1;
  }));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (interrupted) return;
      interrupted = true;
      process.stderr.write(`\n${prog}: ${sig}: removing everything the run made\n`);
      void clean().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
  let result: string | undefined;
  try {
    result = await body();
  } catch (e) {
    if (interrupted) return new Promise(() => {}); // the signal handler exits once clean
    process.stderr.write(`${prog}: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
  if (interrupted) return new Promise(() => {});
  await clean();
  if (process.exitCode !== 1) process.stdout.write(`${prog}: everything the run made is removed\n`);
  if (result !== undefined) process.stdout.write(`${result}\n`);
}
