// The parts of hyperdht and hyperswarm (JavaScript packages without type declarations) that
// node/discovery uses, typed from their documentation and source.
declare module 'hyperdht' {
  import type { Duplex } from 'node:stream';

  export interface KeyPair {
    publicKey: Buffer;
    secretKey: Buffer;
  }
  export interface NodeAddress {
    host: string;
    port: number;
  }
  /** The end-to-end encrypted (Noise) stream between two peers. */
  export interface NoiseSecretStream extends Duplex {
    remotePublicKey: Buffer;
    publicKey: Buffer;
    rawStream?: { remoteHost: string; remotePort: number };
  }
  export interface LookupReply {
    from: NodeAddress & { id?: Buffer };
    to?: NodeAddress;
    peers: { publicKey: Buffer; relayAddresses: NodeAddress[] }[];
  }
  export interface Query extends AsyncIterable<LookupReply> {
    finished(): Promise<void>;
    destroy(): void;
    closestReplies: unknown[];
  }
  export interface Server {
    listen(keyPair?: KeyPair): Promise<void>;
    close(): Promise<void>;
    on(ev: 'connection', cb: (s: NoiseSecretStream) => void): this;
    address(): { host: string; port: number; publicKey: Buffer } | null;
  }
  export interface DHTOptions {
    bootstrap?: string[];
    port?: number;
    host?: string;
    anyPort?: boolean;
    ephemeral?: boolean;
    firewalled?: boolean;
    keyPair?: KeyPair;
  }
  export default class HyperDHT {
    constructor(opts?: DHTOptions);
    static BOOTSTRAP: string[];
    static keyPair(seed?: Buffer): KeyPair;
    static bootstrapper(port: number, host: string, opts?: DHTOptions): HyperDHT;
    readonly destroyed: boolean;
    readonly firewalled: boolean;
    readonly ephemeral: boolean;
    readonly host: string | null;
    readonly port: number;
    readonly table: { toArray(): NodeAddress[] };
    readonly defaultKeyPair: KeyPair;
    ready(): Promise<void>;
    address(): { host: string; port: number } | null;
    lookup(topic: Buffer): Query;
    connect(publicKey: Buffer, opts?: { keyPair?: KeyPair; relayAddresses?: NodeAddress[] }): NoiseSecretStream;
    createServer(onconnection?: (s: NoiseSecretStream) => void): Server;
    destroy(opts?: { force?: boolean }): Promise<void>;
    on(ev: string, cb: (...a: unknown[]) => void): this;
  }
}

declare module 'hyperswarm' {
  import type HyperDHT from 'hyperdht';
  import type { KeyPair, NoiseSecretStream } from 'hyperdht';

  export interface PeerDiscovery {
    flushed(): Promise<boolean>;
    refresh(opts?: { client?: boolean; server?: boolean }): Promise<void>;
    destroy(): Promise<void>;
  }
  export interface PeerInfo {
    publicKey: Buffer;
  }
  export default class Hyperswarm {
    constructor(opts?: { dht?: HyperDHT; keyPair?: KeyPair; maxPeers?: number; firewall?: (remotePublicKey: Buffer) => boolean });
    readonly dht: HyperDHT;
    readonly keyPair: KeyPair;
    readonly connections: Set<NoiseSecretStream>;
    join(topic: Buffer, opts?: { server?: boolean; client?: boolean }): PeerDiscovery;
    leave(topic: Buffer): Promise<void>;
    flush(): Promise<void>;
    destroy(): Promise<void>;
    on(ev: 'connection', cb: (s: NoiseSecretStream, info: PeerInfo) => void): this;
    on(ev: 'error', cb: (e: Error) => void): this;
  }
}
