// The manifest's `secrets:` and `configs:` sections: NAME -> {file, labels} (configs may give
// `data:` inline instead). A file is read relative to the manifest's folder (standard input: the
// current folder); a missing, unreadable, empty or oversized one is a problem at its line, so
// nothing is applied. A secret's content is only ever held to be sent to the cluster: it is never
// printed, and no problem message quotes it.
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isScalar } from 'yaml';
import { At, Fields, shown, str, word } from './walk.js';

export type FileKind = 'secret' | 'config';

/** A secret or config as the manifest declares it, with its content read and where it was written. */
export interface ManifestFile {
  kind: FileKind;
  name: string;
  labels: Record<string, string>;
  data: Buffer;
  /** The file it was read from as the manifest wrote it ('' for inline data). */
  source: string;
  file: string;
  line: number;
  /** Where each field was written (field -> line), to place the cluster's answers. */
  lines: Map<string, number>;
}

// The cluster's rules (manager/secrets/model.ts), checked here to name the line: Swarm's name
// rule, 500 KiB of secret data, 1000 KiB of config data.
const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?$/;
export const MAX_FILE_SIZE: Record<FileKind, number> = { secret: 500 * 1024, config: 1000 * 1024 };
/** One apply carries at most this much of their data (the API takes messages of 4 MiB). */
export const MAX_APPLY_DATA = 3 * 1024 * 1024;

const FIELDS: Record<FileKind, readonly string[]> = { secret: ['file', 'labels', 'data'], config: ['file', 'data', 'labels'] };

/** The folder a manifest's relative paths start from. */
export function baseDir(manifestPath: string): string {
  return manifestPath === '-' ? process.cwd() : dirname(resolve(manifestPath));
}

function readData(at: At, kind: FileKind, written: string, base: string): Buffer | undefined {
  const path = isAbsolute(written) ? written : resolve(base, written);
  const shownPath = path === written ? written : `${written} (${path})`;
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return at.problem(code === 'ENOENT' ? `cannot read ${shownPath}: no such file (a relative path starts from the manifest's folder)` : `cannot read ${shownPath}: ${(e as Error).message}`);
  }
  if (!st.isFile()) return at.problem(`${shownPath} is not a regular file`);
  if (st.size > MAX_FILE_SIZE[kind]) return at.problem(`${shownPath} is ${st.size} bytes: a ${kind} holds at most ${MAX_FILE_SIZE[kind]} bytes (${MAX_FILE_SIZE[kind] / 1024} KiB)`);
  if (st.size === 0) return at.problem(`${shownPath} is empty: a ${kind} needs content`);
  try {
    return readFileSync(path);
  } catch (e) {
    return at.problem(`cannot read ${shownPath}: ${(e as Error).message}`);
  }
}

function labels(at: At): Record<string, string> {
  const out: Record<string, string> = {};
  const f = Fields.any(at, 'a mapping of label: value');
  if (!f) return out;
  for (const k of f.keys()) {
    if (k === 'io.shoal.stack') {
      f.get(k).problem('io.shoal.stack is set by apply from the stack name; leave it out');
      continue;
    }
    const v = word(f.get(k));
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** One entry of `secrets:` or `configs:`; problems go to the document's list. */
export function fileOf(kind: FileKind, name: string, at: At, base: string): ManifestFile | undefined {
  const start = at.doc.problems.length;
  if (!NAME.test(name)) at.problemAtKey(`${kind} name ${JSON.stringify(name)} is not valid: use 1-64 letters, digits, '-', '_' and '.', starting and ending with a letter or digit`);
  const f = Fields.of(at, FIELDS[kind], kind === 'secret' ? 'a mapping with file (and labels)' : 'a mapping with file or data (and labels)');
  if (!f) return undefined;
  const lines = new Map<string, number>();
  for (const k of f.keys()) lines.set(k, f.get(k).line);
  let data: Buffer | undefined;
  let source = '';
  if (kind === 'secret' && f.has('data')) {
    f.get('data').problem('a secret comes from a file (file: PATH), never inline: the manifest is kept in version control and shown by diff');
  } else if (f.has('file') && f.has('data')) {
    f.get('data').problem('give file or data, not both');
  } else if (f.has('file')) {
    const p = str(f.get('file'), 'a path');
    if (p !== undefined) {
      if (p === '') f.get('file').problem('expected a path, got ""');
      else {
        source = p;
        data = readData(f.get('file'), kind, p, base);
      }
    }
  } else if (f.has('data')) {
    const d = f.get('data');
    const v = isScalar(d.node) ? d.node.value : undefined;
    if (typeof v !== 'string') d.problem(`expected the config's content as a string (a block: data: |), got ${shown(d.node)}`);
    else if (v === '') d.problem('the content is empty: a config needs content');
    else if (Buffer.byteLength(v) > MAX_FILE_SIZE.config) d.problem(`the content is ${Buffer.byteLength(v)} bytes: a config holds at most ${MAX_FILE_SIZE.config} bytes`);
    else data = Buffer.from(v);
  } else {
    f.at.problemAtKey(kind === 'secret' ? 'required: file, the path of the file that holds the secret' : 'required: file (a path) or data (the content)');
  }
  const l = labels(f.get('labels'));
  if (at.doc.problems.length > start || !data) return undefined;
  return { kind, name, labels: l, data, source, file: at.doc.file, line: at.keyLine, lines };
}
