// The connection generator of bench:vip, run inside the client pod's namespace. For each arm
// (a name and the addresses it connects to, round robin) it opens TCP connections to ADDR:PORT
// with C in flight, timing each connect (SYN to established), and resets each at once (no
// TIME_WAIT to run out of ports). The arms take turns in short slices (the order reversed every
// other cycle) until each has had S seconds: on a shared machine the load changes by the
// second, and slices this short give every arm the same load, which whole runs one after the
// other do not. Prints JSON: per arm, connections, seconds, rate, p99, the slowest, how many SYNs were
// retransmitted, errors.
//   node vip-client.js --arms vip=10.255.0.2,direct=10.1.2.2 --port 80 --seconds 5 --concurrency 16 [--slice-ms 500]
import net from 'node:net';

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : def;
  if (v === undefined) { process.stderr.write(`vip-client: ${name} is required\n`); process.exit(2); }
  return v;
}

function num(name: string, def: string): number {
  const v = Number(arg(name, def));
  if (!(v > 0)) { process.stderr.write(`vip-client: ${name} needs a positive number\n`); process.exit(2); }
  return v;
}

interface Arm { name: string; addrs: string[]; next: number; lat: number[]; ms: number; errors: number; firstError: string }

const arms: Arm[] = arg('--arms').split(',').map((spec) => {
  const [name, list] = spec.split('=');
  if (!name || !list) { process.stderr.write(`vip-client: --arms takes NAME=ADDR[+ADDR...],...; got ${JSON.stringify(spec)}\n`); process.exit(2); }
  return { name, addrs: list.split('+'), next: 0, lat: [], ms: 0, errors: 0, firstError: '' };
});
const port = num('--port', '80');
const seconds = num('--seconds', '5');
const concurrency = num('--concurrency', '16');
const sliceMs = num('--slice-ms', '500');
// A SYN nobody answers is retried for about two minutes by the kernel; a connect that takes
// this long is a broken path, not a slow one, and is counted as an error naming it.
const connectTimeoutMs = num('--connect-timeout-ms', '10000');

function one(arm: Arm): Promise<void> {
  const host = arm.addrs[arm.next++ % arm.addrs.length]!;
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = net.connect({ host, port });
    const timer = setTimeout(() => s.destroy(new Error(`connect to ${host}:${port} did not complete within ${connectTimeoutMs} ms`)), connectTimeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      arm.lat.push(performance.now() - t0);
      s.resetAndDestroy();
      resolve();
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      arm.errors++;
      arm.firstError ||= `${host}:${port}: ${e.message}`;
      s.destroy();
      resolve();
    });
  });
}

/** One slice: C connections in flight to `arm` until `ms` is up; the slice lasts until the
 * last of them is done, and that is the time it is credited with. */
async function slice(arm: Arm, ms: number): Promise<void> {
  const t0 = performance.now();
  const end = t0 + ms;
  const worker = async (): Promise<void> => { while (performance.now() < end) await one(arm); };
  await Promise.all(Array.from({ length: concurrency }, worker));
  arm.ms += performance.now() - t0;
}

const perArmMs = seconds * 1000;
for (let cycle = 0; arms.some((a) => a.ms < perArmMs); cycle++) {
  for (const arm of cycle % 2 ? [...arms].reverse() : arms) {
    if (arm.ms < perArmMs) await slice(arm, Math.min(sliceMs, perArmMs - arm.ms));
  }
}

const out: Record<string, { connections: number; seconds: number; rate: number; p99ms: number; maxms: number; retried: number; errors: number; firstError: string }> = {};
for (const a of arms) {
  a.lat.sort((x, y) => x - y);
  const p99 = a.lat.length ? a.lat[Math.min(a.lat.length - 1, Math.floor(a.lat.length * 0.99))]! : NaN;
  // A connect of a second or more had its SYN retransmitted (the first retry is at 1 s): a drop.
  const retried = a.lat.filter((x) => x >= 1000).length;
  out[a.name] = { connections: a.lat.length, seconds: a.ms / 1000, rate: a.lat.length / (a.ms / 1000), p99ms: p99, maxms: a.lat.at(-1) ?? NaN, retried, errors: a.errors, firstError: a.firstError };
}
process.stdout.write(JSON.stringify(out) + '\n');
