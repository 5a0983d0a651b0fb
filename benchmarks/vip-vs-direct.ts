// Service VIP cost: new TCP connections per second and p99 connect time from a pod on host n1 to
// a service VIP with 4 backends (pods on host n2; shoal-net's nft numgen DNAT in the client pod's
// namespace), against the same client connecting to one of those backends by its address. Both
// sides cross the same VXLAN path; they alternate, each measurement under the machine-wide
// benchmark lock; medians are reported.
//   npm run bench:vip -- [--seconds 5] [--rounds 3] [--concurrency 16]
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Service } from '../proto/network/types.js';
import { arg, benchLab, loadavg, lockedIn, median } from './overlay-bench-lab.js';

const CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'vip-client.js');
const VIP = '10.255.0.2';
const BACKENDS = ['10.1.2.2', '10.1.2.3', '10.1.2.4', '10.1.2.5'];
const ACCEPT_SERVER = `require('net').createServer((s) => { s.on('error', () => {}); s.destroy(); }).listen(80, '0.0.0.0', () => process.stdout.write('ready\\n'))`;

interface Run { rate: number; p99ms: number; connections: number; errors: number; firstError: string }

async function measure(clientNs: string, target: string, seconds: number, concurrency: number): Promise<Run> {
  const r = await lockedIn(clientNs, [process.execPath, CLIENT, '--target', target, '--port', '80', '--seconds', String(seconds), '--concurrency', String(concurrency)], (seconds + 60) * 1000);
  if (r.status !== 0) throw new Error(`client to ${target} failed: ${r.stderr}`);
  const j = JSON.parse(r.stdout) as Run;
  if (j.errors > 0) throw new Error(`${j.errors} of the connections to ${target} failed (${j.firstError}); a measurement with failures is not reported`);
  return j;
}

async function main(): Promise<void> {
  const seconds = arg('--seconds', 5);
  const rounds = arg('--rounds', 3);
  const concurrency = arg('--concurrency', 16);
  const web: Service = {
    id: 'svc-web', name: 'web', endpoint_mode: 0, vips: [{ network_id: 'net-bench', address: VIP }], network_ids: ['net-bench'], ports: [],
    backends: BACKENDS.map((a, i) => ({ task_id: `b${i + 1}`, node_id: 'n2', ready: true, name: `web.${i + 1}`, addresses: [{ network_id: 'net-bench', address: a }] })),
  };
  process.stdout.write(`bench:vip: building two netns hosts with shoal-net, a client pod and 4 backends (load ${loadavg()})\n`);
  const b = await benchLab('sobv', [['client', 'n1', '10.1.1.2'], ...BACKENDS.map((a, i): [string, 'n2', string] => [`b${i + 1}`, 'n2', a])], [web]);
  const servers: ChildProcess[] = [];
  try {
    for (let i = 1; i <= 4; i++) {
      const p = spawn('nsenter', [`--net=/run/netns/${b.pods.get(`b${i}`)!}`, '--', process.execPath, '-e', ACCEPT_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
      servers.push(p);
      await new Promise<void>((resolve, reject) => {
        p.stdout!.once('data', () => resolve());
        p.once('exit', (c) => reject(new Error(`backend b${i} exited (${c})`)));
      });
    }
    const client = b.pods.get('client')!;
    const vip: Run[] = [];
    const direct: Run[] = [];
    for (let round = 1; round <= rounds; round++) {
      const order: ['vip' | 'direct', string][] = round % 2 ? [['vip', VIP], ['direct', BACKENDS[0]!]] : [['direct', BACKENDS[0]!], ['vip', VIP]];
      for (const [kind, target] of order) {
        const r = await measure(client, target, seconds, concurrency);
        (kind === 'vip' ? vip : direct).push(r);
        process.stdout.write(`  round ${round}/${rounds} ${kind.padEnd(6)} ${Math.round(r.rate)} conn/s, p99 ${r.p99ms.toFixed(2)} ms (${r.connections} connections; load ${loadavg()})\n`);
      }
    }
    const vr = median(vip.map((x) => x.rate));
    const dr = median(direct.map((x) => x.rate));
    const vp = median(vip.map((x) => x.p99ms));
    const dp = median(direct.map((x) => x.p99ms));
    process.stdout.write(`medians of ${rounds} rounds of ${seconds} s, ${concurrency} connections in flight; load average at the end ${loadavg()}\n`);
    process.stdout.write(`vip-vs-direct: vip ${Math.round(vr)} c/s p99 ${vp.toFixed(2)} ms, direct ${Math.round(dr)} c/s p99 ${dp.toFixed(2)} ms, ratio ${(vr / dr).toFixed(2)}\n`);
  } finally {
    for (const s of servers) s.kill('SIGKILL');
    await b.close();
  }
}

main().catch((e) => {
  process.stderr.write(`bench:vip: ${(e as Error).message}\n`);
  process.exit(1);
});
