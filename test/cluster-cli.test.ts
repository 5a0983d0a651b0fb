// Usage errors of shoal and shoald: a clear message, exit status 2 (1 when no daemon answers).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { SHOAL, SHOALD } from './cluster-harness.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-cli-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function run(bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => execFile(process.execPath, [bin, ...args], { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr })));
}

t.test('shoal usage errors', async (t) => {
  const cases: [string[], number, RegExp][] = [
    [['frobnicate'], 2, /unknown command "frobnicate"/],
    [['node', 'ls', '--colour', 'red'], 2, /unknown flag --colour/],
    [['--format', 'yaml', 'node', 'ls'], 2, /--format must be table or json, got yaml/],
    [['join', '127.0.0.1:1'], 2, /usage: shoal join --token TOKEN MANAGER:PORT/],
    [['join-token', 'admin'], 2, /usage: shoal join-token worker\|manager/],
    [['--state-dir', join(dir, 'none'), 'init', '--cert-expiry', '3 weeks'], 2, /--cert-expiry must be a number with s, m, h or d/],
    [['--state-dir', join(dir, 'none'), 'node', 'update', 'n1'], 2, /node update: give --availability, --label-add or --label-rm/],
    [['--state-dir', join(dir, 'none'), 'node', 'update', '--label-add', 'novalue', 'n1'], 2, /--label-add needs key=value/],
    [['--state-dir', join(dir, 'none'), 'node', 'promote'], 2, /usage: shoal node promote NODE/],
    [['--state-dir', join(dir, 'none'), 'node', 'ls'], 1, /shoald is not running with state dir .*none/],
    [['--state-dir', join(dir, 'none'), 'init'], 1, /shoald is not running with state dir/],
  ];
  for (const [args, code, msg] of cases) {
    const r = await run(SHOAL, args);
    t.equal(r.code, code, `shoal ${args.join(' ')}: exit ${code}`);
    t.match(r.stderr, msg);
  }
  const help = await run(SHOAL, ['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /usage: shoal/);
});

t.test('shoald flag errors', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--state-dir', dir, '--listen', '0.0.0.0:4242'], /is a wildcard: give --advertise/],
    [['--state-dir', dir, '--listen', 'nope'], /--listen must be HOST:PORT/],
    [['--state-dir', dir, '--listen', '127.0.0.1:1', '--join', '127.0.0.1:2'], /--join needs --token/],
    [['--state-dir', dir, '--listen', '127.0.0.1:1', '--init', '--join', 'x:1', '--token', 't'], /--init and --join exclude each other/],
    [['--state-dir', dir, '--raft-port', '70000'], /--raft-port needs a port number/],
    [['--bogus'], /unknown flag --bogus/],
  ];
  for (const [args, msg] of cases) {
    const r = await run(SHOALD, args);
    t.equal(r.code, 2, `shoald ${args.join(' ')}: exit 2`);
    t.match(r.stderr, msg);
  }
});
