// Joining with the token only, on a private DHT on loopback (shoal-dht-bootstrap's three
// hyperdht nodes on 127.0.0.1, started by this test; nothing leaves the machine, and no public
// bootstrap node is ever named). Real daemons in this process: a manager that announces, nodes
// that find it by the token, and the trust cases of issue 17: a wrong or rotated token finds
// nothing, a peer announcing on the right topic with another CA is refused on the digest check,
// and a stranger who reaches a manager through the DHT without the token's secret is refused.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import HyperDHT from 'hyperdht';
import { call, controlClient, localClient } from '../../cli/client.js';
import { newSecret } from '../../manager/ca/tokens.js';
import { removeTestDir } from '../../test/teardown.js';
import { Daemon } from '../daemon.js';
import { JoinError, joinCluster } from '../join.js';
import { freePort } from '../ports.js';
import { DhtAnnouncer } from './announcer.js';
import { startBootstrapNodes, type BootstrapNodes } from './bootstrap-nodes.js';
import type { DhtConfig } from './config.js';
import { joinThroughDht } from './dht-join.js';
import { dhtTopic } from './topic.js';
import { DhtTunnel } from './tunnel.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-dht-${process.pid}-`));
const daemons: Daemon[] = [];
const logs = new Map<string, string[]>();
let boot: BootstrapNodes | undefined;
const announcers: DhtAnnouncer[] = [];
t.teardown(async () => {
  for (const a of announcers) await a.stop().catch(() => undefined);
  for (const d of daemons) await d.stop().catch(() => undefined);
  await boot?.close().catch(() => undefined);
  await removeTestDir(dir);
});

/** Three consecutive free ports are needed; a random base, tried again if one is taken. */
async function privateDht(): Promise<BootstrapNodes> {
  let last: Error | undefined;
  for (let i = 0; i < 5; i++) {
    try {
      return await startBootstrapNodes({ host: '127.0.0.1', port: 20_000 + randomInt(40_000) });
    } catch (e) {
      last = e as Error;
    }
  }
  throw last!;
}

async function daemon(name: string, dht: DhtConfig | undefined): Promise<Daemon> {
  const lines: string[] = [];
  logs.set(name, lines);
  const port = await freePort('127.0.0.1');
  const d = new Daemon({
    stateDir: join(dir, name),
    listen: `127.0.0.1:${port}`,
    advertise: `127.0.0.1:${port}`,
    hostname: name,
    gossipPreset: 'local',
    networkEndpoint: 'none', // in the machine's own namespace: no bridge or VXLAN device here
    dht,
    log: (m) => {
      lines.push(m);
      if (process.env.SHOAL_TEST_LOG) process.stderr.write(`[${name}] ${m}\n`);
    },
  });
  daemons.push(d);
  await d.start();
  return d;
}

const local = (d: Daemon) => localClient({ stateDir: d.state.dir });
const control = (d: Daemon) => controlClient({ stateDir: d.state.dir });

async function until<T>(what: string, f: () => Promise<T | undefined | false> | T | undefined | false, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const logged = (name: string, re: RegExp) => until(`${name} to log ${re}`, () => logs.get(name)!.some((l) => re.test(l)));
/** The same CA digest, another secret: a wrong token for this cluster. */
const wrongSecret = (token: string) => token.replace(/-[0-9a-z]+$/, `-${newSecret()}`);
const noop = () => undefined;

t.test('token-only joins through the DHT, and the trust cases', async (t) => {
  boot = await privateDht();
  const dht: DhtConfig = { bootstrap: [boot.bootstrap], public: false };
  t.match(boot.bootstrap, /^127\.0\.0\.1:\d+$/, 'the private DHT runs on loopback');

  const m1 = await daemon('m1', dht);
  const init = await call<{ worker_token: string; manager_token: string; addr: string }>(local(m1), 'Init', {});
  await logged('m1', /dht: announced on/);
  let m2: Daemon | undefined;

  await t.test('a worker joins with the token only; the node then talks to the managers it was named', async (t) => {
    const w1 = await daemon('w1', dht);
    const t0 = Date.now();
    const r = await call<{ role: string; cluster_id: string }>(local(w1), 'Join', { addr: '', token: init.worker_token }, 90_000);
    t.equal(r.role, 'worker');
    t.comment(`join through the DHT took ${Date.now() - t0} ms`);
    t.same(JSON.parse(readFileSync(join(w1.state.dir, 'managers.json'), 'utf8')), [init.addr], "managers.json holds m1's API address (from the join answer)");
    t.ok(logs.get('w1')!.some((l) => /found manager [0-9a-f]{12}… found on the DHT/.test(l)), 'the log says the manager was found on the DHT');
    await until('w1 to be ready in node ls', async () => {
      const r = await call<{ nodes: { hostname: string; role: string; status: string }[] }>(control(m1), 'ListNodes', {});
      return r.nodes.some((n) => n.hostname === 'w1' && n.role === 'worker' && n.status === 'ready');
    }, 60_000);
    t.pass('w1 is a ready worker in node ls');
  });

  await t.test('a manager joins with the manager token only and announces too', async (t) => {
    m2 = await daemon('m2', dht);
    const r = await call<{ role: string }>(local(m2), 'Join', { addr: '', token: init.manager_token }, 90_000);
    t.equal(r.role, 'manager');
    await logged('m2', /dht: announced on/);
  });

  await t.test('a wrong secret finds nothing on the DHT, with the error the user sees', async (t) => {
    const w = await daemon('w-wrong', dht);
    const err = await call(local(w), 'Join', { addr: '', token: wrongSecret(init.worker_token) }, 90_000).then(
      () => undefined,
      (e: Error) => e.message,
    );
    t.match(err, /found no manager for this token on the DHT within 15 s .* the token is wrong or was rotated/);
    t.notOk(existsSync(join(w.state.dir, 'identity', 'node.json')), 'no identity');
  });

  await t.test("the right secret but a peer with another CA on the topic: refused on the digest check, the token never sent", async (t) => {
    // Another cluster (its own CA, DHT off) and an announcer that puts it on this token's topic:
    // what someone who learned the token could do. No real manager is on the topic: only it.
    const evil = await daemon('evil', undefined);
    await call(local(evil), 'Init', {});
    const victimToken = wrongSecret(init.worker_token); // a token of m1's CA whose topic nobody else announces
    const topic = dhtTopic(victimToken);
    const a = new DhtAnnouncer({ dht, target: evil.o.advertise, topics: () => [topic], log: noop }).start();
    announcers.push(a);
    await until('the fake announcement', () => a.status().reachable && a.status().topics === 1);
    const issued = () => logs.get('evil')!.filter((l) => /ca: issued/.test(l)).length;
    const before = issued();
    const err = await joinThroughDht({ token: victimToken, dht, hostname: 'x', advertise: '127.0.0.1:1', log: noop, lookupMs: 10_000 }).then(
      () => undefined,
      (e: Error) => e,
    );
    t.type(err, JoinError);
    t.match(err?.message, /refusing to join manager [0-9a-f]{12}… found on the DHT: its CA bundle has digest \w+, but the token expects \w+/);
    t.match(err?.message, /none is a manager of the cluster the token names/);
    t.equal(issued(), before, 'the other cluster issued nothing');
    await a.stop();
  });

  await t.test('a stranger who learns the topic reaches a manager but is refused without the secret', async (t) => {
    const d = new HyperDHT({ bootstrap: dht.bootstrap });
    try {
      await d.ready();
      const keys = new Map<string, Buffer>();
      const records: unknown[] = [];
      for await (const reply of d.lookup(dhtTopic(init.worker_token))) {
        for (const p of reply.peers) {
          keys.set(p.publicKey.toString('hex'), p.publicKey);
          records.push(p);
        }
      }
      t.ok(keys.size >= 1, 'the topic alone leads to the managers');
      // What the DHT holds in clear: a public key (fresh at each start) and the DHT nodes relaying
      // to it; no cluster name, id, token or API address.
      for (const r of records as { publicKey: Buffer; relayAddresses: { host: string; port: number }[] }[]) {
        t.same(Object.keys(r).sort(), ['publicKey', 'relayAddresses'], 'a record is a public key and relay addresses');
        const text = JSON.stringify(r) + r.publicKey.toString('hex');
        for (const secret of [init.addr, init.worker_token, daemons[0]!.identity!.clusterId, daemons[0]!.identity!.nodeId]) t.notOk(text.includes(secret), 'it names nothing of the cluster');
        t.ok(r.relayAddresses.length > 0 && r.relayAddresses.every((a) => `${a.host}:${a.port}` !== init.addr), "relays are DHT nodes' UDP addresses, never the manager's API address");
      }
      const tunnel = await DhtTunnel.open(d, [...keys.values()][0]!);
      try {
        const err = await joinCluster({ addr: tunnel.addr, token: wrongSecret(init.worker_token), hostname: 'stranger', advertise: '127.0.0.1:1', label: 'the DHT peer' }).then(
          () => undefined,
          (e: Error) => e,
        );
        t.match(err?.message, /the manager at the DHT peer refused the join: the join token's secret is not valid for this cluster/);
      } finally {
        tunnel.close();
      }
    } finally {
      await d.destroy();
    }
  });

  await t.test('rotating a token changes its topic: the old one is withdrawn, the new one found', async (t) => {
    const r = await call<{ worker: string }>(control(m1), 'GetJoinTokens', { rotate_worker: true, rotate_manager: false });
    t.not(r.worker, init.worker_token);
    // Every manager follows the rotation from its own replica and leaves the old topic.
    for (const m of ['m1', ...(m2 ? ['m2'] : [])]) await logged(m, /dht: left topic [0-9a-f]{12}… \(its token was rotated\)/);
    const old = await joinThroughDht({ token: init.worker_token, dht, hostname: 'x', advertise: '127.0.0.1:1', log: noop, lookupMs: 5000 }).then(
      () => undefined,
      (e: Error) => e.message,
    );
    t.match(old, /found no manager for this token on the DHT/);
    const w2 = await daemon('w2', dht);
    const j = await call<{ role: string }>(local(w2), 'Join', { addr: '', token: r.worker }, 90_000);
    t.equal(j.role, 'worker', 'the rotated token joins through the DHT');
  });

  await t.test('with the DHT off: a join needs an address, and says so; an address still works', async (t) => {
    const w = await daemon('w-nodht', undefined);
    const err = await call(local(w), 'Join', { addr: '', token: init.manager_token }).then(
      () => undefined,
      (e: Error) => e.message,
    );
    t.match(err, /join needs the address of a manager \(HOST:PORT\): this shoald runs without the DHT/);
    const tokens = await call<{ worker: string }>(control(m1), 'GetJoinTokens', {});
    const r = await call<{ role: string }>(local(w), 'Join', { addr: init.addr, token: tokens.worker }, 60_000);
    t.equal(r.role, 'worker', 'a join by address needs no DHT');
  });
});

t.test('a manager whose DHT does not answer still serves joins by address', async (t) => {
  const dead = await freePort('127.0.0.1', true); // nothing listens there
  const m = await daemon('m-nodht', { bootstrap: [`127.0.0.1:${dead}`], public: false });
  const init = await call<{ worker_token: string; addr: string }>(local(m), 'Init', {});
  await logged('m-nodht', /dht: cannot reach the DHT \(no bootstrap node of 127\.0\.0\.1:\d+ answered\): joins by address still work/);
  const w = await daemon('w-addr', undefined);
  const r = await call<{ role: string }>(local(w), 'Join', { addr: init.addr, token: init.worker_token }, 60_000);
  t.equal(r.role, 'worker');
});

t.test('a DHT that does not answer: a clear error, in bounded time', async (t) => {
  const port = await freePort('127.0.0.1', true);
  const err = await joinThroughDht({
    token: 'SHL-1-' + 'a'.repeat(50) + '-' + newSecret(),
    dht: { bootstrap: [`127.0.0.1:${port}`], public: false },
    hostname: 'x',
    advertise: '127.0.0.1:1',
    log: noop,
    readyMs: 3000,
  }).then(
    () => undefined,
    (e: Error) => e.message,
  );
  t.match(err, /cannot reach the DHT: no bootstrap node of 127\.0\.0\.1:\d+ answered within 3 s/);
});
