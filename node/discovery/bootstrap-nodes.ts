// A private DHT: the bootstrap node and a few more persistent, non-firewalled nodes on one host
// (what @hyperswarm/testnet builds). For a network without the internet: the lab runs one in a
// namespace of its own, the tests on loopback inside theirs. hyperdht needs at least three such
// nodes: with one or two, lookups work but connections time out, since a peer samples its NAT
// from several DHT nodes before it holepunches (measured in node/discovery/README.md).
import HyperDHT from 'hyperdht';
import { DEFAULT_BOOTSTRAP_PORT, MIN_NODES } from './defaults.js';

export { DEFAULT_BOOTSTRAP_PORT, MIN_NODES };

export interface BootstrapNodes {
  /** host:port to give to `shoald --dht-bootstrap`. */
  bootstrap: string;
  ports: number[];
  close(): Promise<void>;
}

export async function startBootstrapNodes(o: { host: string; port?: number; nodes?: number }): Promise<BootstrapNodes> {
  const port = o.port ?? DEFAULT_BOOTSTRAP_PORT;
  const count = o.nodes ?? MIN_NODES;
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(o.host) || o.host === '0.0.0.0') throw new Error(`the DHT bootstrap host must be the IPv4 address the nodes are reached at (not a wildcard), got ${o.host}`);
  if (!Number.isInteger(count) || count < 1) throw new Error(`--nodes must be at least 1, got ${count}`);
  if (!Number.isInteger(port) || port < 1 || port + count - 1 > 65535) throw new Error(`--port ${port} with ${count} nodes does not fit in 1-65535`);
  const nodes: HyperDHT[] = [];
  try {
    // Bound to the given address only: nothing listens on the host's other interfaces.
    const first = HyperDHT.bootstrapper(port, o.host, { host: o.host });
    nodes.push(first);
    await first.ready();
    const bootstrap = `${o.host}:${port}`;
    for (let i = 1; i < count; i++) {
      const n = new HyperDHT({ bootstrap: [bootstrap], host: o.host, port: port + i, anyPort: false, ephemeral: false, firewalled: false });
      nodes.push(n);
      await n.ready();
    }
    return {
      bootstrap,
      ports: nodes.map((n) => n.address()!.port),
      close: async () => {
        await Promise.all(nodes.map((n) => n.destroy()));
      },
    };
  } catch (e) {
    await Promise.all(nodes.map((n) => n.destroy().catch(() => undefined)));
    throw new Error(`cannot start the DHT bootstrap nodes on ${o.host}:${port}..${port + count - 1}: ${(e as Error).message}`);
  }
}
