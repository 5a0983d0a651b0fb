// Pure timing formulas (memberlist's util.go, restated). Table-tested in
// timing.test.ts; every preset in config.ts is derived through these.

/**
 * Minimum and maximum suspicion timeout for a cluster of `n` members.
 *   min = suspicionMult · max(1, log10(n)) · probeInterval
 *   max = suspicionMaxTimeoutMult · min
 * log10 (not log(n+1) as memberlist's comments say): this is what its code does,
 * and what serf's measured timings reflect.
 */
export function suspicionBounds(
  suspicionMult: number,
  suspicionMaxTimeoutMult: number,
  n: number,
  probeIntervalMs: number,
): { minMs: number; maxMs: number } {
  const scale = Math.max(1, Math.log10(Math.max(1, n)));
  const minMs = Math.floor(suspicionMult * scale * probeIntervalMs);
  return { minMs, maxMs: suspicionMaxTimeoutMult * minMs };
}

/**
 * Number of independent confirmations that bring a suspicion down to its
 * minimum timeout: suspicionMult − 2, or 0 when the cluster is too small to
 * supply that many other suspecters (n − 2 < k).
 */
export function suspicionConfirmationsNeeded(suspicionMult: number, n: number): number {
  const k = suspicionMult - 2;
  return n - 2 < k ? 0 : Math.max(0, k);
}

/**
 * Lifeguard's dynamic suspicion: the timeout starts at max and falls on a log
 * curve toward min as independent confirmations arrive.
 *   timeout = max(min, max − log(c+1)/log(k+1) · (max − min))
 * Returns the time still to wait after `elapsedMs` (may be negative = overdue).
 */
export function remainingSuspicionTime(
  confirmations: number,
  k: number,
  elapsedMs: number,
  minMs: number,
  maxMs: number,
): number {
  let timeout: number;
  if (k < 1) {
    timeout = minMs;
  } else {
    const frac = Math.log(confirmations + 1) / Math.log(k + 1);
    timeout = Math.floor(maxMs - frac * (maxMs - minMs));
    if (timeout < minMs) timeout = minMs;
  }
  return timeout - elapsedMs;
}

/** How many times one update is sent: retransmitMult · ceil(log10(n + 1)). */
export function retransmitLimit(retransmitMult: number, n: number): number {
  return retransmitMult * Math.ceil(Math.log10(n + 1));
}

/**
 * Push/pull interval for large clusters: unchanged up to 32 members, then
 * multiplied by ceil(log2(n) − log2(32)) + 1 so the TCP full-state load per
 * member stays roughly flat as the state grows.
 */
export function pushPullIntervalFor(intervalMs: number, n: number): number {
  const threshold = 32;
  if (n <= threshold) return intervalMs;
  const mult = Math.ceil(Math.log2(n) - Math.log2(threshold)) + 1;
  return intervalMs * mult;
}
