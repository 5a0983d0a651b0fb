// Reading manifests: `-f FILE`, `-f DIR` (its *.yaml and *.yml files, in name order, not
// recursive) and `-f -` (standard input), each file one or more YAML documents (`---`). All of it
// is one apply: one stack, each service, secret and config declared once. Every problem in every
// file is collected. The files that secrets and configs name are read here (relative to their
// manifest's folder), so a missing one stops the apply before anything is sent.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LineCounter, isScalar, parseAllDocuments } from 'yaml';
import { CliError } from '../client.js';
import { serviceOf, TOP_FIELDS, type ManifestService } from './schema.js';
import { At, Fields, formatProblem, str, type Problem, type Source } from './walk.js';
import { MAX_APPLY_DATA, baseDir, fileOf, type FileKind, type ManifestFile } from './files.js';

export interface Manifest {
  stack: string;
  services: ManifestService[];
  secrets: ManifestFile[];
  configs: ManifestFile[];
  /** The manifest files read (<stdin> for standard input). */
  files: string[];
  problems: Problem[];
}

const STACK_NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;

/** The files `-f` names: a file, every *.yaml / *.yml of a folder, or - for standard input. */
export function expandPaths(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (p === '-') {
      out.push('-');
      continue;
    }
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new CliError(`cannot read ${p}: no such file or folder`);
    }
    if (st.isDirectory()) {
      const files = readdirSync(p).filter((f) => /\.ya?ml$/.test(f)).sort();
      if (files.length === 0) throw new CliError(`${p} holds no .yaml or .yml file`);
      out.push(...files.map((f) => join(p, f)));
    } else out.push(p);
  }
  return out;
}

/** Reads and checks every document; the problems are in `problems`, nothing is thrown for them. */
export function loadManifest(paths: string[], stdin: () => string = () => readFileSync(0, 'utf8')): Manifest {
  const m: Manifest = { stack: '', services: [], secrets: [], configs: [], files: [], problems: [] };
  let stackAt: { file: string; line: number } | undefined;
  const seen = new Map<string, ManifestService>();
  const seenFiles = new Map<string, ManifestFile>();
  for (const path of expandPaths(paths)) {
    const file = path === '-' ? '<stdin>' : path;
    m.files.push(file);
    const text = path === '-' ? stdin() : readFileSync(path, 'utf8');
    parseText(text, file, baseDir(path), m, (stack, at) => {
      if (m.stack && stack !== m.stack) at.problem(`stack ${JSON.stringify(stack)} differs from ${JSON.stringify(m.stack)} (${stackAt!.file}:${stackAt!.line}): one apply is one stack`);
      else if (!m.stack) {
        m.stack = stack;
        stackAt = { file: at.doc.file, line: at.line };
      }
    }, (svc, at) => {
      const first = seen.get(svc.name);
      if (first) at.problem(`declared twice (first at ${first.file}:${first.line})`);
      else {
        seen.set(svc.name, svc);
        m.services.push(svc);
      }
    }, (mf, at) => {
      const first = seenFiles.get(`${mf.kind}/${mf.name}`);
      if (first) at.problemAtKey(`declared twice (first at ${first.file}:${first.line})`);
      else {
        seenFiles.set(`${mf.kind}/${mf.name}`, mf);
        (mf.kind === 'secret' ? m.secrets : m.configs).push(mf);
      }
    });
  }
  const total = [...m.secrets, ...m.configs].reduce((n, x) => n + x.data.length, 0);
  if (total > MAX_APPLY_DATA) {
    const first = m.secrets[0] ?? m.configs[0]!;
    m.problems.push({ file: first.file, line: first.line, path: '', message: `the secrets and configs hold ${total} bytes together: one apply carries at most ${MAX_APPLY_DATA} bytes (${MAX_APPLY_DATA / 1024 / 1024} MiB) of their data; create the large ones with "shoal secret create" / "shoal config create" and refer to them from the services without declaring them here` });
  }
  // In file order, then by line: the order a reader fixes them in.
  const order = new Map(m.files.map((f, i) => [f, i]));
  m.problems.sort((a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line);
  return m;
}

function parseText(text: string, file: string, base: string, m: Manifest, onStack: (s: string, at: At) => void, onService: (s: ManifestService, at: At) => void, onFile: (f: ManifestFile, at: At) => void): void {
  const lines = new LineCounter();
  const src: Source = { file, lines, problems: m.problems };
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: true });
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) m.problems.push({ file, line: e.linePos?.[0]?.line ?? 1, path: '', message: `not valid YAML: ${e.message.split(' at line')[0]}` });
      continue;
    }
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue; // an empty document (comments only)
    const root = new At(src, doc.contents, '', 1);
    const f = Fields.of(root, TOP_FIELDS, 'a mapping with stack and services');
    if (!f) continue;
    const stack = str(f.get('stack'));
    if (stack !== undefined) {
      if (!STACK_NAME.test(stack)) f.get('stack').problem(`stack name ${JSON.stringify(stack)} is not valid: use 1-63 lower-case letters, digits, '.', '_' and '-', starting and ending with a letter or digit`);
      else onStack(stack, f.get('stack'));
    }
    for (const kind of ['secret', 'config'] as FileKind[]) {
      const decl = Fields.any(f.get(`${kind}s`), `a mapping of ${kind} names to their file${kind === 'config' ? ' or data' : ''}`);
      for (const name of decl?.keys() ?? []) {
        const at = decl!.get(name);
        const mf = fileOf(kind, name, at, base);
        if (mf) onFile(mf, at);
      }
    }
    const services = Fields.any(f.get('services'), 'a mapping of service names to their fields');
    if (!services) continue;
    for (const name of services.keys()) {
      const at = services.get(name);
      const svc = serviceOf(name, at);
      if (svc) onService(svc, at);
    }
  }
}

/** For callers that want one message: every problem, one per line, and how many. */
export function problemsText(problems: Problem[]): string {
  return problems.map(formatProblem).join('\n');
}
