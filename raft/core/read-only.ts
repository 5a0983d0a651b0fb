// Pending ReadIndex requests on the leader (ReadOnlySafe): each waits for a quorum of heartbeat
// acks carrying its context; an ack for a later request confirms every earlier one too.
import type { Message, NodeId } from '../types.js';

export interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Map<NodeId, boolean>;
}

export function ctxKey(ctx: Uint8Array | undefined): string {
  return ctx ? Buffer.from(ctx.buffer, ctx.byteOffset, ctx.byteLength).toString('hex') : '';
}

export class ReadOnlyQueue {
  private pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  /** Returns false if a request with the same context is already pending. */
  addRequest(index: number, req: Message): boolean {
    const k = ctxKey(req.context);
    if (this.pending.has(k)) return false;
    this.pending.set(k, { index, req, acks: new Map() });
    this.queue.push(k);
    return true;
  }

  recvAck(id: NodeId, ctx: Uint8Array | undefined): Map<NodeId, boolean> | undefined {
    const rs = this.pending.get(ctxKey(ctx));
    if (!rs) return undefined;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /** Removes and returns every request up to and including the one with ctx. */
  advance(ctx: Uint8Array | undefined): ReadIndexStatus[] {
    const k = ctxKey(ctx);
    const i = this.queue.indexOf(k);
    if (i < 0) return [];
    const done = this.queue.splice(0, i + 1);
    return done.map((key) => {
      const rs = this.pending.get(key)!;
      this.pending.delete(key);
      return rs;
    });
  }

  lastPendingContext(): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined;
    return this.pending.get(this.queue[this.queue.length - 1])!.req.context;
  }

  /** Empties the queue, returning what was pending (so it can be reported as dropped). */
  drain(): ReadIndexStatus[] {
    const all = this.queue.map((k) => this.pending.get(k)!);
    this.pending.clear();
    this.queue = [];
    return all;
  }
}
