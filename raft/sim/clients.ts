// Simulated KV clients and the wire messages between them and the raft nodes. A client runs one
// operation at a time; it sends it to the node it believes is leader, follows redirects, retries
// on timeout at another node, and gives up after a few attempts. Its history is honest: the call
// time is the first send, the return time is the first reply, and a write whose reply never came
// stays open forever (it may or may not have taken effect), whatever the client did next.

import type { NodeId } from '../types.js';
import type { Operation } from './linearizability.js';
import type { Prng } from './prng.js';

export interface ClientRequest {
  client: number;
  reqId: number;
  /** Per-client sequence number of the logical operation (the state machine's dedup key). */
  seq: number;
  op: 'get' | 'put' | 'append';
  key: string;
  value: string;
}

export interface ClientReply {
  client: number;
  reqId: number;
  ok: boolean;
  /** get: the value read. */
  value?: string;
  /** Not ok: the node's idea of the leader (0 = unknown). */
  leader: NodeId;
}

export interface ClientAction {
  send?: { to: NodeId; req: ClientRequest };
  /** Arm a timeout for this attempt. */
  timeout?: { reqId: number; after: number };
  /** Think, then call `next`. */
  thinkFor?: number;
}

export class SimClient {
  private seq = 0;
  private current: { req: ClientRequest; op: Operation; attempts: number; reqIds: Set<number>; lastReqId: number } | null = null;
  private leaderGuess: NodeId = 0;
  completed = 0;
  abandoned = 0;

  constructor(
    readonly id: number,
    private readonly rng: Prng,
    private readonly keys: string[],
    private readonly history: Operation[],
    private readonly nextReqId: () => number,
    private readonly timeoutMs: number,
    private readonly maxAttempts: number,
  ) {}

  get busy(): boolean {
    return this.current !== null;
  }

  /** Starts the next operation at time `now`, sending it to a node from `members`. */
  next(now: number, members: NodeId[], forced?: { op: 'put'; key: string; value: string }): ClientAction {
    this.seq++;
    const r = this.rng.float();
    const op = forced?.op ?? (r < 0.4 ? 'get' : r < 0.7 ? 'put' : 'append');
    const key = forced?.key ?? this.rng.pick(this.keys);
    const value = forced?.value ?? (op === 'put' ? `${this.id}.${this.seq}` : op === 'append' ? `${this.id}.${this.seq};` : '');
    const hist: Operation = op === 'get' ? { clientId: this.id, key, op, call: now, return: null } : { clientId: this.id, key, op, value, call: now, return: null };
    this.history.push(hist);
    const req: ClientRequest = { client: this.id, reqId: 0, seq: this.seq, op, key, value };
    this.current = { req, op: hist, attempts: 0, reqIds: new Set(), lastReqId: 0 };
    return this.attempt(members);
  }

  private attempt(members: NodeId[]): ClientAction {
    const c = this.current as NonNullable<SimClient['current']>;
    c.attempts++;
    const to = this.leaderGuess !== 0 && members.includes(this.leaderGuess) ? this.leaderGuess : this.rng.pick(members);
    const reqId = this.nextReqId();
    c.reqIds.add(reqId);
    c.lastReqId = reqId;
    return { send: { to, req: { ...c.req, reqId } }, timeout: { reqId, after: this.timeoutMs } };
  }

  private giveUp(): ClientAction {
    // The write stays open in the history (return null): it may still take effect later.
    this.current = null;
    this.abandoned++;
    return { thinkFor: this.rng.float() * 20 };
  }

  onReply(now: number, rep: ClientReply, members: NodeId[]): ClientAction | null {
    const c = this.current;
    if (!c || !c.reqIds.has(rep.reqId)) return null; // late reply to an earlier operation
    if (rep.ok) {
      c.op.return = now;
      if (c.req.op === 'get') c.op.output = rep.value ?? '';
      this.current = null;
      this.completed++;
      return { thinkFor: this.rng.float() * 20 };
    }
    if (rep.reqId !== c.lastReqId) return null; // a stale redirect; a newer attempt is out
    this.leaderGuess = rep.leader;
    if (c.attempts >= this.maxAttempts) return this.giveUp();
    return this.attempt(members);
  }

  onTimeout(reqId: number, members: NodeId[]): ClientAction | null {
    const c = this.current;
    if (!c || reqId !== c.lastReqId) return null;
    this.leaderGuess = 0;
    if (c.attempts >= this.maxAttempts) return this.giveUp();
    return this.attempt(members);
  }
}
