// Builds a mutant: a copy of the compiled raft/ tree (dist/raft) in a scratch directory, with the
// mutant's patches applied to the TypeScript sources and only the patched files re-transpiled
// into the copy. The shipped dist/ is never touched. The scratch root gets a package.json
// (ES modules) and a node_modules link so the copied tests find tap.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Mutant } from './mutants.js';

/** The repository root (this file runs from <root>/dist/raft/mutants/). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const DIST_RAFT = join(REPO_ROOT, 'dist', 'raft');

export class PatchError extends Error {
  constructor(mutant: string, file: string, count: number) {
    super(
      `mutant ${mutant}: its search text occurs ${count} times in ${file} (it must occur exactly once); ` +
        `the code moved: update the mutant in raft/mutants/mutants.ts`,
    );
    this.name = 'PatchError';
  }
}

function occurrences(text: string, find: string): number {
  let n = 0;
  for (let i = text.indexOf(find); i >= 0; i = text.indexOf(find, i + 1)) n++;
  return n;
}

/** The patched TypeScript source of each file the mutant touches (throws PatchError). */
export function patchedSources(m: Mutant): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of m.patches) {
    const text = out.get(p.file) ?? readFileSync(join(REPO_ROOT, p.file), 'utf8');
    const n = occurrences(text, p.find);
    if (n !== 1) throw new PatchError(m.id, p.file, n);
    out.set(p.file, text.replace(p.find, () => p.replace));
  }
  return out;
}

type TS = typeof import('typescript');
let ts: TS | undefined;

function typescript(): TS {
  // typescript is a devDependency: the harness is a developer tool, like the build.
  ts ??= createRequire(import.meta.url)('typescript') as TS;
  return ts;
}

/** Transpiles one module the way tsconfig.json does (ES2022, ES modules), without type checks. */
export function transpile(source: string, fileName: string): string {
  const t = typescript();
  const r = t.transpileModule(source, {
    fileName,
    reportDiagnostics: true,
    compilerOptions: { target: t.ScriptTarget.ES2022, module: t.ModuleKind.ES2022, sourceMap: false, esModuleInterop: true },
  });
  const errors = (r.diagnostics ?? []).filter((d) => d.category === t.DiagnosticCategory.Error);
  if (errors.length > 0) {
    throw new Error(`${fileName}: the patched source does not parse: ${errors.map((d) => t.flattenDiagnosticMessageText(d.messageText, '\n')).join('; ')}`);
  }
  return r.outputText;
}

/** A scratch root for mutant copies (removed by the caller with removeScratch). */
export function makeScratch(prefix = 'shoal-mutants-'): string {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}${process.pid}-`));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'shoal-mutant-copy', private: true, type: 'module' }));
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

export function removeScratch(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Writes <scratch>/<name>/raft: the compiled raft tree with the mutant applied (null = the
 * unmutated baseline). Returns the directory that holds `raft/`.
 */
export function buildCopy(scratch: string, name: string, m: Mutant | null): string {
  if (!existsSync(join(DIST_RAFT, 'core', 'raft.js'))) throw new Error(`${DIST_RAFT} is not built: run npm run build first`);
  const sources = m ? patchedSources(m) : new Map<string, string>();
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  cpSync(DIST_RAFT, join(dir, 'raft'), { recursive: true, filter: (src) => !src.endsWith('.map') });
  // Data the copied tests read beside their compiled code.
  const testdata = join(REPO_ROOT, 'raft', 'core', 'testdata');
  if (existsSync(testdata)) cpSync(testdata, join(dir, 'raft', 'core', 'testdata'), { recursive: true });
  for (const [file, text] of sources) {
    const js = join(dir, file.replace(/\.ts$/, '.js'));
    writeFileSync(js, transpile(text, file));
  }
  return dir;
}
