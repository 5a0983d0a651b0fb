#!/usr/bin/env -S node --max-semi-space-size=32
// shoald: the node daemon. Flags are documented in node/README.md.
// The shebang gives managers a 32 MiB young generation (Node's default is 16): under write load
// that halves the scavenges and costs about 7 % less CPU per write (benchmarks/raft-vs-etcd).
import { hostname } from 'node:os';
import { isPresetName, type PresetName } from '../gossip/config.js';
import { serveMetrics } from '../manager/metrics.js';
import { createLog, defaultFormat, parseFormat, parseLevel, type LogFormat, type LogLevel } from '../proto/log.js';
import { Daemon } from './daemon.js';
import { readJoinToken, TOKEN_ENV, TokenInputError } from './join-token-input.js';
import { joinHostPort, splitHostPort } from './ports.js';
import { DhtConfigError, parseDhtFlag, resolveDht } from './discovery/config.js';

function usage(msg: string): never {
  process.stderr.write(`shoald: ${msg}\nusage: shoald --state-dir DIR [--listen HOST:PORT] [--advertise HOST:PORT] [--hostname NAME] [--init | --join ADDR [--token-file F | --token T] | --join-dht [--token-file F | --token T]] [--dht=true|false] [--dht-bootstrap HOST:PORT[,...]] [--raft-port N] [--gossip-port N] [--gossip-preset lan|local] [--cri-endpoint unix:///PATH.sock] [--network-endpoint unix:///PATH.sock|none] [--insecure-registry HOST:PORT]... [--cgroup-parent /PATH] [--csi-pool DIR] [--metrics-addr HOST:PORT|off] [--log-level debug|info|warn|error] [--log-format json|text] [--force-new-cluster | --restore BACKUP]\n`);
  process.exit(2);
}

function parse(argv: string[]) {
  const a = { stateDir: '/var/lib/shoal', listen: '0.0.0.0:4242', advertise: '', hostname: hostname(), init: false, join: '', token: undefined as string | undefined, tokenFile: undefined as string | undefined, raftPort: undefined as number | undefined, gossipPort: undefined as number | undefined, gossipPreset: 'lan' as PresetName, criEndpoint: undefined as string | undefined, networkEndpoint: undefined as string | undefined, insecureRegistries: [] as string[], cgroupParent: '/shoal', forceNewCluster: false, restore: undefined as string | undefined, metricsAddr: '127.0.0.1:9323', logLevel: 'info' as LogLevel, logFormat: defaultFormat(process.stderr.isTTY) as LogFormat, joinDht: false, dht: true, dhtBootstrap: undefined as string | undefined, csiPool: undefined as string | undefined };
  for (let i = 0; i < argv.length; i++) {
    let f = argv[i]!;
    // --dht=false and --dht-bootstrap=LIST read as --dht false, --dht-bootstrap LIST
    const eq = f.startsWith('--dht') ? f.indexOf('=') : -1;
    if (eq > 0) {
      argv.splice(i + 1, 0, f.slice(eq + 1));
      f = f.slice(0, eq);
    }
    const v = () => argv[++i] ?? usage(`${f} needs a value`);
    const port = (s: string) => (/^\d+$/.test(s) && Number(s) > 0 && Number(s) < 65536 ? Number(s) : usage(`${f} needs a port number, got ${s}`));
    switch (f) {
      case '--state-dir': a.stateDir = v(); break;
      case '--listen': a.listen = v(); break;
      case '--advertise': a.advertise = v(); break;
      case '--hostname': a.hostname = v(); break;
      case '--init': a.init = true; break;
      case '--join': a.join = v(); break;
      case '--join-dht': a.joinDht = true; break;
      case '--dht': {
        try {
          a.dht = parseDhtFlag(v());
        } catch (e) {
          usage((e as Error).message);
        }
        break;
      }
      case '--dht-bootstrap': a.dhtBootstrap = v(); break;
      case '--token': a.token = v(); break;
      case '--token-file': a.tokenFile = v(); break;
      case '--raft-port': a.raftPort = port(v()); break;
      case '--gossip-port': a.gossipPort = port(v()); break;
      case '--cri-endpoint': {
        const e = v();
        if (!/^unix:\/\/\/\S+$/.test(e)) usage(`--cri-endpoint must be unix:///absolute/path.sock, got ${e}`);
        a.criEndpoint = e;
        break;
      }
      case '--network-endpoint': {
        const e = v();
        if (e !== 'none' && !/^unix:\/\/\/\S+$/.test(e)) usage(`--network-endpoint must be unix:///absolute/path.sock or none, got ${e}`);
        a.networkEndpoint = e;
        break;
      }
      case '--insecure-registry': a.insecureRegistries.push(v()); break;
      case '--force-new-cluster': a.forceNewCluster = true; break;
      case '--restore': a.restore = v(); break;
      case '--metrics-addr': a.metricsAddr = v(); break;
      case '--log-level': {
        const l = v();
        try { a.logLevel = parseLevel(l); } catch (e) { usage((e as Error).message); }
        break;
      }
      case '--log-format': {
        const l = v();
        try { a.logFormat = parseFormat(l); } catch (e) { usage((e as Error).message); }
        break;
      }
      case '--csi-pool': {
        const d = v();
        if (!d.startsWith('/')) usage(`--csi-pool must be an absolute directory (the built-in CSI driver's pool), got ${d}`);
        a.csiPool = d;
        break;
      }
      case '--cgroup-parent': {
        const c = v();
        if (!/^\/[A-Za-z0-9._/-]+$/.test(c) || c.includes('..')) usage(`--cgroup-parent must be an absolute cgroup path like /shoal, got ${c}`);
        a.cgroupParent = c;
        break;
      }
      case '--gossip-preset': {
        const p = v();
        if (!isPresetName(p)) usage(`--gossip-preset must be lan, wan, local or serf-lan, got ${p}`);
        a.gossipPreset = p;
        break;
      }
      default: usage(`unknown flag ${f}`);
    }
  }
  try {
    splitHostPort(a.listen);
  } catch {
    usage(`--listen must be HOST:PORT, got ${a.listen}`);
  }
  if (!a.advertise) {
    const h = splitHostPort(a.listen).host;
    if (h === '0.0.0.0' || h === '::' || h === '') usage(`--listen ${a.listen} is a wildcard: give --advertise HOST:PORT (the address other nodes reach this one at)`);
    a.advertise = a.listen;
  }
  try {
    splitHostPort(a.advertise);
  } catch {
    usage(`--advertise must be HOST:PORT, got ${a.advertise}`);
  }
  if (a.metricsAddr !== 'off') {
    try {
      const { port } = splitHostPort(a.metricsAddr);
      if (port > 65535) throw new Error('port');
    } catch {
      usage(`--metrics-addr must be HOST:PORT (loopback by default: 127.0.0.1:9323) or off, got ${a.metricsAddr}`);
    }
  }
  if (a.init && (a.join || a.joinDht)) usage(`--init and ${a.join ? '--join' : '--join-dht'} exclude each other`);
  if (a.join && a.joinDht) usage('--join ADDR and --join-dht exclude each other (an address needs no DHT)');
  let dht;
  let dhtWarning: string | undefined;
  try {
    const r = resolveDht({ enabled: a.dht, bootstrap: a.dhtBootstrap, env: process.env });
    dht = r.dht;
    dhtWarning = r.warning;
  } catch (e) {
    if (e instanceof DhtConfigError) usage(e.message);
    throw e;
  }
  if (!a.dht && a.dhtBootstrap !== undefined) usage('--dht-bootstrap with --dht=false: give one or the other');
  if (a.joinDht && !dht) usage('--join-dht looks a manager up on the DHT, which is off here (--dht=false, or public bootstrap nodes refused): give --dht-bootstrap HOST:PORT, or --join ADDR');
  if (a.forceNewCluster && a.restore) usage('--force-new-cluster and --restore exclude each other');
  if ((a.forceNewCluster || a.restore) && (a.init || a.join || a.joinDht)) usage(`${a.restore ? '--restore' : '--force-new-cluster'} starts from a manager's existing identity: it excludes --init and --join`);
  if (!a.join && !a.joinDht && (a.token !== undefined || a.tokenFile !== undefined)) usage(`${a.token !== undefined ? '--token' : '--token-file'} needs --join ADDR or --join-dht`);
  let token = '';
  const warnings: string[] = [];
  if (a.join || a.joinDht) {
    let t;
    try {
      t = readJoinToken({ flag: a.token, file: a.tokenFile, env: process.env });
    } catch (e) {
      if (e instanceof TokenInputError) usage(e.message);
      throw e;
    }
    if (!t) usage(`${a.join ? '--join' : '--join-dht'} needs a join token: --token-file F, or the environment variable ${TOKEN_ENV} (or --token T, which every user can see in ps)`);
    token = t.token;
    if (t.warning) warnings.push(t.warning);
    if (t.from === 'flag') warnings.push(`--token puts the join token in the process list, where every user can read it; prefer --token-file F or ${TOKEN_ENV}`);
  }
  // Nothing this daemon starts needs it; keep it out of their environments.
  delete process.env[TOKEN_ENV];
  return { ...a, token, warnings, dhtConfig: dht, dhtWarning };
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const log = createLog({ level: a.logLevel, format: a.logFormat, base: { host: a.hostname } });
  for (const w of a.warnings) log(`shoald: warning: ${w}`);
  // Metrics are an aid, not a duty: a taken port is a warning, not a reason to stay down.
  let metricsAddr: string | null = null;
  if (a.metricsAddr !== 'off') {
    try {
      const { host, port } = splitHostPort(a.metricsAddr);
      const srv = await serveMetrics(host, port);
      const ad = srv.address() as { address: string; port: number };
      metricsAddr = joinHostPort(ad.address, ad.port);
      srv.unref();
      log(`shoald: Prometheus metrics on http://${metricsAddr}/metrics`);
    } catch (e) {
      log(`shoald: warning: cannot serve metrics on ${a.metricsAddr} (${(e as Error).message}); running without them: pick another --metrics-addr, or off`);
    }
  }
  if (a.dhtWarning) log(`shoald: warning: ${a.dhtWarning}`);
  else if (!a.dhtConfig) log('shoald: the DHT is off (--dht=false): this node neither announces nor looks up managers by token');
  else log(`shoald: DHT bootstrap ${a.dhtConfig.public ? "Hyperswarm's public nodes" : a.dhtConfig.bootstrap.join(',')}`);
  const d = new Daemon({ stateDir: a.stateDir, listen: a.listen, advertise: a.advertise, hostname: a.hostname, raftPort: a.raftPort, gossipPort: a.gossipPort, gossipPreset: a.gossipPreset, criEndpoint: a.criEndpoint, networkEndpoint: a.networkEndpoint, insecureRegistries: a.insecureRegistries, cgroupParent: a.cgroupParent, forceNewCluster: a.forceNewCluster, restore: a.restore, dht: a.dhtConfig, csiPool: a.csiPool, log });
  await d.start();
  // Stopping is bounded (open streams get a grace period, then are closed); a second signal
  // exits at once.
  let stopping = false;
  const stop = async (sig: string) => {
    if (stopping) {
      log(`shoald: ${sig} again: exiting without finishing the stop`);
      process.exit(1);
    }
    stopping = true;
    log(`shoald: ${sig}: stopping`);
    await d.stop();
    log('shoald: stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  if (!d.identity && a.init) {
    const r = await (d as any).init();
    // The token stays out of the log (logs are read more widely than the state dir).
    log(`shoald: initialized a cluster at ${r.addr}; print the join command with: shoal --state-dir ${a.stateDir} join-token worker`);
  } else if (!d.identity && (a.join || a.joinDht)) {
    await (d as any).join(a.join, a.token);
  }
  const id = d.identity;
  process.stdout.write(JSON.stringify({ ready: true, stateDir: a.stateDir, socket: d.state.socketPath, nodeId: id?.nodeId ?? null, role: id?.role ?? null, pid: process.pid, metricsAddr }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`shoald: ${(e as Error).message}\n`);
  process.exit(1);
});
