// One load-generator process of benchmarks/raft-vs-etcd: closed-loop clients doing Puts of a
// 16-byte key and a 256-byte value against etcd (etcdserverpb.KV/Put) or shoal (Store.Put),
// round-robin over the given endpoints. Timing is shared with the parent through absolute epoch
// times: warm-up from `start`, measurement for `seconds` after it. Prints one JSON result line.
//
//   node raft-load.js <etcd|shoal> <host:port,...> <clients> <startEpochMs> <warmupS> <seconds> <genId>
import * as grpc from '@grpc/grpc-js';
import { loadProto } from '../proto/load.js';
import { storeServiceCtor } from '../manager/storeapi/service.js';
import { encodeValue } from '../manager/storeapi/convert.js';

const [system, endpoints, clientsS, startS, warmupS, secondsS, genS] = process.argv.slice(2);
if (!system || !endpoints || !clientsS || !startS || !warmupS || !secondsS || genS === undefined) {
  process.stderr.write('usage: raft-load <etcd|shoal> <host:port,...> <clients> <startEpochMs> <warmupS> <seconds> <genId>\n');
  process.exit(2);
}
const CLIENTS = Number(clientsS);
const START = Number(startS);
const MEASURE_FROM = START + Number(warmupS) * 1000;
const MEASURE_TO = MEASURE_FROM + Number(secondsS) * 1000;
const KEYSPACE = 100_000;
const opts: grpc.ChannelOptions = { 'grpc.max_receive_message_length': 16 << 20 };

type PutFn = (key: string, value: Buffer) => Promise<void>;

function makePut(): PutFn {
  const addrs = endpoints!.split(',');
  if (system === 'etcd') {
    const KV = (loadProto('etcd/rpc.proto') as any).etcdserverpb.KV as grpc.ServiceClientConstructor;
    const cs = addrs.map((a) => new KV(a, grpc.credentials.createInsecure(), opts) as any);
    let rr = 0;
    return (key, value) => new Promise((resolve, reject) => {
      cs[rr++ % cs.length].Put({ key: Buffer.from(key), value }, (err: Error | null) => (err ? reject(err) : resolve()));
    });
  }
  if (system === 'shoal') {
    const C = storeServiceCtor();
    const cs = addrs.map((a) => new C(a, grpc.credentials.createInsecure(), opts) as any);
    let rr = 0;
    return (key, value) => new Promise((resolve, reject) => {
      const object = { kind: 'config', id: key, name: key, labels: {}, service_id: '', node_id: '', spec: encodeValue(value), status: Buffer.alloc(0) };
      cs[rr++ % cs.length].Put({ object }, (err: Error | null) => (err ? reject(err) : resolve()));
    });
  }
  process.stderr.write(`unknown system ${system}: use etcd or shoal\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const put = makePut();
  const value = Buffer.alloc(256, 0x61);
  const lat: number[] = [];
  let errors = 0;
  let ops = 0;
  const key = () => 'k' + String(Math.floor(Math.random() * KEYSPACE)).padStart(15, '0');
  await new Promise((r) => setTimeout(r, Math.max(0, START - Date.now())));
  let cpu0 = process.cpuUsage();
  setTimeout(() => (cpu0 = process.cpuUsage()), Math.max(0, MEASURE_FROM - Date.now()));
  const loop = async () => {
    while (Date.now() < MEASURE_TO) {
      const t0 = performance.now();
      const e0 = performance.timeOrigin + t0;
      try {
        await put(key(), value);
      } catch {
        errors++;
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      const t1 = performance.now();
      const e1 = performance.timeOrigin + t1;
      // Count an op if it started and completed inside the measurement window.
      if (e0 >= MEASURE_FROM && e1 <= MEASURE_TO) {
        ops++;
        lat.push(t1 - t0);
      }
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, loop));
  const cpu = process.cpuUsage(cpu0);
  // cpuMs: this generator's CPU time (user + system) from the start of the measurement window.
  // Exit only once the (large) line is flushed: a pipe takes 64 KiB at a time.
  process.stdout.write(JSON.stringify({ gen: Number(genS), ops, errors, cpuMs: (cpu.user + cpu.system) / 1000, lat: lat.map((x) => Math.round(x * 1000) / 1000) }) + '\n', () => process.exit(0));
}

void main();
