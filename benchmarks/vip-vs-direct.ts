// Service VIP cost: new TCP connections per second and p99 connect time from a pod on host n1 to
// a service VIP with 4 backends (pods on host n2; shoal-net's nft numgen DNAT in the client pod's
// namespace), against the same client connecting to one of those backends by its address. Both
// cross the same VXLAN path. A third arm, the client itself spreading over the 4 backends'
// addresses (no DNAT), tells the cost of the DNAT apart from the cost of 4 backends instead of 1.
// The arms take turns in half-second slices within each round (vip-client.ts), each round under
// the machine-wide benchmark lock; medians of the rounds are reported. Progress goes to stderr,
// the figures and the verdict to stdout. The backends run accept-server.c (accept, close: see
// there why not node), compiled into the run's directory.
//   npm run bench:vip -- [--seconds 5] [--rounds 3] [--concurrency 16]
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Service } from '../proto/network/types.js';
import { inNs } from '../test/overlay-harness.js';
import { arg, benchLab, loadavg, lockHeldByAncestor, lockedIn, median, progress, closeBench, spawnServer, waitReady, BENCH_LOCK } from './overlay-bench-lab.js';
import { checkFlags } from './bench-util.js';

const PROG = 'bench:vip';
const GOAL = 0.9;
const CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'vip-client.js');
const VIP = '10.255.0.2';
const BACKENDS = ['10.1.2.2', '10.1.2.3', '10.1.2.4', '10.1.2.5'];
const ACCEPT_SERVER_C = fileURLToPath(new URL('../../benchmarks/accept-server.c', import.meta.url));
const ARMS = [['vip', VIP], ['direct', BACKENDS[0]!], ['spread', BACKENDS.join('+')]] as const;
type ArmName = (typeof ARMS)[number][0];

interface Run { rate: number; p99ms: number; maxms: number; retried: number; connections: number; seconds: number; errors: number; firstError: string }

async function round(clientNs: string, seconds: number, concurrency: number): Promise<Record<ArmName, Run>> {
  const arms = ARMS.map(([n, a]) => `${n}=${a}`).join(',');
  // The arms take 3 x seconds in all; a minute more before it is called stuck.
  const limitMs = (3 * seconds + 60) * 1000;
  const r = await lockedIn(PROG, clientNs, [process.execPath, CLIENT, '--arms', arms, '--port', '80', '--seconds', String(seconds), '--concurrency', String(concurrency)], limitMs);
  if (r.status !== 0) throw new Error(`the connection client in the client pod failed (exit ${r.status}): ${r.stderr.trim() || '(no output)'}`);
  const j = JSON.parse(r.stdout) as Record<ArmName, Run>;
  for (const [n] of ARMS) {
    if (j[n].errors > 0) throw new Error(`${j[n].errors} of the ${n} connections failed (${j[n].firstError}); a measurement with failures is not reported`);
  }
  return j;
}

async function main(): Promise<void> {
  checkFlags(PROG, process.argv.slice(2), ['--seconds', '--rounds', '--concurrency'], 'usage: npm run bench:vip -- [--seconds 5] [--rounds 3] [--concurrency 16]');
  const seconds = arg(PROG, '--seconds', 5);
  const rounds = arg(PROG, '--rounds', 3);
  const concurrency = arg(PROG, '--concurrency', 16);
  const web: Service = {
    id: 'svc-web', name: 'web', endpoint_mode: 0, vips: [{ network_id: 'net-bench', address: VIP }], network_ids: ['net-bench'], ports: [],
    backends: BACKENDS.map((a, i) => ({ task_id: `b${i + 1}`, node_id: 'n2', ready: true, name: `web.${i + 1}`, addresses: [{ network_id: 'net-bench', address: a }] })),
  };
  const load0 = loadavg();
  progress(PROG, `${rounds} rounds of ${seconds} s per arm (vip, direct, spread), ${concurrency} connections in flight; load ${load0}`);
  progress(PROG, lockHeldByAncestor() ? `${BENCH_LOCK} is held by this run's caller: measuring under it` : `each round takes ${BENCH_LOCK}`);
  const b = await benchLab(PROG, 'sobv', [['client', 'n1', '10.1.1.2'], ...BACKENDS.map((a, i): [string, 'n2', string] => [`b${i + 1}`, 'n2', a])], [web]);
  let result: string[] | undefined;
  try {
    const acceptServer = join(b.lab.dir, 'accept-server');
    progress(PROG, 'compiling the backends\' accept server (gcc)');
    const cc = spawnSync('gcc', ['-O2', '-o', acceptServer, ACCEPT_SERVER_C], { encoding: 'utf8', timeout: 120_000 });
    if (cc.status !== 0) throw new Error(`gcc could not build ${ACCEPT_SERVER_C} (is gcc installed? scripts/setup.sh installs it): ${cc.stderr}${cc.error?.message ?? ''}`);
    for (let i = 1; i <= 4; i++) {
      progress(PROG, `backend b${i}: starting its accept server on port 80`);
      const p = spawnServer(b.pods.get(`b${i}`)!, [acceptServer]);
      await waitReady(p, `the accept server of backend b${i}`, 60_000);
    }
    const client = b.pods.get('client')!;
    const got: Record<ArmName, Run[]> = { vip: [], direct: [], spread: [] };
    for (let k = 1; k <= rounds; k++) {
      progress(PROG, `round ${k}/${rounds}: measuring (${3 * seconds} s; load ${loadavg()})`);
      const r = await round(client, seconds, concurrency);
      for (const [n] of ARMS) got[n].push(r[n]);
      progress(PROG, `round ${k}/${rounds}: ${ARMS.map(([n]) => `${n} ${Math.round(r[n].rate)} c/s p99 ${r[n].p99ms.toFixed(2)} ms max ${Math.round(r[n].maxms)} ms${r[n].retried ? ` (${r[n].retried} SYNs retried)` : ''}`).join(', ')} (load ${loadavg()})`);
    }
    // A backend that fell behind with accept() drops SYNs once its queue is full (each costs its
    // connection a 1 s retransmit): the kernel counts them per namespace.
    const overflows = BACKENDS.map((_, i) => {
      const out = inNs(b.pods.get(`b${i + 1}`)!, ['nstat', '-asz', 'TcpExtListenOverflows']).stdout;
      return Number(/TcpExtListenOverflows\s+(\d+)/.exec(out)?.[1] ?? NaN);
    });
    progress(PROG, `accept queue overflows (SYNs dropped) in backends b1..b4: ${overflows.join(', ')}`);
    const rate = (n: ArmName) => median(got[n].map((x) => x.rate));
    const p99 = (n: ArmName) => median(got[n].map((x) => x.p99ms));
    const pairs = (n: ArmName) => got.vip.map((v, i) => v.rate / got[n][i]!.rate);
    const ratio = rate('vip') / rate('direct');
    result = [
      `medians of ${rounds} rounds of ${seconds} s per arm, arms interleaved in 0.5 s slices, ${concurrency} connections in flight; load average ${load0} at the start, ${loadavg()} at the end`,
      `  the client spreading over the 4 backends itself (no DNAT): ${Math.round(rate('spread'))} c/s p99 ${p99('spread').toFixed(2)} ms; vip / spread ${(rate('vip') / rate('spread')).toFixed(2)}`,
      // Each round's arms ran interleaved under the same load, so their ratio within a round is
      // the paired comparison; its spread says how far to trust the ratio of the medians.
      `  vip / direct per round: ${pairs('direct').map((x) => x.toFixed(2)).join(' ')} (median ${median(pairs('direct')).toFixed(2)}); vip / spread per round: ${pairs('spread').map((x) => x.toFixed(2)).join(' ')} (median ${median(pairs('spread')).toFixed(2)})`,
      `vip-vs-direct: vip ${Math.round(rate('vip'))} c/s p99 ${p99('vip').toFixed(2)} ms, direct ${Math.round(rate('direct'))} c/s p99 ${p99('direct').toFixed(2)} ms, ratio ${ratio.toFixed(2)}`,
      `${PROG}: goal ratio >= ${GOAL}: ${ratio >= GOAL ? 'met' : 'NOT met'}`,
    ];
  } finally {
    await closeBench(PROG, b);
  }
  if (result) process.stdout.write(result.join('\n') + '\n');
}

main().catch((e) => {
  process.stderr.write(`${PROG}: ${(e as Error).message}\n`);
  process.exit(1);
});
