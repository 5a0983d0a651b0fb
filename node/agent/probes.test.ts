// http and tcp probes run inside a pod's network namespace (the pod has no address the node
// reaches): with the busybox the node depends on, they pass against a server that answers, fail
// against a closed port, an HTTP error or a server that never answers, and a tcp probe of a port
// whose server never speaks passes at once (it once waited on its own open stdin until killed).
// The namespace is real (made by this test, loopback only); the CRI client is a stand-in that
// answers PodSandboxStatus with that namespace, as the runtime does for a pod without an address.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import type { Probe } from '../../manager/services/model.js';
import type { CriClient } from '../cri/client.js';
import { runProbe } from './probes.js';

const NS = `shoal-probe-${process.pid}`;

// In the namespace: 8080 answers GET / with 200 and anything else with 404; 8081 accepts and
// never speaks (a database, a gRPC server before its preface); 8082 accepts and never answers
// an HTTP request; nothing listens on 8083.
const SERVERS = `
const http = require('node:http'), net = require('node:net');
http.createServer((q, s) => { s.statusCode = q.url === '/' ? 200 : 404; s.end('x'); }).listen(8080, '127.0.0.1');
net.createServer(() => {}).listen(8081, '127.0.0.1');
net.createServer(() => {}).listen(8082, '127.0.0.1', () => console.log('listening'));
`;

let servers: ChildProcess | undefined;

t.before(async () => {
  const add = spawnSync('ip', ['netns', 'add', NS], { encoding: 'utf8' });
  if (add.status !== 0) throw new Error(`ip netns add ${NS}: ${add.stderr}`);
  spawnSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  servers = spawn('nsenter', [`--net=/run/netns/${NS}`, '--', process.execPath, '-e', SERVERS], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    servers!.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
    servers!.once('exit', (code) => reject(new Error(`the probe test's servers exited (${code})`)));
  });
});

t.teardown(() => {
  servers?.kill('SIGKILL');
  spawnSync('ip', ['netns', 'del', NS]);
});

const cri = {
  runtime: {
    PodSandboxStatus: async () => ({ status: { network: { ip: '' } }, info: { info: JSON.stringify({ netns: `/run/netns/${NS}` }) } }),
  },
} as unknown as CriClient;
const target = { cri, containerId: 'c', podId: 'p' };
const probe = (type: 'http' | 'tcp', port: number, path?: string): Probe => ({ kind: 'readiness', type, port, path, initialDelayMs: 0, periodMs: 1000, timeoutMs: 2000, successThreshold: 1, failureThreshold: 1 });

t.test('tcp: a listening port passes at once, even when its server never speaks; a closed one fails', async (t) => {
  t.same(await runProbe(probe('tcp', 8081), target), { ok: true, output: 'tcp port 8081: ok' }, 'not cut off by its timeout');
  t.same(await runProbe(probe('tcp', 8080), target), { ok: true, output: 'tcp port 8080: ok' });
  const closed = await runProbe(probe('tcp', 8083), target);
  t.equal(closed.ok, false);
  t.match(closed.output, /tcp port 8083: .*(refused|can't connect)/i, `says why: ${closed.output}`);
});

t.test('http: 200 passes; 404, a closed port and a server that never answers fail, saying why', async (t) => {
  t.same(await runProbe(probe('http', 8080, '/'), target), { ok: true, output: 'http GET :8080/: ok' });
  const notFound = await runProbe(probe('http', 8080, '/nope'), target);
  t.equal(notFound.ok, false);
  t.match(notFound.output, /404/, `the status: ${notFound.output}`);
  const closed = await runProbe(probe('http', 8083, '/'), target);
  t.equal(closed.ok, false);
  t.match(closed.output, /refused|can't connect/i, `the refusal: ${closed.output}`);
  const mute = await runProbe(probe('http', 8082, '/'), target);
  t.equal(mute.ok, false, 'a server that never answers fails');
  t.match(mute.output, /http GET :8082\/: no answer within 2 s/, `saying so: ${mute.output}`);
});

t.test("the pod's network is asked for once, not on every probe; a failed lookup is retried", async (t) => {
  let asked = 0;
  let fail = true;
  const counting = {
    runtime: {
      PodSandboxStatus: async () => {
        asked++;
        if (fail) throw new Error('Deadline exceeded');
        return { status: { network: { ip: '' } }, info: { info: JSON.stringify({ netns: `/run/netns/${NS}` }) } };
      },
    },
  } as unknown as CriClient;
  const tgt = { cri: counting, containerId: 'c', podId: 'p' };
  const first = await runProbe(probe('tcp', 8080), tgt);
  t.equal(first.ok, false, 'a lookup that fails fails the probe');
  t.match(first.output, /cannot find the pod's network: Deadline exceeded/);
  fail = false;
  for (let i = 0; i < 3; i++) t.same(await runProbe(probe('tcp', 8080), tgt), { ok: true, output: 'tcp port 8080: ok' });
  t.equal(asked, 2, 'one failed lookup, then one for the three probes that passed');
});

t.test("an answer naming neither an address nor a namespace is not kept: the next probe asks again", async (t) => {
  let asked = 0;
  const blank = {
    runtime: {
      PodSandboxStatus: async () => {
        asked++;
        return asked === 1 ? { status: { network: { ip: '' } }, info: { info: '{}' } } : { status: { network: { ip: '' } }, info: { info: JSON.stringify({ netns: `/run/netns/${NS}` }) } };
      },
    },
  } as unknown as CriClient;
  const tgt = { cri: blank, containerId: 'c', podId: 'p' };
  const first = await runProbe(probe('tcp', 8080), tgt);
  t.match(first, { ok: false, output: /names no network namespace/ }, 'fails, saying why');
  t.same(await runProbe(probe('tcp', 8080), tgt), { ok: true, output: 'tcp port 8080: ok' }, 'then passes once the runtime names it');
  t.equal(asked, 2);
});
