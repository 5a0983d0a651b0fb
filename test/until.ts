// For tests: wait for a condition by polling (never a timing assertion: the deadline only turns a
// hang into a clear failure).

/** Polls `f` every 10 ms until it returns something truthy, which it returns; throws after `ms`. */
export async function until<T>(f: () => T | undefined | null | false, what: string, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 10));
  }
}
