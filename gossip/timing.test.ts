import t from 'tap';
import { pushPullIntervalFor, remainingSuspicionTime, retransmitLimit, suspicionBounds, suspicionConfirmationsNeeded } from './timing.js';
import { makeConfig, presets } from './config.js';

t.test('suspicion bounds follow memberlist LAN (4·max(1,log10 N)·1 s, ×6)', async (t) => {
  const rows: [number, number, number][] = [[1, 4000, 24000], [10, 4000, 24000], [100, 8000, 48000], [1000, 12000, 72000]];
  for (const [n, min, max] of rows) {
    t.same(suspicionBounds(4, 6, n, 1000), { minMs: min, maxMs: max }, `N=${n}`);
  }
  // shoal lan: 3 × 500 ms
  t.same(suspicionBounds(3, 6, 10, 500), { minMs: 1500, maxMs: 9000 });
  t.same(suspicionBounds(3, 6, 100, 500), { minMs: 3000, maxMs: 18000 });
});

t.test('confirmations needed: mult − 2, or 0 in tiny clusters', async (t) => {
  t.equal(suspicionConfirmationsNeeded(4, 10), 2);
  t.equal(suspicionConfirmationsNeeded(4, 3), 0);
  t.equal(suspicionConfirmationsNeeded(3, 3), 1);
  t.equal(suspicionConfirmationsNeeded(3, 2), 0);
});

t.test('remaining suspicion time shrinks on a log curve, floored at min', async (t) => {
  // k = 3, min 2 s, max 30 s, elapsed 2 s (worked: log(3)/log(4) = 0.792 → 7810 − 2000)
  const rows: [number, number][] = [[0, 28000], [1, 14000], [2, 5810], [3, 0], [4, 0], [5, 0]];
  for (const [n, want] of rows) t.equal(remainingSuspicionTime(n, 3, 2000, 2000, 30000), want, `${n} confirmations`);
  t.equal(remainingSuspicionTime(0, 0, 500, 2000, 30000), 1500, 'k = 0 starts at min');
  t.ok(remainingSuspicionTime(0, 3, 40000, 2000, 30000) < 0, 'overdue is negative');
});

t.test('retransmit limit = mult · ceil(log10(N+1))', async (t) => {
  const rows: [number, number][] = [[1, 4], [9, 4], [10, 8], [99, 8], [100, 12], [999, 12], [1000, 16]];
  for (const [n, want] of rows) t.equal(retransmitLimit(4, n), want, `N=${n}`);
});

t.test('push/pull interval scales above 32 members', async (t) => {
  t.equal(pushPullIntervalFor(30000, 32), 30000);
  t.equal(pushPullIntervalFor(30000, 33), 60000);
  t.equal(pushPullIntervalFor(30000, 64), 60000);
  t.equal(pushPullIntervalFor(30000, 65), 90000);
  t.equal(pushPullIntervalFor(30000, 1000), 30000 * 6);
});

t.test('presets: serf-lan is memberlist DefaultLANConfig; lan is faster', async (t) => {
  const s = presets['serf-lan'];
  t.match(s, { probeIntervalMs: 1000, probeTimeoutMs: 500, indirectChecks: 3, gossipIntervalMs: 200, gossipNodes: 3, suspicionMult: 4, suspicionMaxTimeoutMult: 6, retransmitMult: 4, pushPullIntervalMs: 30000, udpBufferSize: 1400 });
  t.match(presets.lan, { probeIntervalMs: 500, probeTimeoutMs: 250, suspicionMult: 3, gossipIntervalMs: 200, retransmitMult: 4 });
  t.match(presets.wan, { probeIntervalMs: 5000, probeTimeoutMs: 3000, suspicionMult: 6 });
  t.match(presets.local, { probeTimeoutMs: 200, indirectChecks: 1, suspicionMult: 3 });
});

t.test('config validation names the bad field', async (t) => {
  t.throws(() => makeConfig('', 'lan'), /name/);
  t.throws(() => makeConfig('a', 'lan', { probeIntervalMs: -1 }), /probeIntervalMs must be a positive number/);
  t.throws(() => makeConfig('a', 'lan', { probeTimeoutMs: 600 }), /probeTimeoutMs .* must be below probeIntervalMs/);
  t.throws(() => makeConfig('a', 'lan', { udpBufferSize: 100 }), /udpBufferSize/);
  t.throws(() => makeConfig('a', 'nope' as 'lan'), /unknown preset "nope"/);
  t.throws(() => makeConfig('a', 'lan', { label: 'x'.repeat(300) }), /label/);
  t.equal(makeConfig('a', 'wan').probeIntervalMs, 5000);
});
