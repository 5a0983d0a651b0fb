#!/usr/bin/env node
// shoal-net: the built-in network plugin on its own.
//   shoal-net --listen unix:///var/lib/shoal/plugins/network.sock --state /var/lib/shoal/network
//     --underlay-addr 10.99.0.11 [--dns-address 169.254.53.53] [--teardown]
import { NetworkPlugin } from './plugin.js';
import { serveNetworkPlugin } from './server.js';

const USAGE = 'usage: shoal-net --listen unix:///PATH.sock --state DIR --underlay-addr ADDR [--dns-address ADDR] [--teardown]';

function usage(msg: string): never {
  process.stderr.write(`shoal-net: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let listen = '';
  let stateDir = '';
  let underlay = '';
  let dnsAddress: string | undefined;
  let teardown = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const val = () => inline ?? argv[++i] ?? usage(`${flag} needs a value`);
    switch (flag) {
      case '--listen': listen = val(); break;
      case '--state': stateDir = val(); break;
      case '--underlay-addr': underlay = val(); break;
      case '--dns-address': dnsAddress = val(); break;
      case '--teardown': teardown = true; break;
      case '-h': case '--help': usage('help');
      // eslint-disable-next-line no-fallthrough
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!teardown && !listen.startsWith('unix:///')) usage('--listen must be unix:///absolute/path.sock');
  if (!stateDir.startsWith('/')) usage('--state must be an absolute directory');
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(underlay)) usage('--underlay-addr must be this node\'s IPv4 address (VXLAN packets go to and from it)');
  if (dnsAddress !== undefined && !/^\d{1,3}(\.\d{1,3}){3}$/.test(dnsAddress)) usage('--dns-address must be an IPv4 address');
  if (process.getuid && process.getuid() !== 0) usage('must run as root (it configures interfaces and nftables)');
  const plugin = new NetworkPlugin({ stateDir, underlayAddr: underlay, dnsAddress });
  await plugin.start();
  if (teardown) {
    await plugin.teardown();
    process.stderr.write('shoal-net: removed every interface, nft table and pod attachment this plugin made\n');
    process.exit(0);
  }
  const sock = listen.slice('unix://'.length);
  const server = await serveNetworkPlugin(plugin, sock);
  process.stderr.write(`shoal-net: serving the network plugin on ${listen}, state ${stateDir}, underlay ${underlay}\n`);
  const shutdown = () => {
    // The data path stays: pods keep their network while the plugin is away; a restart reconciles.
    server.tryShutdown(() => { void plugin.close().then(() => process.exit(0)); });
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((e) => {
  process.stderr.write(`shoal-net: ${(e as Error).message}\n`);
  process.exit(1);
});
