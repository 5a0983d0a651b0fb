// A minimal client for serf's agent RPC (msgpack over TCP), enough for the
// benchmark: handshake, members, join. Request = header {Command, Seq} then an
// optional body; response = header {Seq, Error} then a body for commands that
// return one. This is the interface `serf members -rpc-addr=...` itself uses.

import net from 'node:net';
import { Packr, UnpackrStream } from 'msgpackr';

const packr = new Packr({ useRecords: false });

export interface SerfMember {
  Name: string;
  Status: string;
  Port: number;
}

interface Pending {
  hasBody: boolean;
  header?: { Seq: number; Error: string };
  resolve(v: unknown): void;
  reject(e: Error): void;
}

export class SerfRpc {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  /** Responses arrive as header then (maybe) body; this is the one awaiting its body. */
  private awaitingBody: Pending | undefined;

  private constructor(private readonly sock: net.Socket) {
    const un = new UnpackrStream({ useRecords: false, mapsAsObjects: true });
    sock.pipe(un);
    un.on('data', (obj: Record<string, unknown>) => this.onObject(obj));
    un.on('error', (e: Error) => this.failAll(e));
    sock.on('error', (e) => this.failAll(e));
    sock.on('close', () => this.failAll(new Error('serf rpc: connection closed')));
  }

  static async connect(addr: string, timeoutMs = 5000): Promise<SerfRpc> {
    const [host, port] = addr.split(':');
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: host as string, port: Number(port) });
      const timer = setTimeout(() => { s.destroy(); reject(new Error(`serf rpc: connect ${addr} timed out`)); }, timeoutMs);
      s.once('connect', () => { clearTimeout(timer); resolve(s); });
      s.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
    const c = new SerfRpc(sock);
    await c.call('handshake', { Version: 1 }, false);
    return c;
  }

  members(): Promise<SerfMember[]> {
    return this.call('members', undefined, true).then((b) => (b as { Members: SerfMember[] }).Members);
  }

  join(addrs: string[]): Promise<number> {
    return this.call('join', { Existing: addrs, Replay: false }, true).then((b) => (b as { Num: number }).Num);
  }

  close(): void {
    this.sock.destroy();
  }

  private call(command: string, body: unknown, hasBody: boolean): Promise<unknown> {
    const seq = this.seq++;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { hasBody, resolve, reject });
      const parts = [packr.pack({ Command: command, Seq: seq })];
      if (body !== undefined) parts.push(packr.pack(body));
      this.sock.write(Buffer.concat(parts));
    });
  }

  private onObject(obj: Record<string, unknown>): void {
    if (this.awaitingBody) {
      const p = this.awaitingBody;
      this.awaitingBody = undefined;
      p.resolve(obj);
      return;
    }
    const seq = Number(obj['Seq']);
    const p = this.pending.get(seq);
    if (!p) return;
    this.pending.delete(seq);
    const err = String(obj['Error'] ?? '');
    if (err) {
      // serf still sends the body for some failed commands; a failed handshake has none.
      p.reject(new Error(`serf rpc: ${err}`));
      if (p.hasBody) this.awaitingBody = { hasBody: false, resolve: () => {}, reject: () => {} };
      return;
    }
    if (p.hasBody) this.awaitingBody = p;
    else p.resolve(undefined);
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
