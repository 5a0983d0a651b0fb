// Overlay throughput: iperf3 TCP between two pods on two netns hosts through shoal-net's data
// path (veth, bridge, route, VXLAN, underlay, and back), against a VXLAN device pair built by
// hand between the same two host namespaces (the limit for encapsulated traffic), against the raw
// underlay veth path (no encapsulation). The three alternate, each measurement under the
// machine-wide benchmark lock; medians are reported.
//   npm run bench:overlay -- [--seconds 5] [--rounds 3]
import { arg, benchLab, loadavg, lockedIn, median, progress, closeBench, spawnServer, waitReady } from './overlay-bench-lab.js';
import { checkFlags } from './bench-util.js';
import { inNs } from '../test/overlay-harness.js';

const PROG = 'bench:overlay';
const GOAL = 0.95;

interface Path { name: string; from: string; to: string; server: string }

async function iperf(from: string, target: string, seconds: number, port: number): Promise<number> {
  const r = await lockedIn(PROG, from, ['iperf3', '-c', target, '-p', String(port), '-t', String(seconds), '--connect-timeout', '10000', '-J'], (seconds + 60) * 1000);
  if (r.status !== 0) throw new Error(`iperf3 to ${target} failed: ${r.stdout.slice(0, 400)}${r.stderr}`);
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}

async function main(): Promise<void> {
  checkFlags(PROG, process.argv.slice(2), ['--seconds', '--rounds'], 'usage: npm run bench:overlay -- [--seconds 5] [--rounds 3]');
  const seconds = arg(PROG, '--seconds', 5);
  const rounds = arg(PROG, '--rounds', 3);
  const load0 = loadavg();
  progress(PROG, `${rounds} rounds of ${seconds} s per path (shoal, vxlan by hand, raw); load ${load0}`);
  const b = await benchLab(PROG, 'sobo', [['p1', 'n1', '10.1.1.2'], ['p2', 'n2', '10.1.2.2']]);
  let result: string[] | undefined;
  try {
    const n1 = b.lab.host('n1');
    const n2 = b.lab.host('n2');
    progress(PROG, 'the VXLAN path by hand between the two host namespaces');
    // The VXLAN path by hand: one device per host (its own VNI, same port, learning off, MTU for
    // the overhead), a static FDB entry to the other host, addresses of their own.
    for (const [h, peer, addr] of [[n1, n2, '192.168.250.1'], [n2, n1, '192.168.250.2']] as const) {
      for (const cmd of [
        ['ip', 'link', 'add', 'bvx0', 'mtu', '1450', 'type', 'vxlan', 'id', '999', 'local', h.address, 'dev', 'eth0', 'dstport', '4789', 'nolearning'],
        ['bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'bvx0', 'dst', peer.address],
        ['ip', 'addr', 'add', `${addr}/24`, 'dev', 'bvx0'],
        ['ip', 'link', 'set', 'bvx0', 'up'],
      ]) {
        const r = inNs(h.netns, cmd);
        if (r.status !== 0) throw new Error(`${cmd.join(' ')} in ${h.name}: ${r.stderr}`);
      }
    }
    const paths: Path[] = [
      { name: 'shoal', from: b.pods.get('p1')!, to: '10.1.2.2', server: b.pods.get('p2')! },
      { name: 'vxlan by hand', from: n1.netns, to: '192.168.250.2', server: n2.netns },
      { name: 'raw', from: n1.netns, to: n2.address, server: n2.netns },
    ];
    for (const [i, p] of paths.entries()) {
      progress(PROG, `iperf3 server for ${p.name} on port ${5301 + i}`);
      // --forceflush: its "Server listening" line reaches the pipe at once, and is the ready signal.
      const s = spawnServer(p.server, ['iperf3', '-s', '--forceflush', '-p', String(5301 + i)]);
      await waitReady(s, `the iperf3 server for ${p.name}`, 60_000);
      s.stdout!.resume();
    }
    const got = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    for (let round = 1; round <= rounds; round++) {
      // Alternate the order each round so no path always runs first.
      const order = round % 2 ? paths : [...paths].reverse();
      for (const p of order) {
        const g = await iperf(p.from, p.to, seconds, 5301 + paths.indexOf(p));
        got.get(p.name)!.push(g);
        progress(PROG, `round ${round}/${rounds} ${p.name.padEnd(13)} ${g.toFixed(2)} Gbit/s (load ${loadavg()})`);
      }
    }
    const m = (n: string) => median(got.get(n)!);
    const shoal = m('shoal');
    const hand = m('vxlan by hand');
    const raw = m('raw');
    const ratio = shoal / hand;
    result = [
      `medians of ${rounds} rounds of ${seconds} s; load average ${load0} at the start, ${loadavg()} at the end`,
      `overlay-vs-vxlan: shoal ${shoal.toFixed(2)} Gbit/s, vxlan by hand ${hand.toFixed(2)} Gbit/s, raw ${raw.toFixed(2)} Gbit/s, ratio ${ratio.toFixed(2)}`,
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
