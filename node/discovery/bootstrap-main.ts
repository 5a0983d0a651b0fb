#!/usr/bin/env node
// shoal-dht-bootstrap: a private DHT for shoald's `--dht-bootstrap` on a network without the
// internet (the lab's, a test's, an air-gapped site's).
//   shoal-dht-bootstrap --host IPv4 [--port 49737] [--nodes 3]
// Prints {"ready":true,"bootstrap":"HOST:PORT","ports":[...]} once every node is up; SIGTERM or
// SIGINT stops it.
import { DEFAULT_BOOTSTRAP_PORT, MIN_NODES, startBootstrapNodes } from './bootstrap-nodes.js';

function usage(msg: string): never {
  process.stderr.write(`shoal-dht-bootstrap: ${msg}\nusage: shoal-dht-bootstrap --host IPv4 [--port ${DEFAULT_BOOTSTRAP_PORT}] [--nodes ${MIN_NODES}]\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let host = '';
  let port = DEFAULT_BOOTSTRAP_PORT;
  let nodes = MIN_NODES;
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const v = () => argv[++i] ?? usage(`${f} needs a value`);
    const num = (s: string) => (/^\d+$/.test(s) ? Number(s) : usage(`${f} needs a number, got ${s}`));
    if (f === '--host') host = v();
    else if (f === '--port') port = num(v());
    else if (f === '--nodes') nodes = num(v());
    else usage(`unknown flag ${f}`);
  }
  if (!host) usage('--host is required (the IPv4 address shoald reaches the nodes at)');
  if (nodes < MIN_NODES) process.stderr.write(`shoal-dht-bootstrap: warning: ${nodes} node(s): peers find each other but cannot connect with fewer than ${MIN_NODES}\n`);
  const b = await startBootstrapNodes({ host, port, nodes });
  process.stdout.write(JSON.stringify({ ready: true, bootstrap: b.bootstrap, ports: b.ports, pid: process.pid }) + '\n');
  const stop = () => {
    void b.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  process.stderr.write(`shoal-dht-bootstrap: ${(e as Error).message}\n`);
  process.exit(1);
});
