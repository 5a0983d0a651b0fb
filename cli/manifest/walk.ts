// Reading a parsed YAML document field by field with the place of every value at hand, so each
// problem is told as `FILE:LINE: PATH: what was expected, got what` (PATH as services.web.replicas).
// Problems are collected, not thrown: one run reports every mistake in the file.
import { isMap, isScalar, isSeq, type LineCounter, type Node, type Pair, type YAMLMap } from 'yaml';

export interface Problem {
  file: string;
  line: number;
  path: string;
  message: string;
}

export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
}

/** A value in a document: its node (undefined when the key is absent), where it is, and how it is named. */
export class At {
  constructor(
    readonly doc: Source,
    readonly node: Node | null | undefined,
    readonly path: string,
    /** The line of its key (of its parent's key when it is absent; its own line in a list). */
    readonly keyLine: number,
  ) {}

  get present(): boolean {
    return this.node !== undefined;
  }

  get line(): number {
    const r = this.node?.range;
    return r ? this.doc.lines.linePos(r[0]).line : this.keyLine;
  }

  problem(message: string): undefined {
    this.doc.problems.push({ file: this.doc.file, line: this.line, path: this.path, message });
    return undefined;
  }

  /** A problem with the whole entry (its name, its shape): told at its key's line. */
  problemAtKey(message: string): undefined {
    this.doc.problems.push({ file: this.doc.file, line: this.keyLine, path: this.path, message });
    return undefined;
  }

  child(key: string, node: Node | null | undefined, keyLine?: number): At {
    return new At(this.doc, node, this.path ? `${this.path}.${key}` : key, keyLine ?? this.keyLine);
  }

  item(i: number, node: Node | null | undefined): At {
    const r = node?.range;
    return new At(this.doc, node, `${this.path}[${i}]`, r ? this.doc.lines.linePos(r[0]).line : this.line);
  }
}

export interface Source {
  file: string;
  lines: LineCounter;
  problems: Problem[];
}

/** How a value is shown in "got ...". */
export function shown(node: Node | null | undefined): string {
  if (node === null || node === undefined) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'nothing (null)';
    return typeof v === 'string' ? JSON.stringify(v) : String(v);
  }
  return 'an alias';
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length]![b.length]!;
}

export function suggest(key: string, known: readonly string[]): string {
  const lower = key.toLowerCase();
  const best = known.map((k) => [k, distance(lower, k.toLowerCase())] as const).sort((x, y) => x[1] - y[1])[0];
  if (best && best[1] <= Math.max(2, Math.floor(key.length / 3))) return ` (did you mean ${best[0]}?)`;
  return '';
}

/**
 * A mapping's fields: unknown keys are reported (with the closest known one), each known field is
 * handed out as an At. Undefined (reported) when the value is not a mapping.
 */
export class Fields {
  private readonly pairs = new Map<string, Pair<Node, Node | null>>();

  private constructor(readonly at: At, map: YAMLMap<Node, Node | null>) {
    for (const p of map.items) {
      const k = isScalar(p.key) ? p.key.value : undefined;
      if (typeof k !== 'string' && typeof k !== 'number') {
        new At(at.doc, p.key as Node, at.path, at.keyLine).problem(`keys must be plain names, got ${shown(p.key as Node)}`);
        continue;
      }
      this.pairs.set(String(k), p);
    }
  }

  static of(at: At, known: readonly string[], what = 'a mapping'): Fields | undefined {
    if (!at.present) return undefined;
    if (!isMap(at.node)) return at.problem(`expected ${what}, got ${shown(at.node)}`);
    const f = new Fields(at, at.node as YAMLMap<Node, Node | null>);
    for (const [k, p] of f.pairs) {
      if (known.includes(k)) continue;
      const hint = suggest(k, known);
      f.keyAt(k, p).problem(`unknown field${hint || `; known here: ${known.join(', ')}`}`);
    }
    return f;
  }

  /** Any keys (a map of names to values, like env or labels). */
  static any(at: At, what = 'a mapping'): Fields | undefined {
    if (!at.present) return undefined;
    if (!isMap(at.node)) return at.problem(`expected ${what}, got ${shown(at.node)}`);
    return new Fields(at, at.node as YAMLMap<Node, Node | null>);
  }

  private keyAt(k: string, p: Pair<Node, Node | null>): At {
    // The key's own line: an unknown key is reported where it is written.
    const line = p.key?.range ? this.at.doc.lines.linePos(p.key.range[0]).line : this.at.keyLine;
    return new At(this.at.doc, p.key, this.at.path ? `${this.at.path}.${k}` : k, line);
  }

  get(k: string): At {
    const p = this.pairs.get(k);
    if (!p) return this.at.child(k, undefined);
    // A key written with no value (`replicas:`) is null, present.
    const line = p.key?.range ? this.at.doc.lines.linePos(p.key.range[0]).line : this.at.keyLine;
    return this.at.child(k, p.value ?? null, line);
  }

  keys(): string[] {
    return [...this.pairs.keys()];
  }

  has(k: string): boolean {
    return this.pairs.has(k);
  }
}

// ---- scalars ----

function scalar(at: At): unknown {
  return isScalar(at.node) ? at.node.value : undefined;
}

export function str(at: At, what = 'a string'): string | undefined {
  if (!at.present) return undefined;
  const v = scalar(at);
  if (typeof v !== 'string') return at.problem(`expected ${what}, got ${shown(at.node)}`);
  return v;
}

/** A string, or a number/boolean written without quotes (command words, env values). */
export function word(at: At): string | undefined {
  if (!at.present) return undefined;
  const v = scalar(at);
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return isScalar(at.node) && at.node.source !== undefined ? String(at.node.source) : String(v);
  return at.problem(`expected a string, got ${shown(at.node)}`);
}

export function int(at: At, min = 0): number | undefined {
  if (!at.present) return undefined;
  const v = scalar(at);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > Number.MAX_SAFE_INTEGER) {
    return at.problem(`expected ${min === 0 ? 'a non-negative integer' : `an integer of at least ${min}`}, got ${shown(at.node)}`);
  }
  return v;
}

export function bool(at: At): boolean | undefined {
  if (!at.present) return undefined;
  const v = scalar(at);
  if (typeof v !== 'boolean') return at.problem(`expected true or false, got ${shown(at.node)}`);
  return v;
}

export function oneOf<T extends string>(at: At, values: readonly T[]): T | undefined {
  const v = str(at, `one of ${values.join(', ')}`);
  if (v === undefined) return undefined;
  if (!values.includes(v as T)) return at.problem(`expected one of ${values.join(', ')}, got ${JSON.stringify(v)}${suggest(v, values)}`);
  return v as T;
}

/** A list of words; a single string is refused (a command split by hand is the user's to write). */
export function words(at: At, what = 'a list of strings'): string[] | undefined {
  if (!at.present) return undefined;
  if (!isSeq(at.node)) return at.problem(`expected ${what}, got ${shown(at.node)}`);
  const out: string[] = [];
  let ok = true;
  at.node.items.forEach((n, i) => {
    const w = word(at.item(i, n as Node));
    if (w === undefined) ok = false;
    else out.push(w);
  });
  return ok ? out : undefined;
}

export function list(at: At, what: string): { at: At; i: number }[] | undefined {
  if (!at.present) return undefined;
  if (!isSeq(at.node)) return at.problem(`expected ${what}, got ${shown(at.node)}`);
  return at.node.items.map((n, i) => ({ at: at.item(i, n as Node), i }));
}

export function required(at: At, what: string): boolean {
  if (at.present && at.node !== null && !(isScalar(at.node) && at.node.value === null)) return true;
  at.problem(`required: ${what}`);
  return false;
}
