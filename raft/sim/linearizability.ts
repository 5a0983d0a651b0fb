// A linearizability checker for key-value histories, after Porcupine (Athalye), which implements
// Horn & Kroening's "Faster linearizability checking via P-compositionality" on top of Lowe's
// refinement of the Wing & Gong search:
//
//  - P-compositionality: a KV history is linearizable iff each key's sub-history is, so the
//    history is partitioned by key and each part searched alone (the search is NP-complete in
//    the part's size; partitioning is what keeps it tractable).
//  - The search walks a doubly linked list of call/return entries in time order. At a call it
//    tries to linearize the operation now (the model must accept it from the current state); on
//    success the op's call and return are lifted out of the list and the walk restarts. At a
//    return whose call is still in the list, no order exists below the current choices: pop the
//    undo stack, put the op back and try the next call.
//  - Memoisation: a (set of linearized ops, model state) pair reached once is never explored
//    again; it is what turns the search from factorial into something usable.
//
// An operation without a reply stays open until the end of the history: it may have taken effect
// at any point after its call, or never (linearizing it last is indistinguishable from never).
// This module is shared by the simulator and by real-process tests: it knows nothing of raft.

export type KvOpKind = 'get' | 'put' | 'append' | 'cas';

export interface Operation {
  /** Who issued it (only used in explanations). */
  clientId: number | string;
  key: string;
  op: KvOpKind;
  /** put/append: the argument; cas: the value to store if the current value equals `expect`. */
  value?: string;
  /** cas only: the value the key must hold for the swap to happen. */
  expect?: string;
  /** get: the value read ('' for a key never written). Ignored for writes. */
  output?: string;
  /** cas: whether the swap happened, as replied. */
  ok?: boolean;
  /** When the client sent it. */
  call: number;
  /** When the reply arrived; null/undefined/Infinity when it never did. */
  return?: number | null;
}

export interface CheckResult {
  ok: boolean;
  /** The first key whose sub-history has no linearization. */
  key?: string;
  explanation?: string;
  /** The search budget ran out: neither proven nor refuted (ok is false). */
  unknown?: boolean;
}

export interface CheckOptions {
  /** Max search steps per key before giving up with `unknown` (default 20 million). */
  maxStepsPerKey?: number;
}

/** The value every key holds before any write. */
export const INITIAL_VALUE = '';

function answered(o: Operation): boolean {
  return o.return !== null && o.return !== undefined && o.return !== Infinity;
}

function validate(ops: Operation[]): void {
  ops.forEach((o, i) => {
    const where = `history[${i}] (client ${String(o?.clientId)})`;
    if (o === null || typeof o !== 'object') throw new TypeError(`${where}: an operation must be an object`);
    if (typeof o.key !== 'string') throw new TypeError(`${where}: key must be a string`);
    if (!['get', 'put', 'append', 'cas'].includes(o.op)) {
      throw new TypeError(`${where}: op must be get, put, append or cas, got ${JSON.stringify(o.op)}`);
    }
    if (typeof o.call !== 'number' || !Number.isFinite(o.call)) {
      throw new TypeError(`${where}: call must be a finite number, got ${String(o.call)}`);
    }
    if (o.return !== null && o.return !== undefined) {
      if (typeof o.return !== 'number' || Number.isNaN(o.return)) {
        throw new TypeError(`${where}: return must be a number, null or undefined, got ${String(o.return)}`);
      }
      if (o.return < o.call) throw new RangeError(`${where}: returns (${o.return}) before it is called (${o.call})`);
    }
    if ((o.op === 'put' || o.op === 'append' || o.op === 'cas') && typeof o.value !== 'string') {
      throw new TypeError(`${where}: a ${o.op} needs a string value`);
    }
    if (o.op === 'cas' && typeof o.expect !== 'string') throw new TypeError(`${where}: a cas needs a string expect`);
    if (answered(o) && o.op === 'get' && typeof o.output !== 'string') {
      throw new TypeError(`${where}: an answered get needs its output string`);
    }
    if (answered(o) && o.op === 'cas' && typeof o.ok !== 'boolean') {
      throw new TypeError(`${where}: an answered cas needs ok: boolean`);
    }
  });
}

/** The KV model's step: does `o` fit at state `s`, and what is the state after it. */
function step(s: string, o: Operation, isAnswered: boolean): string | null {
  switch (o.op) {
    case 'get':
      return !isAnswered || o.output === s ? s : null;
    case 'put':
      return o.value as string;
    case 'append':
      return s + (o.value as string);
    case 'cas': {
      const swapped = s === o.expect;
      if (isAnswered && o.ok !== swapped) return null;
      return swapped ? (o.value as string) : s;
    }
  }
}

interface Entry {
  op: number; // index into the partition's op list
  isCall: boolean;
  time: number;
  match: Entry | null; // call -> its return
  prev: Entry | null;
  next: Entry | null;
}

function fmtTime(x: number): string {
  return Number.isInteger(x) ? String(x) : String(Number(x.toFixed(3)));
}

function describe(o: Operation): string {
  const ret = answered(o) ? fmtTime(o.return as number) : '∞ (no reply)';
  let what: string;
  switch (o.op) {
    case 'get':
      what = answered(o) ? `get → ${JSON.stringify(o.output)}` : 'get → (no reply)';
      break;
    case 'put':
      what = `put ${JSON.stringify(o.value)}`;
      break;
    case 'append':
      what = `append ${JSON.stringify(o.value)}`;
      break;
    case 'cas':
      what = `cas ${JSON.stringify(o.expect)}→${JSON.stringify(o.value)}${answered(o) ? (o.ok ? ' ok' : ' failed') : ''}`;
  }
  return `client ${String(o.clientId)}: ${what} [${fmtTime(o.call)}, ${ret}]`;
}

/** Searches one key's sub-history. Returns null when linearizable, else an explanation. */
function checkKey(ops: Operation[], maxSteps: number): { explanation: string; unknown: boolean } | null {
  const n = ops.length;
  const done = ops.map(answered);
  const entries: Entry[] = [];
  for (let i = 0; i < n; i++) {
    const ret: Entry = { op: i, isCall: false, time: done[i] ? (ops[i].return as number) : Infinity, match: null, prev: null, next: null };
    const call: Entry = { op: i, isCall: true, time: ops[i].call, match: ret, prev: null, next: null };
    entries.push(call, ret);
  }
  // Time order; at equal times calls first (operations that touch are treated as concurrent).
  entries.sort((x, y) => x.time - y.time || (x.isCall === y.isCall ? x.op - y.op : x.isCall ? -1 : 1));
  const head: Entry = { op: -1, isCall: false, time: -Infinity, match: null, prev: null, next: null };
  let prev = head;
  for (const e of entries) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }
  const lift = (e: Entry): void => {
    (e.prev as Entry).next = e.next;
    if (e.next) e.next.prev = e.prev;
    const m = e.match as Entry;
    (m.prev as Entry).next = m.next;
    if (m.next) m.next.prev = m.prev;
  };
  const unlift = (e: Entry): void => {
    const m = e.match as Entry;
    (m.prev as Entry).next = m;
    if (m.next) m.next.prev = m;
    (e.prev as Entry).next = e;
    if (e.next) e.next.prev = e;
  };

  const words = new Uint16Array(Math.ceil(n / 16));
  const setBit = (i: number): void => {
    words[i >> 4] |= 1 << (i & 15);
  };
  const clearBit = (i: number): void => {
    words[i >> 4] &= ~(1 << (i & 15));
  };
  const keyOf = (state: string): string => String.fromCharCode(...words) + '\u0000' + state;
  const seen = new Set<string>();

  let state = INITIAL_VALUE;
  const stack: { entry: Entry; state: string }[] = [];
  let best: { linearized: number[]; state: string } = { linearized: [], state };
  let steps = 0;
  let entry = head.next;
  while (head.next !== null) {
    if (++steps > maxSteps) {
      return { unknown: true, explanation: `gave up after ${maxSteps} search steps over ${n} operations` };
    }
    const e = entry as Entry;
    if (e.isCall) {
      const next = step(state, ops[e.op], done[e.op]);
      if (next !== null) {
        setBit(e.op);
        const k = keyOf(next);
        if (!seen.has(k)) {
          seen.add(k);
          stack.push({ entry: e, state });
          state = next;
          lift(e);
          if (stack.length > best.linearized.length) {
            best = { linearized: stack.map((f) => f.entry.op), state };
          }
          entry = head.next;
          continue;
        }
        clearBit(e.op);
      }
      entry = e.next;
    } else {
      // A return whose call is still pending: nothing can be linearized before it any more.
      const top = stack.pop();
      if (top === undefined) return { explanation: explain(ops, best), unknown: false };
      state = top.state;
      clearBit(top.entry.op);
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return null;
}

function explain(ops: Operation[], best: { linearized: number[]; state: string }): string {
  const inBest = new Set(best.linearized);
  const rest = ops.map((o, i) => ({ o, i })).filter(({ i }) => !inBest.has(i));
  rest.sort((x, y) => (answered(x.o) ? (x.o.return as number) : Infinity) - (answered(y.o) ? (y.o.return as number) : Infinity));
  const lines = [
    `no linearization of ${ops.length} operations; the longest linearizable prefix orders ${best.linearized.length} of them and leaves the value ${JSON.stringify(best.state)}:`,
    ...best.linearized.slice(-6).map((i) => `    ok  ${describe(ops[i])}`),
    '  none of the remaining operations fits next; the earliest to return:',
    ...rest.slice(0, 4).map(({ o }) => `    ✗   ${describe(o)}`),
  ];
  return lines.join('\n');
}

/**
 * Drops unanswered writes that no read could have observed. For a key without cas, an unanswered
 * put/append that no read's output shows can only be linearized where nothing reads it before the
 * next put overwrites it, which is the same as never; and "never" is always allowed for an op
 * without a reply (linearize it last). Removing such ops keeps the answer and saves the search
 * from trying every position of every lost write, which is what makes it explode.
 *
 * A read shows a put only if its output starts with the put's value (appends only extend it); a
 * read shows an append if its output contains the appended value anywhere. Testing puts with
 * "contains" kept lost puts such as "3.1" because a read held the appended "3.13;", and a dozen
 * of those made the search give up (raft/sim seed 1806 after the FINDINGS #4b core fix).
 */
function pruneInvisible(ops: Operation[]): Operation[] {
  if (ops.some((o) => o.op === 'cas')) return ops;
  const reads = ops.filter((o) => o.op === 'get' && answered(o)).map((o) => o.output as string);
  const shown = (o: Operation): boolean => {
    const v = o.value as string;
    return o.op === 'put' ? reads.some((r) => r.startsWith(v)) : reads.some((r) => r.includes(v));
  };
  return ops.filter((o) => answered(o) || o.op === 'get' || (o.value as string).length === 0 || shown(o));
}

/**
 * Checks a KV history (get/put/append/cas over string values, '' for a never-written key).
 * Throws TypeError/RangeError naming the bad operation when the history is malformed.
 */
export function checkHistory(ops: Operation[], options: CheckOptions = {}): CheckResult {
  if (!Array.isArray(ops)) throw new TypeError('checkHistory: the history must be an array of operations');
  validate(ops);
  const maxSteps = options.maxStepsPerKey ?? 20_000_000;
  const byKey = new Map<string, Operation[]>();
  for (const o of ops) {
    // An unanswered get has no effect and constrains nothing: leave it out of the search.
    if (o.op === 'get' && !answered(o)) continue;
    let part = byKey.get(o.key);
    if (!part) byKey.set(o.key, (part = []));
    part.push(o);
  }
  for (const [key, part] of byKey) byKey.set(key, pruneInvisible(part));
  const keys = [...byKey.keys()].sort();
  let unknownKey: { key: string; explanation: string } | null = null;
  for (const key of keys) {
    const r = checkKey(byKey.get(key) as Operation[], maxSteps);
    if (r === null) continue;
    if (!r.unknown) return { ok: false, key, explanation: `key ${JSON.stringify(key)}: ${r.explanation}` };
    unknownKey ??= { key, explanation: r.explanation };
  }
  if (unknownKey) {
    return { ok: false, unknown: true, key: unknownKey.key, explanation: `key ${JSON.stringify(unknownKey.key)}: ${unknownKey.explanation}` };
  }
  return { ok: true };
}
