// A manager process holding the replicated object store: the raft node (DiskStorage + gRPC
// transport) and the Store service. Used by the fault test and the benchmark; shoald will embed
// the same parts when it runs the manager role.
//
//   node store-main.js --id 1 --data /var/lib/shoal/raft --raft 127.0.0.1:7001 --api 127.0.0.1:8001 \
//        --peer 1=127.0.0.1:7001,127.0.0.1:8001 --peer 2=...,... --peer 3=...,...
//
// SECURITY: the raft transport and the Store service are plaintext and unauthenticated until the
// mTLS/roles issue lands, so this entry refuses any listen address that is not loopback (or, with
// --allow-netns, any address: only for tests that run it inside a private network namespace).
//
// On start it prints one JSON line {"ready":true,...} on stdout. SIGTERM/SIGINT stop it cleanly.
import { mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { DiskStorage, type WalSyncMode } from '../raft/storage/index.js';
import type { NodeId } from '../raft/types.js';
import { ReplicatedNode, type MemberAddr } from './raftnode/node.js';
import { StoreService } from './storeapi/service.js';

interface Args {
  id: NodeId;
  data: string;
  raft: string;
  api: string;
  peers: Map<NodeId, MemberAddr>;
  join: boolean;
  tickMs: number;
  electionTick: number;
  snapshotEvery: number;
  walSync: WalSyncMode;
  allowNetns: boolean;
}

function usage(msg: string): never {
  process.stderr.write(`store-main: ${msg}\nusage: store-main --id N --data DIR --raft HOST:PORT --api HOST:PORT --peer ID=RAFTADDR,APIADDR ... [--join] [--tick-ms 100] [--election-tick 10] [--snapshot-every 10000] [--wal-sync auto|inline|threadpool]\n`);
  process.exit(2);
}

function isLoopback(addr: string): boolean {
  const host = addr.startsWith('[') ? addr.slice(1, addr.indexOf(']')) : addr.slice(0, addr.lastIndexOf(':'));
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function parse(argv: string[]): Args {
  const a: Partial<Args> & { peers: Map<NodeId, MemberAddr> } = { peers: new Map(), join: false, tickMs: 100, electionTick: 10, snapshotEvery: 10_000, allowNetns: false, walSync: 'auto' };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const v = () => argv[++i] ?? usage(`${f} needs a value`);
    const int = (s: string) => (/^\d+$/.test(s) && Number(s) > 0 ? Number(s) : usage(`${f} needs a positive integer, got ${s}`));
    switch (f) {
      case '--id': a.id = int(v()); break;
      case '--data': a.data = v(); break;
      case '--raft': a.raft = v(); break;
      case '--api': a.api = v(); break;
      case '--join': a.join = true; break;
      case '--allow-netns': a.allowNetns = true; break;
      case '--tick-ms': a.tickMs = int(v()); break;
      case '--election-tick': a.electionTick = int(v()); break;
      case '--snapshot-every': a.snapshotEvery = int(v()); break;
      case '--wal-sync': {
        const m = v();
        if (m !== 'auto' && m !== 'inline' && m !== 'threadpool') usage(`--wal-sync must be auto, inline or threadpool, got ${m}`);
        a.walSync = m;
        break;
      }
      case '--peer': {
        const m = /^(\d+)=([^,]+),([^,]+)$/.exec(v());
        if (!m) usage(`--peer must look like ID=RAFTHOST:PORT,APIHOST:PORT, got ${argv[i]}`);
        a.peers.set(Number(m[1]), { raft: m[2]!, api: m[3]! });
        break;
      }
      default: usage(`unknown flag ${f}`);
    }
  }
  if (!a.id) usage('--id is required');
  if (!a.data) usage('--data is required');
  if (!a.raft) usage('--raft is required');
  if (!a.api) usage('--api is required');
  if (!a.allowNetns) for (const addr of [a.raft, a.api]) if (!isLoopback(addr)) usage(`${addr} is not a loopback address: the store is unauthenticated until mTLS lands, so it listens on loopback only`);
  // --allow-netns is for test hosts in private network namespaces; in the machine's own
  // namespace it would put an unauthenticated store on a real interface.
  if (a.allowNetns && !inNamedNetns()) usage('--allow-netns: this process is not in a named network namespace; run it inside a private one (ip netns exec) or use loopback addresses without the flag');
  if (!a.peers.has(a.id)) a.peers.set(a.id, { raft: a.raft, api: a.api });
  return a as Args;
}

/** True inside a namespace made with `ip netns add` (the machine's own namespace has no name). */
function inNamedNetns(): boolean {
  try {
    return execFileSync('ip', ['netns', 'identify', String(process.pid)], { encoding: 'utf8' }).trim() !== '';
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  mkdirSync(args.data, { recursive: true });
  const log = (m: string) => process.stderr.write(`[manager ${args.id}] ${new Date().toISOString()} ${m}\n`);
  // SHOAL_RAFT_TRACE=1: one line a second with the WAL's write and fdatasync times (profiling).
  const sync = { n: 0, writeMs: 0, syncMs: 0, bytes: 0, inline: 0 };
  const storage = await DiskStorage.open(args.data, {
    logger: { info: log, warn: log },
    syncMode: args.walSync,
    onSync: process.env.SHOAL_RAFT_TRACE
      ? (i) => {
          sync.n++;
          sync.writeMs += i.writeMs;
          sync.syncMs += i.syncMs;
          sync.bytes += i.bytes;
          if (i.inline) sync.inline++;
        }
      : undefined,
  });
  if (process.env.SHOAL_RAFT_TRACE) {
    setInterval(() => {
      if (sync.n > 0) log(`trace: wal records ${sync.n} write ms avg ${(sync.writeMs / sync.n).toFixed(2)} fdatasync ms avg ${(sync.syncMs / sync.n).toFixed(2)} bytes ${sync.bytes} inline ${sync.inline}`);
      Object.assign(sync, { n: 0, writeMs: 0, syncMs: 0, bytes: 0, inline: 0 });
    }, 1000).unref();
  }
  if (!args.join) {
    const fresh = await ReplicatedNode.bootstrap(storage, [...args.peers.keys()]);
    if (fresh) log(`bootstrapped a new raft group with voters ${[...args.peers.keys()].join(',')}`);
  }
  const node = new ReplicatedNode({
    id: args.id,
    storage,
    listen: args.raft,
    members: args.peers,
    tickMs: args.tickMs,
    electionTick: args.electionTick,
    snapshotEvery: args.snapshotEvery,
    log,
  });
  node.onFatal = (e) => {
    log(`exiting: ${e.message}`);
    process.exit(1);
  };
  await node.start();
  const api = new StoreService(node);
  const apiPort = await api.start(args.api);
  process.stdout.write(JSON.stringify({ ready: true, id: args.id, raftPort: node.port, apiPort, pid: process.pid }) + '\n');
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await api.stop();
    await node.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  // Report memory on request (the benchmark reads it): SIGUSR2 prints one JSON line.
  process.on('SIGUSR2', () => {
    const mu = process.memoryUsage();
    process.stdout.write(JSON.stringify({ memory: true, rss: mu.rss, heapUsed: mu.heapUsed, arrayBuffers: mu.arrayBuffers, objects: node.store.size, applied: node.store.applied, logEntries: storage.lastIndex() - storage.firstIndex() + 1 }) + '\n');
  });
}

main().catch((e) => {
  process.stderr.write(`store-main: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
