// A manager's presence on the DHT: Hyperswarm announces the manager (a random key pair made at
// each start, nothing else) on the topic of each current join token, and every Noise stream a
// joiner opens to it is piped to this manager's own API port, so the joiner runs the ordinary
// join (CA fetch, digest check, CSR over pinned TLS) through it. The announcement holds what
// Hyperswarm needs to connect (the key pair's public key and the addresses of the DHT nodes that
// relay to it): no cluster name, id, address or token.
//
// When a token is rotated its topic changes: the old one is left (Hyperswarm unannounces it) and
// the new one announced. A DHT that cannot be reached changes nothing else: the manager serves
// address joins as ever, and the announcer retries in the background.
import { connect as tcpConnect, type Socket } from 'node:net';
import HyperDHT, { type NoiseSecretStream } from 'hyperdht';
import Hyperswarm, { type PeerDiscovery } from 'hyperswarm';
import { describeBootstrap, dhtReached, openDht, type DhtConfig } from './config.js';
import { splitHostPort } from '../ports.js';
import { topicLabel } from './topic.js';

export interface AnnouncerOptions {
  dht: DhtConfig;
  /** host:port of this manager's API, where the streams are piped. */
  target: string;
  /** The topics to be found on now (recomputed every pollMs; a change is applied). */
  topics: () => Buffer[] | undefined;
  log(m: string): void;
  pollMs?: number;
  /** How often an unreachable DHT is tried again. */
  retryMs?: number;
  /** Streams piped at once; more are refused (a stranger who learned a topic cannot pile them up). */
  maxStreams?: number;
  /** A stream is closed after this long, whatever it carries (a join takes seconds). */
  streamMaxMs?: number;
}

export interface AnnouncerStatus {
  topics: number;
  reachable: boolean;
  streams: number;
  piped: number;
  refused: number;
}

export class DhtAnnouncer {
  private dht?: HyperDHT;
  private swarm?: Hyperswarm;
  private readonly joined = new Map<string, { topic: Buffer; session: PeerDiscovery }>();
  private readonly streams = new Set<{ noise: NoiseSecretStream; tcp: Socket }>();
  private timer?: NodeJS.Timeout;
  private retryAt = 0;
  private reachable = false;
  private stopped = false;
  private busy = false;
  private piped = 0;
  private refused = 0;

  constructor(private readonly o: AnnouncerOptions) {}

  /** Starts in the background; never throws (errors are logged, and retried). */
  start(): this {
    const dht = openDht(this.o.dht);
    const swarm = new Hyperswarm({ dht, keyPair: HyperDHT.keyPair() });
    swarm.on('connection', (s) => this.pipe(s));
    this.dht = dht;
    this.swarm = swarm;
    this.o.log(`dht: manager presence starting (bootstrap ${describeBootstrap(this.o.dht)}); joiners with a token find this manager through it`);
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.o.pollMs ?? 1000);
    this.timer.unref();
    return this;
  }

  status(): AnnouncerStatus {
    return { topics: this.joined.size, reachable: this.reachable, streams: this.streams.size, piped: this.piped, refused: this.refused };
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped || !this.swarm) return;
    this.busy = true;
    try {
      await this.sync();
    } catch (e) {
      this.o.log(`dht: ${(e as Error).message}`);
    } finally {
      this.busy = false;
    }
  }

  /** Joins the topics that should be announced, leaves the others, re-announces after an outage. */
  private async sync(): Promise<void> {
    const swarm = this.swarm!;
    const want = new Map((this.o.topics() ?? []).map((t) => [t.toString('hex'), t]));
    for (const [key, j] of this.joined) {
      if (want.has(key)) continue;
      this.joined.delete(key);
      await swarm.leave(j.topic); // unannounces it
      if (this.stopped) return;
      this.o.log(`dht: left topic ${topicLabel(j.topic)}… (its token was rotated)`);
    }
    const added: Buffer[] = [];
    for (const [key, topic] of want) {
      if (this.joined.has(key)) continue;
      this.joined.set(key, { topic, session: swarm.join(topic, { server: true, client: false }) });
      added.push(topic);
    }
    if (added.length > 0) {
      await Promise.all([...this.joined.values()].map((j) => j.session.flushed()));
      if (this.stopped) return;
      this.noteReach(`announced on ${added.map((t) => topicLabel(t) + '…').join(', ')}`);
      return;
    }
    // Nothing new: while the DHT was out of reach, try again now and then.
    if (!this.reachable && this.joined.size > 0 && Date.now() >= this.retryAt) {
      await Promise.all([...this.joined.values()].map((j) => j.session.refresh()));
      if (this.stopped) return;
      this.noteReach('announced again');
    }
  }

  private noteReach(what: string): void {
    const was = this.reachable;
    this.reachable = dhtReached(this.dht!);
    if (this.reachable) {
      this.o.log(`dht: ${what} (${this.joined.size} topic(s); ${this.dht!.table.toArray().length} DHT node(s) known)`);
    } else {
      this.retryAt = Date.now() + (this.o.retryMs ?? 10_000);
      if (was || what.startsWith('announced on')) this.o.log(`dht: cannot reach the DHT (no bootstrap node of ${describeBootstrap(this.o.dht)} answered): joins by address still work; trying again every ${(this.o.retryMs ?? 10_000) / 1000} s`);
    }
  }

  /** A joiner's Noise stream, piped to this manager's API port. */
  private pipe(noise: NoiseSecretStream): void {
    if (this.stopped || this.streams.size >= (this.o.maxStreams ?? 32)) {
      this.refused++;
      noise.destroy();
      return;
    }
    const { host, port } = splitHostPort(this.o.target);
    const tcp = tcpConnect({ host, port });
    const entry = { noise, tcp };
    this.streams.add(entry);
    this.piped++;
    let done = false;
    const close = () => {
      if (done) return;
      done = true;
      clearTimeout(limit);
      this.streams.delete(entry);
      tcp.destroy();
      noise.destroy();
    };
    const limit = setTimeout(close, this.o.streamMaxMs ?? 300_000);
    limit.unref();
    noise.on('error', close).on('close', close);
    tcp.on('error', close).on('close', close);
    noise.pipe(tcp);
    tcp.pipe(noise);
  }

  /** Leaves every topic (unannouncing it) and closes the DHT node, in bounded time. */
  async stop(timeoutMs = 5000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    for (const s of this.streams) {
      s.tcp.destroy();
      s.noise.destroy();
    }
    const swarm = this.swarm;
    const dht = this.dht;
    const leave = (async () => {
      await Promise.all([...this.joined.values()].map((j) => swarm?.leave(j.topic)));
      await swarm?.destroy();
      await dht?.destroy();
    })();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([leave.then(() => false, () => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs)))]);
    clearTimeout(timer);
    if (timedOut) {
      this.o.log(`dht: leaving the DHT took over ${timeoutMs / 1000} s; closed without waiting (announcements expire by themselves)`);
      await dht?.destroy({ force: true }).catch(() => undefined);
    }
    this.joined.clear();
  }
}
