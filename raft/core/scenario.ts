// A small data-driven interpreter for scenario scripts (raft/core/testdata/*.txt), after etcd-raft's
// interaction tests: one node under test, driven by hand with the messages a leader (or anyone)
// would send, each Ready handled as a host does (or held, to step messages between ready() and
// advance()), and the resulting Ready and log printed. The scripts pin the follower's append and
// snapshot-restore paths on exact log shapes: a prefix that matches and a stale divergent tail
// beyond it, late and duplicate appends, snapshots the log already holds, and so on.
//
// Script format: blocks of `command args...` lines, a `----` line, and the expected output up to
// a blank line. Lines starting with '#' are comments. Arguments are key=value; lists are
// comma-separated; an entry is index/term; `log=` is the node's stored log after its snapshot.
//
//   node id=2 voters=1,2,3 [learners=..] [snap=index/term] log=1/1,2/1 [term=2] [vote=0] [commit=2]
//        [applied=N] [prevote=true] [checkquorum=true]
//   app from=1 term=3 prev=2/1 commit=4 [entries=3/3,4/3]    MsgApp
//   heartbeat from=1 term=3 commit=4
//   snap from=1 term=3 index=5/2 [voters=1,2,3]              MsgSnap
//   vote from=3 term=4 last=5/3 [pre=true]                   MsgVote / MsgPreVote
//   campaign                                                  start an election (pre-vote first if on)
//   hold                                                      take the next Ready and keep it (not persisted, not advanced)
//   release                                                   persist, apply and advance the held Ready
//   ready                                                     handle every pending Ready
//   log                                                       print the node's state
// Every message command handles the Readys it causes and prints them, unless a Ready is held or
// it says ready=false (then the message is only stepped: several can land before the next Ready).
import { EntryType, MessageType, Role, type ConfState, type Entry, type Message, type NodeId } from '../types.js';
import { MemoryStorage } from './memory-storage.js';
import { RawNode, type CoreReady } from './rawnode.js';
import { decodeConfChange } from './confchange-codec.js';

export interface Block {
  /** Line number of the command (1-based), for error messages. */
  line: number;
  cmd: string;
  expected: string;
}

/** Splits a script into blocks. */
export function parseScript(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i];
    if (l.trim() === '' || l.startsWith('#')) {
      i++;
      continue;
    }
    const start = i;
    const cmd: string[] = [];
    while (i < lines.length && lines[i] !== '----') {
      if (lines[i].trim() === '') throw new Error(`line ${i + 1}: a command block needs a '----' line and its expected output`);
      cmd.push(lines[i]);
      i++;
    }
    if (i >= lines.length) throw new Error(`line ${start + 1}: missing '----' after the command`);
    i++;
    const out: string[] = [];
    while (i < lines.length && lines[i].trim() !== '') out.push(lines[i++]);
    blocks.push({ line: start + 1, cmd: cmd.join('\n'), expected: out.join('\n') });
  }
  return blocks;
}

/** Renders blocks back (for REWRITE=1), keeping comments before each block. */
export function renderScript(text: string, outputs: Map<number, string>): string {
  const lines = text.split('\n');
  const res: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i];
    if (l.trim() === '' || l.startsWith('#')) {
      res.push(l);
      i++;
      continue;
    }
    const start = i + 1;
    while (i < lines.length && lines[i] !== '----') res.push(lines[i++]);
    res.push('----');
    i++;
    while (i < lines.length && lines[i].trim() !== '') i++;
    res.push(...(outputs.get(start) ?? '').split('\n'));
  }
  return res.join('\n');
}

type Args = Map<string, string>;

function parseArgs(words: string[], line: string): Args {
  const a = new Map<string, string>();
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new Error(`${line}: argument ${JSON.stringify(w)} is not key=value`);
    a.set(w.slice(0, eq), w.slice(eq + 1));
  }
  return a;
}

function num(a: Args, k: string, dflt?: number): number {
  const v = a.get(k);
  if (v === undefined) {
    if (dflt === undefined) throw new Error(`missing ${k}=`);
    return dflt;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${k}=${v} is not a non-negative integer`);
  return n;
}

function ids(a: Args, k: string): NodeId[] {
  const v = a.get(k);
  return v ? v.split(',').map((x) => Number(x)) : [];
}

function pos(s: string): { index: number; term: number } {
  const [i, t] = s.split('/').map(Number);
  if (!Number.isInteger(i) || !Number.isInteger(t)) throw new Error(`${JSON.stringify(s)} is not index/term`);
  return { index: i, term: t };
}

function entries(a: Args, k: string): Entry[] {
  const v = a.get(k);
  if (!v) return [];
  return v.split(',').map((s) => ({ ...pos(s), type: EntryType.Normal, data: new Uint8Array(0) }));
}

const fmtEnts = (es: Entry[]) => (es.length ? es.map((e) => `${e.index}/${e.term}${e.type === EntryType.ConfChange ? 'c' : ''}`).join(' ') : '-');

function fmtMsg(m: Message): string {
  let s = `${m.from}->${m.to} ${MessageType[m.type]} term=${m.term}`;
  switch (m.type) {
    case MessageType.AppResp:
      s += ` index=${m.index}${m.reject ? ` reject hint=${m.rejectHint}/${m.logTerm}` : ''}`;
      break;
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      s += m.reject ? ' reject' : ' grant';
      break;
    default:
      if (m.index || m.logTerm) s += ` index=${m.index} logTerm=${m.logTerm}`;
      if (m.commit) s += ` commit=${m.commit}`;
  }
  return s;
}

/** The node under test and its host. */
export class ScenarioNode {
  rn!: RawNode;
  storage!: MemoryStorage;
  conf!: ConfState;
  held: CoreReady | null = null;
  private out: string[] = [];
  private noReady = false;

  run(cmd: string): string {
    this.out = [];
    const [name, ...rest] = cmd.trim().split(/\s+/);
    const a = parseArgs(rest, name);
    this.noReady = a.get('ready') === 'false';
    a.delete('ready');
    switch (name) {
      case 'node':
        this.create(a);
        this.state();
        break;
      case 'app':
        this.step({ type: MessageType.App, from: num(a, 'from'), term: num(a, 'term'), index: pos(a.get('prev') ?? '0/0').index, logTerm: pos(a.get('prev') ?? '0/0').term, commit: num(a, 'commit', 0), entries: entries(a, 'entries') });
        break;
      case 'heartbeat':
        this.step({ type: MessageType.Heartbeat, from: num(a, 'from'), term: num(a, 'term'), commit: num(a, 'commit', 0) });
        break;
      case 'snap': {
        const p = pos(a.get('index') ?? '');
        const conf: ConfState = { voters: a.has('voters') ? ids(a, 'voters') : this.conf.voters, learners: ids(a, 'learners'), votersOutgoing: [], learnersNext: [], autoLeave: false };
        this.step({ type: MessageType.Snap, from: num(a, 'from'), term: num(a, 'term'), snapshot: { meta: { index: p.index, term: p.term, conf }, data: new Uint8Array(0) } });
        break;
      }
      case 'vote': {
        const last = pos(a.get('last') ?? '0/0');
        this.step({ type: a.get('pre') === 'true' ? MessageType.PreVote : MessageType.Vote, from: num(a, 'from'), term: num(a, 'term'), index: last.index, logTerm: last.term });
        break;
      }
      case 'campaign':
        this.rn.campaign();
        if (!this.held) this.drain();
        this.state();
        break;
      case 'hold':
        if (this.held) throw new Error('hold: a Ready is already held');
        if (!this.rn.hasReady()) {
          this.out.push('no Ready');
          break;
        }
        this.held = this.rn.ready();
        this.printReady('held', this.held);
        break;
      case 'release': {
        const rd = this.held;
        if (!rd) throw new Error('release: no Ready is held');
        this.held = null;
        this.finish(rd);
        this.out.push(`released: persisted, sent ${rd.messagesAfterPersist.map(fmtMsg).join(', ') || 'nothing'}, advanced`);
        this.drain();
        this.state();
        break;
      }
      case 'ready':
        this.drain();
        this.state();
        break;
      case 'log':
        this.state();
        break;
      default:
        throw new Error(`unknown command ${JSON.stringify(name)}`);
    }
    return this.out.join('\n');
  }

  private create(a: Args): void {
    const id = num(a, 'id');
    const snap = pos(a.get('snap') ?? '0/0');
    this.conf = { voters: ids(a, 'voters'), learners: ids(a, 'learners'), votersOutgoing: [], learnersNext: [], autoLeave: false };
    this.storage = MemoryStorage.withConf(this.conf);
    if (snap.index > 0) this.storage.applySnapshot({ meta: { index: snap.index, term: snap.term, conf: this.conf }, data: new Uint8Array(0) });
    const ents = entries(a, 'log');
    this.storage.append(ents);
    const lastTerm = ents.length ? ents[ents.length - 1].term : snap.term;
    this.storage.setHardState({ term: num(a, 'term', lastTerm), vote: num(a, 'vote', 0), commit: num(a, 'commit', snap.index) });
    this.rn = new RawNode({
      id,
      storage: this.storage,
      random: () => 0,
      applied: num(a, 'applied', num(a, 'commit', snap.index)),
      preVote: a.get('prevote') !== 'false',
      checkQuorum: a.get('checkquorum') !== 'false',
    });
    this.held = null;
  }

  private step(p: Partial<Message> & { type: MessageType; from: NodeId; term: number }): void {
    const m: Message = { to: this.rn.raft.id, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, ...p };
    try {
      this.rn.step(m);
    } catch (e) {
      this.out.push(`error: ${(e as Error).message}`);
      return;
    }
    if (!this.held && !this.noReady) this.drain();
    this.state();
  }

  private drain(): void {
    for (let n = 0; this.rn.hasReady(); n++) {
      if (n > 20) throw new Error('more than 20 Readys in a row');
      const rd = this.rn.ready();
      this.printReady('ready', rd);
      this.finish(rd);
    }
  }

  /** Persist, apply and advance, as a host does. */
  private finish(rd: CoreReady): void {
    if (rd.snapshot) {
      this.storage.applySnapshot(rd.snapshot);
      this.conf = rd.snapshot.meta.conf;
    }
    this.storage.append(rd.entries);
    if (rd.hardState) this.storage.setHardState(rd.hardState);
    for (const e of rd.committedEntries) if (e.type === EntryType.ConfChange) this.conf = this.rn.applyConfChange(decodeConfChange(e.data));
    this.rn.advance();
  }

  private printReady(what: string, rd: CoreReady): void {
    const parts: string[] = [];
    if (rd.softState) parts.push(`soft ${rd.softState.role} lead=${rd.softState.lead}`);
    if (rd.hardState) parts.push(`hard term=${rd.hardState.term} vote=${rd.hardState.vote} commit=${rd.hardState.commit}`);
    if (rd.snapshot) parts.push(`snapshot ${rd.snapshot.meta.index}/${rd.snapshot.meta.term}`);
    if (rd.entries.length) parts.push(`entries ${fmtEnts(rd.entries)}`);
    if (rd.committedEntries.length) parts.push(`apply ${fmtEnts(rd.committedEntries)}`);
    if (rd.entries.length || rd.hardState || rd.snapshot) parts.push(rd.mustSync ? 'sync' : 'no sync');
    this.out.push(`${what}: ${parts.join('; ') || 'nothing to persist'}`);
    for (const m of rd.messages) this.out.push(`  send ${fmtMsg(m)}`);
    for (const m of rd.messagesAfterPersist) this.out.push(`  after persist ${fmtMsg(m)}`);
  }

  private state(): void {
    const r = this.rn.raft;
    const log = r.raftLog;
    const first = log.firstIndex();
    const ents: string[] = [];
    for (let i = first; i <= log.lastIndex(); i++) ents.push(`${i}/${log.term(i)}`);
    const role = r.state === Role.Follower ? 'follower' : r.state;
    this.out.push(
      `state: ${role} term=${r.term} vote=${r.vote} lead=${r.lead}; log ${first - 1}/${log.term(first - 1)} | ${ents.join(' ') || '-'}; ` +
        `commit=${log.committed} applied=${log.applied}; stable to ${this.storage.lastIndex()}`,
    );
  }
}
