// The joiner's end of a DHT stream: a TCP listener on 127.0.0.1 whose every connection becomes a
// new Noise stream to one manager found on the DHT (a fresh key pair each, so the manager's
// Hyperswarm never takes two of them for one peer reconnecting). gRPC dials the listener, so the
// join runs over the stream exactly as it runs over TCP to an address.
import { createServer, type Server, type Socket } from 'node:net';
import HyperDHT, { type NoiseSecretStream } from 'hyperdht';

export class DhtTunnel {
  private readonly sockets = new Set<Socket>();
  private readonly streams = new Set<NoiseSecretStream>();
  /** The last error of a stream to the manager (said when the join over it fails). */
  lastError?: string;
  connects = 0;

  private constructor(
    private readonly server: Server,
    readonly addr: string,
  ) {}

  static async open(dht: HyperDHT, publicKey: Buffer): Promise<DhtTunnel> {
    let tunnel!: DhtTunnel;
    const server = createServer((tcp) => tunnel.accept(dht, publicKey, tcp));
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(0, '127.0.0.1', () => res());
    });
    const a = server.address();
    if (!a || typeof a === 'string') throw new Error('the DHT tunnel has no TCP address');
    tunnel = new DhtTunnel(server, `127.0.0.1:${a.port}`);
    return tunnel;
  }

  private accept(dht: HyperDHT, publicKey: Buffer, tcp: Socket): void {
    this.sockets.add(tcp);
    this.connects++;
    tcp.pause(); // what gRPC writes first waits until the stream is open
    const noise = dht.connect(publicKey, { keyPair: HyperDHT.keyPair() });
    this.streams.add(noise);
    let done = false;
    const close = () => {
      if (done) return;
      done = true;
      this.sockets.delete(tcp);
      this.streams.delete(noise);
      tcp.destroy();
      noise.destroy();
    };
    noise.once('open', () => {
      noise.pipe(tcp);
      tcp.pipe(noise);
      tcp.resume();
    });
    noise.on('error', (e: Error) => {
      this.lastError = e.message;
      close();
    });
    noise.on('close', close);
    tcp.on('error', close).on('close', close);
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
    for (const n of this.streams) n.destroy();
  }
}
