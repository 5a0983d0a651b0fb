// Overlay throughput: iperf3 TCP between two pods on two netns hosts through shoal-net's data
// path (veth, bridge, route, VXLAN, underlay, and back), against a VXLAN device pair built by
// hand between the same two host namespaces (the limit for encapsulated traffic), against the raw
// underlay veth path (no encapsulation). The three alternate, each measurement under the
// machine-wide benchmark lock; medians are reported.
//   npm run bench:overlay -- [--seconds 5] [--rounds 3]
import { spawn, type ChildProcess } from 'node:child_process';
import { arg, benchLab, loadavg, lockedIn, median } from './overlay-bench-lab.js';
import { inNs } from '../test/overlay-harness.js';

interface Path { name: string; from: string; to: string; server: string }

async function iperf(from: string, target: string, seconds: number, port: number): Promise<number> {
  const r = await lockedIn(from, ['iperf3', '-c', target, '-p', String(port), '-t', String(seconds), '-J'], (seconds + 60) * 1000);
  if (r.status !== 0) throw new Error(`iperf3 to ${target} failed: ${r.stdout.slice(0, 400)}${r.stderr}`);
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}

async function main(): Promise<void> {
  const seconds = arg('--seconds', 5);
  const rounds = arg('--rounds', 3);
  process.stdout.write(`bench:overlay: building two netns hosts with shoal-net, two pods (load ${loadavg()})\n`);
  const b = await benchLab('sobo', [['p1', 'n1', '10.1.1.2'], ['p2', 'n2', '10.1.2.2']]);
  const servers: ChildProcess[] = [];
  try {
    const n1 = b.lab.host('n1');
    const n2 = b.lab.host('n2');
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
      servers.push(spawn('nsenter', [`--net=/run/netns/${p.server}`, '--', 'iperf3', '-s', '-p', String(5301 + i)], { stdio: 'ignore' }));
    }
    await new Promise((r) => setTimeout(r, 500));
    const got = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    for (let round = 1; round <= rounds; round++) {
      // Alternate the order each round so no path always runs first.
      const order = round % 2 ? paths : [...paths].reverse();
      for (const p of order) {
        const g = await iperf(p.from, p.to, seconds, 5301 + paths.indexOf(p));
        got.get(p.name)!.push(g);
        process.stdout.write(`  round ${round}/${rounds} ${p.name.padEnd(13)} ${g.toFixed(2)} Gbit/s  (load ${loadavg()})\n`);
      }
    }
    const m = (n: string) => median(got.get(n)!);
    const shoal = m('shoal');
    const hand = m('vxlan by hand');
    const raw = m('raw');
    process.stdout.write(`medians of ${rounds} rounds of ${seconds} s; load average at the end ${loadavg()}\n`);
    process.stdout.write(`overlay-vs-vxlan: shoal ${shoal.toFixed(2)} Gbit/s, vxlan by hand ${hand.toFixed(2)} Gbit/s, raw ${raw.toFixed(2)} Gbit/s, ratio ${(shoal / hand).toFixed(2)}\n`);
  } finally {
    for (const s of servers) s.kill('SIGKILL');
    await b.close();
  }
}

main().catch((e) => {
  process.stderr.write(`bench:overlay: ${(e as Error).message}\n`);
  process.exit(1);
});
