// The lab hands join tokens to `shoal join` in the environment, never on its command line (which
// every user of the machine can read in ps). Checked on the real CLI inside a namespace: with the
// token only in the environment it gets past reading the token (and then finds no daemon).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { deleteNetns } from './netns.js';
import { run } from './sh.js';
import { joinCommand, joinNode } from './shoald.js';
import type { LabNode } from './state.js';

const TOKEN = `SHL-1-${'0'.repeat(50)}-${'1'.repeat(25)}`;
// An inherited token would let the CLI find one even if the lab handed it none.
delete process.env.SHOAL_JOIN_TOKEN;

t.test('joinCommand: the token is in the environment, not in the arguments', async (t) => {
  const j = joinCommand(TOKEN, '10.99.0.11:4242');
  t.same(j.args, ['join', '10.99.0.11:4242']);
  t.notOk(j.args.some((a) => a.includes(TOKEN)), 'no argument holds the token');
  t.same(j.env, { SHOAL_JOIN_TOKEN: TOKEN });
});

t.test('joinNode: the CLI in the host namespace receives the token', async (t) => {
  const ns = `ndj${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), `shoal-labjoin-${process.pid}-`));
  t.teardown(() => {
    deleteNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });
  deleteNetns(ns);
  run(['ip', 'netns', 'add', ns]);
  const n: LabNode = { name: 'worker-1', role: 'worker', netns: ns, port: 'v-worker-1', address: '127.0.0.1', stateDir: join(dir, 'worker-1'), logFile: join(dir, 'w.log'), argv: [] };
  const err = await joinNode(n, TOKEN, '127.0.0.1:1', 120_000).then(() => undefined, (e: Error) => e);
  // Without the token the CLI would stop at a usage error (exit 2) before looking for shoald.
  t.match(err?.message, /`shoal join 127\.0\.0\.1:1` on worker-1 failed \(exit 1\): shoal: shoald is not running with state dir/);
  t.notMatch(err?.message, new RegExp(TOKEN), 'the error (it shows the command) holds no token');
});
