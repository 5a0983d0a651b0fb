// `shoal join --token T` without an address: the token's topic (topic.ts) is looked up on the
// DHT; each manager found there is tried in turn through a Noise stream (tunnel.ts): its CA must
// match the digest in the token, or the next one is tried (anyone can announce on a topic they
// learned, and gains nothing by it); the first that passes gets the CSR with the token, exactly
// as a join by address. The node then talks to the managers the issuing manager named, over the
// cluster's own mTLS: the DHT only found them.
import { connect } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type HyperDHT from 'hyperdht';
import { BadTokenError } from '../../manager/ca/tokens.js';
import { JoinError, fetchVerifiedCA, joinCluster, type JoinResult } from '../join.js';
import { splitHostPort } from '../ports.js';
import { describeBootstrap, dhtReached, openDht, type DhtConfig } from './config.js';
import { dhtTopic, topicLabel } from './topic.js';
import { DhtTunnel } from './tunnel.js';

export interface DhtJoinOptions {
  token: string;
  dht: DhtConfig;
  hostname: string;
  advertise: string;
  log(m: string): void;
  /** How long to look for a manager on the topic (a manager may be announcing just now). */
  lookupMs?: number;
  /** How long the first contact with the bootstrap nodes may take. */
  readyMs?: number;
}

export type DhtJoinResult = JoinResult & { via: string; foundMs: number };

const OR_ADDRESS = 'or join by address: shoal join --token-file F MANAGER:PORT';

export async function joinThroughDht(o: DhtJoinOptions): Promise<DhtJoinResult> {
  let topic: Buffer;
  try {
    topic = dhtTopic(o.token);
  } catch (e) {
    if (e instanceof BadTokenError) throw new JoinError(e.message);
    throw e;
  }
  const t0 = Date.now();
  const dht = openDht(o.dht);
  try {
    const readyMs = o.readyMs ?? 20_000;
    const ready = await within(dht.ready().then(() => true), readyMs, false);
    if (!ready || !dhtReached(dht)) {
      throw new JoinError(`cannot reach the DHT: no bootstrap node of ${describeBootstrap(o.dht)} answered within ${readyMs / 1000} s; check this shoald's --dht-bootstrap, ${OR_ADDRESS}`);
    }
    const peers = await findPeers(dht, topic, o.lookupMs ?? 15_000);
    const foundMs = Date.now() - t0;
    if (peers.length === 0) {
      throw new JoinError(`found no manager for this token on the DHT within ${(o.lookupMs ?? 15_000) / 1000} s (topic ${topicLabel(topic)}…): the token is wrong or was rotated (its DHT topic derives from its secret; get the current one with "shoal join-token worker|manager" on a manager), or no manager of the cluster is on this DHT (shoald --dht=false, or other --dht-bootstrap nodes); ${OR_ADDRESS}`);
    }
    o.log(`dht: ${peers.length} peer(s) on topic ${topicLabel(topic)}… after ${foundMs} ms`);
    const refused: string[] = [];
    for (const pk of peers) {
      const label = `manager ${pk.toString('hex').slice(0, 12)}… found on the DHT`;
      const tunnel = await DhtTunnel.open(dht, pk);
      try {
        let caPem: string;
        try {
          caPem = await fetchVerifiedCA(tunnel.addr, o.token, label);
        } catch (e) {
          if (!(e instanceof JoinError)) throw e;
          refused.push(tunnel.lastError ? `${e.message} (DHT stream: ${tunnel.lastError})` : e.message);
          continue;
        }
        let r: JoinResult;
        try {
          r = await joinCluster({ addr: tunnel.addr, token: o.token, hostname: o.hostname, advertise: o.advertise, label, caPem });
        } catch (e) {
          // The CA bundle is no secret: a peer may serve it and still hold no manager certificate
          // of that CA. The pinned TLS handshake then fails before the token is sent: try the next.
          if (e instanceof JoinError && e.code === grpc.status.UNAVAILABLE) {
            refused.push(e.message);
            continue;
          }
          throw e;
        }
        if (r.managers.length === 0) throw new JoinError(`${label} issued the certificate but named no manager address to talk to; join by address instead`);
        await warnUnreachable(r.managers, o.log);
        return { ...r, via: label, foundMs };
      } finally {
        tunnel.close();
      }
    }
    throw new JoinError(`found ${peers.length} peer(s) on this token's DHT topic, but none is a manager of the cluster the token names: ${refused.join('; ')}; the token was sent to none of them (it goes only over TLS pinned to the token's CA)`);
  } finally {
    await dht.destroy().catch(() => undefined);
  }
}

/** The distinct public keys announced on `topic`, looked up until some appear or `ms` passes. */
async function findPeers(dht: HyperDHT, topic: Buffer, ms: number): Promise<Buffer[]> {
  const end = Date.now() + ms;
  for (;;) {
    const keys = new Map<string, Buffer>();
    const q = dht.lookup(topic);
    const stop = setTimeout(() => q.destroy(), Math.max(1000, end - Date.now()));
    try {
      for await (const reply of q) for (const p of reply.peers) keys.set(p.publicKey.toString('hex'), p.publicKey);
    } catch {
      // a destroyed or failed query: what it found so far counts
    } finally {
      clearTimeout(stop);
    }
    if (keys.size > 0 || Date.now() >= end) return [...keys.values()];
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The node will talk to the managers directly: say so now if none of them can be reached. */
async function warnUnreachable(addrs: string[], log: (m: string) => void): Promise<void> {
  const ok = await Promise.all(addrs.map((a) => tcpReachable(a, 3000)));
  if (!ok.some(Boolean)) log(`dht: warning: joined, but none of the managers' addresses (${addrs.join(', ')}) answers from here; the node reaches its managers over the cluster's mTLS API, not the DHT`);
}

function tcpReachable(addr: string, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const { host, port } = splitHostPort(addr);
    const s = connect({ host, port });
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(ms, () => done(false));
    s.once('connect', () => done(true)).once('error', () => done(false));
  });
}

function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((r) => (timer = setTimeout(() => r(fallback), ms)))]).finally(() => clearTimeout(timer));
}
