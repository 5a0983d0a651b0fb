// The node resolver on loopback: cluster names answered from a cluster state by the asker's
// address, over UDP and TCP; a long answer truncated over UDP (TC) and whole over TCP; other
// names forwarded only when an upstream is configured (a small UDP responder in this test stands
// for the upstream resolver: there is none to reach from here); malformed queries get FORMERR.
import t from 'tap';
import dgram from 'node:dgram';
import net from 'node:net';
import type { ClusterState } from '../proto/network/types.js';
import { Resolver } from './dns.js';
import { RCODE, buildAnswer, buildQuery, parseAnswer, parseQuery } from './dns-message.js';
import { resolveName } from './view.js';

const many = Array.from({ length: 40 }, (_, i) => `10.1.2.${i + 2}`);
const state: ClusterState = {
  node_id: 'n1', nodes: [{ id: 'n1', underlay_addr: '10.99.0.11' }, { id: 'n2', underlay_addr: '10.99.0.12' }], attachments: [], vip_range: '10.255.0.0/16', dns_upstreams: [],
  networks: [
    { id: 'a', name: 'a', vni: 4096, subnet: '10.1.0.0/16', internal: false, node_subnets: [] },
    { id: 'b', name: 'b', vni: 4097, subnet: '10.2.0.0/16', internal: false, node_subnets: [] },
  ],
  services: [
    { id: 's1', name: 'web', endpoint_mode: 0, vips: [{ network_id: 'a', address: '10.255.0.2' }], network_ids: ['a'], ports: [],
      backends: [
        { task_id: 't1', node_id: 'n1', ready: true, name: 'web.1', addresses: [{ network_id: 'a', address: '10.1.1.2' }] },
        { task_id: 't2', node_id: 'n2', ready: false, name: 'web.2', addresses: [{ network_id: 'a', address: '10.1.2.2' }] },
        { task_id: 't3', node_id: 'gone', ready: true, name: 'web.3', addresses: [{ network_id: 'a', address: '10.1.3.2' }] },
      ] },
    { id: 's2', name: 'big', endpoint_mode: 1, vips: [], network_ids: ['a'], ports: [],
      backends: many.map((a, i) => ({ task_id: `b${i}`, node_id: 'n2', ready: true, name: '', addresses: [{ network_id: 'a', address: a }] })) },
  ],
};
// Askers by address: 127.0.0.1 is a pod on network a, 127.0.0.2 one on b; anything else is no pod.
const podNets: Record<string, string[]> = { '127.0.0.1': ['a'], '127.0.0.2': ['b'] };
let upstreams: string[] = [];

const res = new Resolver({
  address: '127.0.0.1', log: () => {},
  upstreams: () => upstreams,
  lookup: (client, name) => {
    const nets = podNets[client];
    if (!nets) return undefined;
    const a = resolveName(state, nets, name);
    return a ? { known: true, addrs: a } : { known: false, addrs: [] };
  },
});

t.test('answers from the cluster state, per network', async (t) => {
  const ask = (client: string, name: string) => res.answer(buildQuery(7, name), client, true).then((b) => parseAnswer(b!));
  t.same((await ask('127.0.0.1', 'web')).addrs, ['10.255.0.2'], 'SERVICE -> VIP');
  t.same((await ask('127.0.0.1', 'WEB.')).addrs, ['10.255.0.2'], 'case and the trailing dot do not matter');
  t.same((await ask('127.0.0.1', 'tasks.web')).addrs, ['10.1.1.2'], 'tasks.SERVICE -> ready tasks on nodes that are up');
  t.same((await ask('127.0.0.1', 'web.1')).addrs, ['10.1.1.2'], 'a task name -> its address');
  t.equal((await ask('127.0.0.2', 'web')).rcode, RCODE.NXDOMAIN, 'not on the asker\'s network: NXDOMAIN');
  t.equal((await ask('127.0.0.9', 'web')).rcode, RCODE.REFUSED, 'an asker that is no pod: REFUSED');
  t.equal((await ask('127.0.0.1', 'example.com')).rcode, RCODE.NXDOMAIN, 'outside names with no upstream: NXDOMAIN');
  const aaaa = parseAnswer((await res.answer(buildQuery(8, 'web', 28), '127.0.0.1', true))!);
  t.same([aaaa.rcode, aaaa.addrs], [RCODE.NOERROR, []], 'AAAA for a cluster name: no data, no error');
  const bad = await res.answer(Buffer.from([1, 2, 3, 4, 5]), '127.0.0.1', true);
  t.equal(parseAnswer(Buffer.concat([bad!, Buffer.alloc(0)])).rcode, RCODE.FORMERR, 'a malformed query: FORMERR');
});

t.test('UDP truncates, TCP answers whole, upstream forwarding when configured', async (t) => {
  // On loopback, on a free port (53 is the real resolver's; this one is the test's own).
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()));
  const port = probe.address().port;
  probe.close();
  const r2 = new Resolver({ address: '127.0.0.1', port, log: () => {}, upstreams: () => upstreams, lookup: (c, n) => { const a = resolveName(state, podNets[c] ?? ['a'], n); return a ? { known: true, addrs: a } : { known: false, addrs: [] }; } });
  await r2.ensureBound();
  t.teardown(() => r2.close());
  const udp = dgram.createSocket('udp4');
  t.teardown(() => udp.close());
  const askUdp = (name: string) => new Promise<ReturnType<typeof parseAnswer>>((resolve) => {
    udp.once('message', (m) => resolve(parseAnswer(m)));
    udp.send(buildQuery(9, name), port, '127.0.0.1');
  });
  const u = await askUdp('big');
  t.ok(u.tc, 'UDP answer for 40 tasks has TC set');
  t.ok(u.addrs.length < 40 && u.addrs.length > 0, `  and carries ${u.addrs.length} of them (512 bytes)`);
  const tcp = await new Promise<ReturnType<typeof parseAnswer>>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      const q = buildQuery(10, 'big');
      const len = Buffer.alloc(2);
      len.writeUInt16BE(q.length);
      s.write(Buffer.concat([len, q]));
    });
    let buf = Buffer.alloc(0);
    s.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) { s.destroy(); resolve(parseAnswer(buf.subarray(2))); }
    });
    s.on('error', reject);
  });
  t.same(tcp.addrs.sort(), [...many].sort(), 'over TCP all 40');
  t.notOk(tcp.tc, '  without TC');

  // An upstream that answers one name.
  const up = dgram.createSocket('udp4');
  await new Promise<void>((r) => up.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => up.close());
  up.on('message', (m, ri) => up.send(buildAnswer(parseQuery(m), ['192.0.2.7'], RCODE.NOERROR, 60, true), ri.port, ri.address));
  t.equal((await askUdp('example.com')).rcode, RCODE.NXDOMAIN, 'no upstream configured: NXDOMAIN');
  upstreams = [`127.0.0.1:${up.address().port}`];
  t.same((await askUdp('example.com')).addrs, ['192.0.2.7'], 'with an upstream: its answer');
  t.same((await askUdp('web')).addrs, ['10.255.0.2'], 'cluster names are still ours');
  upstreams = [];
});
