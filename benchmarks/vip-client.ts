// The connection generator of bench:vip, run inside the client pod's namespace: opens TCP
// connections to TARGET:PORT with C in flight for S seconds, timing each connect (SYN to
// established), and resets each at once (no TIME_WAIT to run out of ports). Prints JSON.
//   node vip-client.js --target 10.255.0.2 --port 80 --seconds 5 --concurrency 16
import net from 'node:net';

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : def;
  if (v === undefined) { process.stderr.write(`vip-client: ${name} is required\n`); process.exit(2); }
  return v;
}

const target = arg('--target');
const port = Number(arg('--port', '80'));
const seconds = Number(arg('--seconds', '5'));
const concurrency = Number(arg('--concurrency', '16'));
const lat: number[] = [];
let errors = 0;
let firstError = '';
const end = performance.now() + seconds * 1000;

function one(): Promise<void> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = net.connect({ host: target, port });
    s.once('connect', () => {
      lat.push(performance.now() - t0);
      s.resetAndDestroy();
      resolve();
    });
    s.once('error', (e) => {
      errors++;
      firstError ||= e.message;
      s.destroy();
      resolve();
    });
  });
}

async function worker(): Promise<void> {
  while (performance.now() < end) await one();
}

const t0 = performance.now();
await Promise.all(Array.from({ length: concurrency }, worker));
const elapsed = (performance.now() - t0) / 1000;
lat.sort((a, b) => a - b);
const p99 = lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))]! : NaN;
process.stdout.write(JSON.stringify({ connections: lat.length, seconds: elapsed, rate: lat.length / elapsed, p99ms: p99, errors, firstError }) + '\n');
