// The lab's own image registry: Debian's docker-registry in a namespace of its own on the lab's
// bridge (reachable from every lab host, from nothing else), seeded at `lab up` with a small
// image built from Debian's busybox-static (the runtime's test-image builder, plus the applets a
// demo wants: httpd, nc, wget). The lab's nodes pull from it over plain HTTP.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SUBNET_BITS, SUBNET_PREFIX, bridgeNetns, hostNetns } from './names.js';
import { attachNetns } from './netns.js';
import { startDetached } from './procs.js';
import { run } from './sh.js';
import type { LabState } from './state.js';

export const REGISTRY_NODE = 'registry';
export const REGISTRY_ADDRESS = `${SUBNET_PREFIX}2`;
export const REGISTRY_PORT = 5000;
export const REGISTRY_HOST = `${REGISTRY_ADDRESS}:${REGISTRY_PORT}`;
/** What the lab's registry serves (also as :latest), and a second version for updates. */
export const LAB_IMAGE = `${REGISTRY_HOST}/busybox:1`;
export const LAB_IMAGE_2 = `${REGISTRY_HOST}/busybox:2`;

const here = dirname(fileURLToPath(import.meta.url));
const SEED_MAIN = join(here, 'seed-registry.js');

/** Creates the registry's host, starts docker-registry there and pushes the lab image. */
export async function startLabRegistry(s: LabState, log: (m: string) => void): Promise<void> {
  const ns = hostNetns(s.name, REGISTRY_NODE);
  attachNetns({ bridgeNs: bridgeNetns(s.name), ns, port: `v-${REGISTRY_NODE}`, address: REGISTRY_ADDRESS, bits: SUBNET_BITS });
  const dir = join(s.labDir, 'registry');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cfg = join(dir, 'config.yml');
  writeFileSync(cfg, [
    'version: 0.1',
    'log:', '  level: info', '  accesslog:', '    disabled: true',
    'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'data')}`, '  delete:', '    enabled: true',
    'http:', `  addr: ${REGISTRY_HOST}`,
  ].join('\n') + '\n');
  const logFile = join(s.labDir, 'logs', `${REGISTRY_NODE}.log`);
  mkdirSync(dirname(logFile), { recursive: true, mode: 0o700 });
  const proc = await startDetached(ns, ['docker-registry', 'serve', cfg], logFile, { ready: { pattern: /listening on/, timeoutMs: 30_000, what: 'the lab registry (docker-registry)' } });
  s.registry = { netns: ns, address: REGISTRY_ADDRESS, port: REGISTRY_PORT, image: LAB_IMAGE, logFile, proc };
  // The push runs inside the registry's namespace: the root namespace has no route to the lab.
  run(['ip', 'netns', 'exec', ns, process.execPath, SEED_MAIN, REGISTRY_HOST], { timeoutMs: 60_000 });
  log(`registry ${REGISTRY_HOST} (netns ${ns}) serving ${LAB_IMAGE}`);
}
