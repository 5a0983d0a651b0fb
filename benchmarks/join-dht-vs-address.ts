// Join latency: `shoal join` (the daemon's Join call, as the CLI makes it over the local socket)
// with the token only, through a private DHT on loopback, beside the same join by address.
// One manager (DHT on) and, per run, a fresh daemon that joins; the two kinds alternate.
//   node dist/benchmarks/join-dht-vs-address.js [--runs 5]
// Prints each join, then the medians and the load average. Everything stays on 127.0.0.1 (the
// DHT is shoal-dht-bootstrap's three nodes started here); nothing is left behind.
import { mkdtempSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, localClient } from '../cli/client.js';
import { Daemon } from '../node/daemon.js';
import { startBootstrapNodes, type BootstrapNodes } from '../node/discovery/bootstrap-nodes.js';
import type { DhtConfig } from '../node/discovery/config.js';
import { freePort } from '../node/ports.js';
import { removeTestDir } from '../test/teardown.js';
import { checkFlags, intFlag, load, median, secs, withCleanup } from './bench-util.js';

const PROG = 'join-dht-vs-address';
const argv = process.argv.slice(2);
checkFlags(PROG, argv, ['--runs'], `usage: node dist/benchmarks/${PROG}.js [--runs 5]`);
const runs = intFlag(PROG, argv, '--runs', 5);
const dir = mkdtempSync(join(tmpdir(), `shoal-bench-join-${process.pid}-`));
const daemons: Daemon[] = [];
let boot: BootstrapNodes | undefined;

async function daemon(name: string, dht: DhtConfig | undefined): Promise<Daemon> {
  const port = await freePort('127.0.0.1');
  const d = new Daemon({ stateDir: join(dir, name), listen: `127.0.0.1:${port}`, advertise: `127.0.0.1:${port}`, hostname: name, gossipPreset: 'local', networkEndpoint: 'none', dht, log: () => undefined });
  daemons.push(d);
  await d.start();
  return d;
}

await withCleanup(
  PROG,
  async () => {
    boot = await startBootstrapNodes({ host: '127.0.0.1', port: 20_000 + randomInt(40_000) });
    const dht: DhtConfig = { bootstrap: [boot.bootstrap], public: false };
    const m1 = await daemon('m1', dht);
    const init = await call<{ worker_token: string; addr: string }>(localClient({ stateDir: m1.state.dir }), 'Init', {});
    // Until the manager's announcement is on the DHT, a token-only join would wait for it.
    const t0 = Date.now();
    while (!(m1 as unknown as { announcer?: { status(): { reachable: boolean; topics: number } } }).announcer?.status().reachable) {
      if (Date.now() - t0 > 30_000) throw new Error('the manager did not announce itself on the DHT within 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const times: Record<'dht' | 'address', number[]> = { dht: [], address: [] };
    for (let i = 1; i <= runs; i++) {
      for (const kind of (i % 2 ? ['dht', 'address'] : ['address', 'dht']) as ('dht' | 'address')[]) {
        const w = await daemon(`w-${kind}-${i}`, dht);
        const s = Date.now();
        await call(localClient({ stateDir: w.state.dir }), 'Join', { addr: kind === 'address' ? init.addr : '', token: init.worker_token }, 120_000);
        const ms = Date.now() - s;
        times[kind].push(ms / 1000);
        process.stdout.write(`run ${i}: join by ${kind.padEnd(7)} ${secs(ms / 1000)} s\n`);
        await w.stop();
      }
    }
    return `join, median of ${runs}: by DHT (token only) ${secs(median(times.dht))} s, by address ${secs(median(times.address))} s; load average ${load()}`;
  },
  async () => {
    for (const d of daemons) await d.stop().catch(() => undefined);
    await boot?.close().catch(() => undefined);
    await removeTestDir(dir);
    return [];
  },
);
