// The lab's own DHT for `lab up --discovery dht`: shoal-dht-bootstrap (three hyperdht nodes: the
// bootstrap node and two persistent ones) in a lab namespace of its own on the lab's bridge,
// reachable from every lab host and from nothing else. The lab has no internet, and its nodes
// must never try Hyperswarm's public bootstrap nodes: every shoald gets --dht-bootstrap with it.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_BOOTSTRAP_PORT } from '../node/discovery/defaults.js';
import { SUBNET_BITS, SUBNET_PREFIX, bridgeNetns, hostNetns } from './names.js';
import { attachNetns } from './netns.js';
import { startDetached } from './procs.js';
import type { LabState } from './state.js';

export const DHT_NODE = 'dht';
export const DHT_ADDRESS = `${SUBNET_PREFIX}3`;
export const DHT_BOOTSTRAP = `${DHT_ADDRESS}:${DEFAULT_BOOTSTRAP_PORT}`;

const here = dirname(fileURLToPath(import.meta.url));
export const DHT_BOOTSTRAP_MAIN = join(here, '..', 'node', 'discovery', 'bootstrap-main.js');

export async function startLabDht(s: LabState, log: (m: string) => void): Promise<void> {
  const ns = hostNetns(s.name, DHT_NODE);
  attachNetns({ bridgeNs: bridgeNetns(s.name), ns, port: `v-${DHT_NODE}`, address: DHT_ADDRESS, bits: SUBNET_BITS });
  const logFile = join(s.labDir, 'logs', `${DHT_NODE}.log`);
  mkdirSync(dirname(logFile), { recursive: true, mode: 0o700 });
  const proc = await startDetached(ns, [process.execPath, DHT_BOOTSTRAP_MAIN, '--host', DHT_ADDRESS, '--port', String(DEFAULT_BOOTSTRAP_PORT)], logFile, {
    ready: { pattern: /^\{"ready":true/m, timeoutMs: 30_000, what: 'the lab DHT (shoal-dht-bootstrap)' },
  });
  s.dht = { netns: ns, bootstrap: DHT_BOOTSTRAP, logFile, proc };
  log(`DHT bootstrap ${DHT_BOOTSTRAP} (netns ${ns}); nodes join with the token only`);
}
