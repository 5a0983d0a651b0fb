#!/usr/bin/env node
// Stand-alone entry for `shoal lab ...` (node dist/cli/lab-main.js up ...), the same code
// `shoal lab` runs; tests use it so they do not depend on the rest of the CLI's wiring.
import { labMain } from './lab.js';

labMain(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`shoal lab: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
