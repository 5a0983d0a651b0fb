// The replicated application of the simulation: a string key-value map with put and append,
// plus per-client sessions (last applied sequence number) so that a retried write applies at most
// once. The state machine is deterministic; its snapshot carries the data, the sessions and a hash
// chain of every command it applied, so two replicas that diverge are told apart even when the
// divergence hides in a snapshot.

import { hashBytes, mix } from './hash.js';

export interface KvCommand {
  /** Client id and its per-client sequence number: the dedup key. */
  c: number;
  s: number;
  op: 'put' | 'append';
  k: string;
  v: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeCommand(cmd: KvCommand): Uint8Array {
  return enc.encode(JSON.stringify(cmd));
}

export function decodeCommand(b: Uint8Array): KvCommand {
  let v: unknown;
  try {
    v = JSON.parse(dec.decode(b));
  } catch (err) {
    throw new Error(`kv: entry data is not a JSON command (${(err as Error).message})`);
  }
  const c = v as KvCommand;
  if (
    typeof c !== 'object' || c === null || !Number.isInteger(c.c) || !Number.isInteger(c.s) ||
    (c.op !== 'put' && c.op !== 'append') || typeof c.k !== 'string' || typeof c.v !== 'string'
  ) {
    throw new Error(`kv: malformed command ${JSON.stringify(v)}; expected {c, s, op: put|append, k, v}`);
  }
  return c;
}

export interface ApplyResult {
  /** False when the command was a duplicate of an already applied (client, seq). */
  fresh: boolean;
}

export class KvStateMachine {
  private data = new Map<string, string>();
  private sessions = new Map<number, number>();
  /** Index of the last entry (or snapshot) applied. */
  appliedIndex = 0;
  /** Hash chain over every applied index and command: equal iff the applied histories are. */
  chain = 0;

  get(key: string): string {
    return this.data.get(key) ?? '';
  }

  /** Applies the entry at `index` (empty data = a leader's no-op, applied for the index only). */
  apply(index: number, data: Uint8Array): ApplyResult {
    if (index !== this.appliedIndex + 1) {
      throw new Error(`kv: entry ${index} applied after ${this.appliedIndex}; entries must be applied in order without gaps`);
    }
    this.appliedIndex = index;
    this.chain = mix(this.chain, index, hashBytes(data));
    if (data.length === 0) return { fresh: false };
    const cmd = decodeCommand(data);
    const last = this.sessions.get(cmd.c) ?? 0;
    if (cmd.s <= last) return { fresh: false };
    this.sessions.set(cmd.c, cmd.s);
    this.data.set(cmd.k, cmd.op === 'put' ? cmd.v : this.get(cmd.k) + cmd.v);
    return { fresh: true };
  }

  /** Records a non-command entry (conf change) at `index`. */
  skip(index: number, data: Uint8Array): void {
    if (index !== this.appliedIndex + 1) {
      throw new Error(`kv: entry ${index} applied after ${this.appliedIndex}; entries must be applied in order without gaps`);
    }
    this.appliedIndex = index;
    this.chain = mix(this.chain, index, hashBytes(data), 1);
  }

  /** Whether (client, seq) has been applied. */
  applied(client: number, seq: number): boolean {
    return (this.sessions.get(client) ?? 0) >= seq;
  }

  snapshot(): Uint8Array {
    const doc = {
      index: this.appliedIndex,
      chain: this.chain,
      data: [...this.data].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
      sessions: [...this.sessions].sort(([a], [b]) => a - b),
    };
    return enc.encode(JSON.stringify(doc));
  }

  /** Rebuilds the state machine from a snapshot taken at `index`. */
  static restore(b: Uint8Array, index: number): KvStateMachine {
    const sm = new KvStateMachine();
    if (b.length === 0) {
      // The bootstrap snapshot of an empty cluster.
      sm.appliedIndex = index;
      sm.chain = mix(0, index);
      return sm;
    }
    const doc = JSON.parse(dec.decode(b)) as { index: number; chain: number; data: [string, string][]; sessions: [number, number][] };
    sm.appliedIndex = doc.index;
    sm.chain = doc.chain;
    sm.data = new Map(doc.data);
    sm.sessions = new Map(doc.sessions);
    if (doc.index !== index) throw new Error(`kv: snapshot data is at index ${doc.index} but its metadata says ${index}`);
    return sm;
  }
}
