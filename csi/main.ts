#!/usr/bin/env node
// shoal-csi: the built-in CSI driver on its own (Identity, Controller and Node on one socket).
//   shoal-csi --endpoint unix:///run/shoal/csi.sock --pool /var/lib/shoal/pool --node-id NODE
//     [--registry-dir DIR] [--name NAME] [--capacity SIZE] [--watch-interval MS] [--fence-grace MS]
import { DEFAULT_NAME, startDriver } from './index.js';
import { parseSize } from './size.js';

const USAGE = 'usage: shoal-csi --endpoint unix:///PATH.sock --pool DIR --node-id ID [--registry-dir DIR] [--name NAME] [--capacity SIZE] [--watch-interval MS] [--fence-grace MS]';

function usage(msg: string): never {
  process.stderr.write(`shoal-csi: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const o: Record<string, string> = {};
  const known = ['--endpoint', '--pool', '--node-id', '--registry-dir', '--name', '--capacity', '--watch-interval', '--fence-grace'];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') usage('help');
    const eq = a.indexOf('=');
    const flag = eq > 0 ? a.slice(0, eq) : a;
    if (!known.includes(flag)) usage(`unknown argument ${a}`);
    const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (v === undefined || v === '') usage(`${flag} needs a value`);
    o[flag] = v;
  }
  const endpoint = o['--endpoint'] ?? '';
  if (!endpoint.startsWith('unix:///')) usage('--endpoint must be unix:///absolute/path.sock');
  const pool = o['--pool'] ?? '';
  if (!pool.startsWith('/')) usage('--pool must be an absolute directory');
  const nodeId = o['--node-id'] ?? '';
  if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(nodeId)) usage('--node-id must be 1-128 characters: letters, digits, . _ : - (starting with a letter or digit)');
  const registryDir = o['--registry-dir'];
  if (registryDir !== undefined && !registryDir.startsWith('/')) usage('--registry-dir must be an absolute directory');
  const name = o['--name'] ?? DEFAULT_NAME;
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$/.test(name)) usage('--name must be a domain-style name of at most 63 characters (letters, digits, dots, dashes), e.g. block.csi.shoal.io');
  let capacityBytes = 0;
  if (o['--capacity'] !== undefined) { try { capacityBytes = parseSize(o['--capacity']); } catch (e) { usage(`--capacity: ${(e as Error).message}`); } }
  const num = (f: string, def: number) => {
    if (o[f] === undefined) return def;
    const n = Number(o[f]);
    if (!Number.isInteger(n) || n <= 0) usage(`${f} must be a positive number of milliseconds`);
    return n;
  };
  const watchIntervalMs = num('--watch-interval', 1000);
  const fenceGraceMs = num('--fence-grace', 3 * watchIntervalMs + 2000);
  if (process.getuid && process.getuid() !== 0) usage('must run as root (loop devices and mounts need it)');

  const socket = endpoint.slice('unix://'.length);
  const d = await startDriver({ socket, poolDir: pool, nodeId, registryDir, name, capacityBytes, watchIntervalMs, fenceGraceMs });
  process.stderr.write(`shoal-csi: ${name} serving CSI on ${endpoint} for node ${nodeId}, pool ${d.driver.pool.dir} (${d.driver.pool.id})${d.registration ? `, registered through ${d.registration.socket}` : ''}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1);
    stopping = true;
    setTimeout(() => process.exit(0), 3000).unref();
    void d.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  process.stderr.write(`shoal-csi: ${(e as Error).message}\n`);
  process.exit(1);
});
