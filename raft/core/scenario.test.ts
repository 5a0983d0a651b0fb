// Runs the data-driven scenario scripts in raft/core/testdata/ (see scenario.ts for the format).
// Each block's output must equal the expected text. REWRITE=1 rewrites the expected outputs in the
// source tree (then read the diff: the golden output is only as right as its review).
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseScript, renderScript, ScenarioNode } from './scenario.js';

const here = dirname(fileURLToPath(import.meta.url));
// Beside the compiled test when copied there (the mutation harness does), else in the source tree.
const dir = [join(here, 'testdata'), resolve(here, '..', '..', '..', 'raft', 'core', 'testdata')].find((d) => existsSync(d));
if (!dir) throw new Error(`raft/core/testdata not found near ${here}`);

for (const f of readdirSync(dir).filter((x) => x.endsWith('.txt')).sort()) {
  t.test(f, async (t) => {
    const path = join(dir, f);
    const text = readFileSync(path, 'utf8');
    const node = new ScenarioNode();
    const outputs = new Map<number, string>();
    for (const b of parseScript(text)) {
      let got: string;
      try {
        got = node.run(b.cmd);
      } catch (e) {
        got = `error: ${(e as Error).message}`;
      }
      outputs.set(b.line, got);
      if (!process.env.REWRITE) t.equal(got, b.expected, `${f}:${b.line}: ${b.cmd.split('\n')[0]}`);
    }
    if (process.env.REWRITE) {
      writeFileSync(path, renderScript(text, outputs));
      t.pass(`rewrote ${path}`);
    }
  });
}
