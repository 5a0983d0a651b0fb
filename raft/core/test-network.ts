// A test harness for the core's scenario tests. It stands for the hosts and the network of a
// raft group, reduced to what the protocol can observe: each node is a RawNode on a
// MemoryStorage, whose Ready is handled exactly as raft/types.ts prescribes (send messages,
// persist, send messagesAfterPersist, apply, advance); messages are delivered synchronously in
// FIFO order, so every scenario is deterministic. Partitions (cut/isolate), message filters and
// crashes (restart from the storage that was persisted) are the faults a test can inject.
// The real network, disk and clock are raft/transport's, raft/storage's and the host's business
// and are tested there; the randomized fault simulation is raft/sim's.
import {
  ConfChangeTransition,
  ConfChangeType,
  EntryType,
  MessageType,
  type ConfChange,
  type ConfState,
  type DroppedProposal,
  type Message,
  type NodeId,
  type ReadState,
} from '../types.js';
import type { RaftConfig } from './config.js';
import { decodeConfChange } from './confchange-codec.js';
import { MemoryStorage } from './memory-storage.js';
import type { DroppedRead } from './raft.js';
import { RawNode, type CoreReady } from './rawnode.js';

/** Deterministic PRNG (mulberry32) so election timeouts are reproducible. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const enc = (s: string) => new TextEncoder().encode(s);
export const dec = (b: Uint8Array) => new TextDecoder().decode(b);

export class TestNode {
  raw: RawNode;
  /** Data of applied Normal entries with non-empty data, by index. */
  applied: { index: number; data: string }[] = [];
  conf: ConfState;
  readStates: ReadState[] = [];
  dropped: DroppedProposal[] = [];
  droppedReads: DroppedRead[] = [];
  readys: CoreReady[] = [];
  appliedIndex = 0;

  constructor(readonly id: NodeId, public storage: MemoryStorage, readonly config: Partial<RaftConfig>) {
    this.conf = storage.initialState().confState;
    this.raw = new RawNode({ id, storage, random: seeded(id * 7919), ...config });
    this.appliedIndex = config.applied ?? 0;
  }

  appliedData(): string[] {
    return this.applied.map((a) => a.data);
  }

  status() {
    return this.raw.status();
  }
}

export interface NetworkOptions {
  voters?: NodeId[];
  learners?: NodeId[];
  config?: Partial<RaftConfig>;
  /** Bootstrap with RawNode.bootstrap (membership in the log) instead of a shared initial ConfState. */
  bootstrap?: boolean;
  /** Per-node config overrides. */
  configFor?: (id: NodeId) => Partial<RaftConfig>;
}

export class Network {
  nodes = new Map<NodeId, TestNode>();
  private queue: Message[] = [];
  private cuts = new Set<string>();
  private down = new Set<NodeId>();
  /** Return true to drop a message (in addition to cuts). */
  filter?: (m: Message) => boolean;
  /** Every message handed to the network, in order (for assertions). */
  log: Message[] = [];

  constructor(ids: NodeId[], private opts: NetworkOptions = {}) {
    const voters = opts.voters ?? ids;
    const learners = opts.learners ?? [];
    for (const id of ids) {
      if (opts.bootstrap) {
        const n = new TestNode(id, new MemoryStorage(), this.configFor(id));
        n.raw.bootstrap(voters);
        this.nodes.set(id, n);
        continue;
      }
      const storage = MemoryStorage.withConf({ voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false });
      this.nodes.set(id, new TestNode(id, storage, this.configFor(id)));
    }
    if (opts.bootstrap) this.stabilize();
  }

  private configFor(id: NodeId): Partial<RaftConfig> {
    return { ...(this.opts.config ?? {}), ...(this.opts.configFor?.(id) ?? {}) };
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id} in the test network`);
    return n;
  }

  /** Adds a node that starts with an empty log and no config (it learns it from the leader). */
  addEmptyNode(id: NodeId): TestNode {
    const n = new TestNode(id, new MemoryStorage(), this.configFor(id));
    this.nodes.set(id, n);
    return n;
  }

  leader(): TestNode | undefined {
    let best: TestNode | undefined;
    for (const n of this.nodes.values()) {
      if (this.down.has(n.id)) continue;
      const s = n.status();
      if (s.role === 'leader' && (!best || s.term > best.status().term)) best = n;
    }
    return best;
  }

  cut(a: NodeId, b: NodeId): void {
    this.cuts.add(`${a}-${b}`);
    this.cuts.add(`${b}-${a}`);
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other);
  }

  heal(): void {
    this.cuts.clear();
    this.filter = undefined;
  }

  /** Handles one Ready of one node exactly as the contract on Ready says. */
  processReady(n: TestNode, hooks: { beforePersist?: (rd: CoreReady) => void } = {}): CoreReady {
    const rd = n.raw.ready();
    n.readys.push(rd);
    for (const m of rd.messages) this.enqueue(m);
    hooks.beforePersist?.(rd);
    if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    for (const m of rd.messagesAfterPersist) this.enqueue(m);
    if (rd.snapshot) {
      n.applied = (JSON.parse(dec(rd.snapshot.data)) as { index: number; data: string }[]).slice();
      n.conf = rd.snapshot.meta.conf;
      n.appliedIndex = rd.snapshot.meta.index;
    }
    for (const e of rd.committedEntries) {
      if (e.type === EntryType.ConfChange) {
        n.conf = n.raw.applyConfChange(decodeConfChange(e.data));
      } else if (e.data.length > 0) {
        n.applied.push({ index: e.index, data: dec(e.data) });
      }
      n.appliedIndex = e.index;
    }
    n.readStates.push(...rd.readStates);
    n.dropped.push(...rd.droppedProposals);
    n.droppedReads.push(...rd.droppedReads);
    n.raw.advance();
    return rd;
  }

  private enqueue(m: Message): void {
    this.log.push(m);
    this.queue.push(structuredClone(m));
  }

  /** Would this message be delivered now? */
  private passes(m: Message): boolean {
    if (this.down.has(m.to) || this.down.has(m.from)) return false;
    if (this.cuts.has(`${m.from}-${m.to}`)) return false;
    if (this.filter?.(m)) return false;
    return this.nodes.has(m.to);
  }

  /** Delivers the queued messages once (not what they cause). Returns how many were delivered. */
  deliverQueued(): number {
    const batch = this.queue;
    this.queue = [];
    let n = 0;
    for (const m of batch) {
      if (!this.passes(m)) continue;
      this.node(m.to).raw.step(m);
      n++;
    }
    return n;
  }

  /** Drops everything in flight. */
  dropQueued(): Message[] {
    const q = this.queue;
    this.queue = [];
    return q;
  }

  pending(): Message[] {
    return this.queue;
  }

  /** Handles Readys and delivers messages until nothing is left to do. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      let work = false;
      for (const n of this.nodes.values()) {
        if (this.down.has(n.id)) continue;
        while (n.raw.hasReady()) {
          this.processReady(n);
          work = true;
        }
      }
      if (this.queue.length > 0) {
        this.deliverQueued();
        work = true;
      }
      if (!work) return;
    }
    throw new Error(`network did not stabilize within ${maxRounds} rounds`);
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) {
      this.node(id).raw.tick();
      this.stabilize();
    }
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const n of this.nodes.values()) if (!this.down.has(n.id)) n.raw.tick();
      this.stabilize();
    }
  }

  campaign(id: NodeId): void {
    this.node(id).raw.campaign();
    this.stabilize();
  }

  propose(id: NodeId, data: string): void {
    this.node(id).raw.propose(enc(data));
    this.stabilize();
  }

  proposeConfChange(id: NodeId, cc: ConfChange): void {
    this.node(id).raw.proposeConfChange(cc);
    this.stabilize();
  }

  /** Stops delivering to and from id (its state stays as it is). */
  stop(id: NodeId): void {
    this.down.add(id);
  }

  /** Crash and restart: a new RawNode from a copy of what was persisted. */
  restart(id: NodeId): TestNode {
    const old = this.node(id);
    const storage = old.storage.clone();
    const n = new TestNode(id, storage, { ...this.configFor(id), applied: storage.snapshot().meta.index });
    const snap = storage.snapshot();
    if (snap.meta.index > 0) n.applied = JSON.parse(dec(snap.data));
    this.nodes.set(id, n);
    this.down.delete(id);
    return n;
  }

  /** The app's snapshot of node id at its applied index, then compaction keeping `keep` entries. */
  compact(id: NodeId, keep = 0): void {
    const n = this.node(id);
    const idx = n.appliedIndex;
    const data = enc(JSON.stringify(n.applied.filter((a) => a.index <= idx)));
    n.storage.createSnapshot(idx, n.conf, data);
    const at = idx - keep;
    if (at > n.storage.firstIndex() - 1) n.storage.compact(at);
  }
}

export function single(type: ConfChangeType, nodeId: NodeId, transition = ConfChangeTransition.Auto): ConfChange {
  return { transition, changes: [{ type, nodeId }], context: new Uint8Array(0) };
}

export function types(ms: Message[]): string[] {
  return ms.map((m) => `${MessageType[m.type]} ${m.from}->${m.to}`);
}

/** Elects `id` (the network must let it win) and settles. */
export function elect(net: Network, id: NodeId): void {
  net.campaign(id);
  const s = net.node(id).status();
  if (s.role !== 'leader') throw new Error(`node ${id} did not become leader (role ${s.role}, term ${s.term})`);
}
