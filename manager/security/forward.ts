// Follower -> leader forwarding of leader-only calls: the follower calls the same method on the
// leader with its own manager certificate and puts the original caller's identity in metadata
// (the leader's authorizer trusts it only because the forwarding peer is a manager).
import * as grpc from '@grpc/grpc-js';
import { FWD_CLUSTER, FWD_NODE, FWD_PEER, FWD_ROLE, type Forwarder, type Identity } from './authz.js';
import { CHANNEL_OPTIONS, clientCredentials, type TlsIdentity } from './credentials.js';
import { unavailable } from './errors.js';

export class LeaderForwarder implements Forwarder {
  private readonly clients = new Map<string, grpc.Client>();

  constructor(
    private readonly o: {
      isLeader(): boolean;
      /** The leader's advertised gRPC address, if known. */
      leaderAddr(): string | undefined;
      tls(): TlsIdentity;
      timeoutMs?: number;
      /** How long a call waits for a leader to be known (default 8 s). */
      electionWaitMs?: number;
    },
  ) {}

  isLeader(): boolean {
    return this.o.isLeader();
  }

  private client(service: grpc.ServiceDefinition, addr: string): grpc.Client {
    const key = Object.keys(service).join(',') + '@' + addr;
    let c = this.clients.get(key);
    if (!c) {
      const Ctor = grpc.makeGenericClientConstructor(service, 'fwd');
      c = new Ctor(addr, clientCredentials(this.o.tls()), CHANNEL_OPTIONS);
      this.clients.set(key, c);
    }
    return c;
  }

  async forward(service: grpc.ServiceDefinition, method: string, req: unknown, id: Identity, peer?: string): Promise<unknown> {
    // An election takes a second or two: wait for its outcome as a local read would (readLatest),
    // so a call made just after a leader died is answered rather than refused.
    let addr = this.o.leaderAddr();
    for (const end = Date.now() + (this.o.electionWaitMs ?? 8_000); !addr && Date.now() < end;) {
      await new Promise((r) => setTimeout(r, 200));
      addr = this.o.leaderAddr();
    }
    if (!addr) throw unavailable(`no raft leader is known right now (an election may be in progress, or quorum is lost); retry in a few seconds`);
    const md = new grpc.Metadata();
    md.set(FWD_NODE, id.nodeId);
    md.set(FWD_ROLE, id.role);
    md.set(FWD_CLUSTER, id.clusterId);
    if (peer) md.set(FWD_PEER, peer);
    const c = this.client(service, addr) as any;
    return new Promise((resolve, reject) => {
      c[method](req, md, { deadline: Date.now() + (this.o.timeoutMs ?? 30_000) }, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)));
    });
  }

  /** Drop cached channels (after a certificate renewal). */
  reset(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
