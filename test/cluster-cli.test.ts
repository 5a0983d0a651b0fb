// Usage errors of shoal and shoald: a clear message, exit status 2 (1 when no daemon answers).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { SHOAL, SHOALD } from './cluster-harness.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-cli-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const tokenFile = join(dir, 'ok.token');
writeFileSync(tokenFile, 'SHL-1-abc-def\n', { mode: 0o600 });
const emptyFile = join(dir, 'empty.token');
writeFileSync(emptyFile, '\n \n', { mode: 0o600 });
const twoWords = join(dir, 'two.token');
writeFileSync(twoWords, 'SHL-1-a-b\nSHL-1-c-d\n', { mode: 0o600 });

// Without an inherited SHOAL_JOIN_TOKEN, which would change what "no token given" means.
const env = { ...process.env };
delete env.SHOAL_JOIN_TOKEN;

function run(bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => execFile(process.execPath, [bin, ...args], { timeout: 90_000, env }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr })));
}

/**
 * Runs each command line, 3 at a time: each is a Node process start (a few hundred ms of CPU);
 * 17 at once on a loaded 2-core machine took 33 s each, past the 30 s bound of `run`.
 */
async function runAll(bin: string, lines: string[][]): Promise<{ code: number; stdout: string; stderr: string }[]> {
  const results: { code: number; stdout: string; stderr: string }[] = [];
  let next = 0;
  const worker = async () => {
    while (next < lines.length) {
      const i = next++;
      results[i] = await run(bin, lines[i]!);
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  return results;
}

t.test('shoal usage errors', async (t) => {
  const cases: [string[], number, RegExp][] = [
    [['frobnicate'], 2, /unknown command "frobnicate"/],
    [['node', 'ls', '--colour', 'red'], 2, /unknown flag "--colour"/],
    [['--format', 'yaml', 'node', 'ls'], 2, /--format must be table or json, got yaml/],
    [['join', '127.0.0.1:1'], 2, /usage: shoal join \(--token-file F \| --token TOKEN\) \[MANAGER:PORT\], or with the token in \$SHOAL_JOIN_TOKEN; without MANAGER:PORT the local shoald finds a manager on the DHT/],
    [['join', '--token', 'a', '--token-file', tokenFile, '127.0.0.1:1'], 2, /give the join token once: --token or --token-file, not both/],
    [['join', '--token-file', join(dir, 'missing'), '127.0.0.1:1'], 2, /cannot read the join token from --token-file .*missing: no such file/],
    [['join', '--token-file', emptyFile, '127.0.0.1:1'], 2, /--token-file .*empty.token is empty: it must hold the join token/],
    [['join', '--token-file', twoWords, '127.0.0.1:1'], 2, /--token-file .*two.token holds 2 words: it must hold only the join token/],
    [['join', '--token-file', dir, '127.0.0.1:1'], 2, /cannot read the join token from --token-file .*: it is a directory/],
    [['--state-dir', join(dir, 'none'), 'join', '--token-file', tokenFile, '127.0.0.1:1'], 1, /shoald is not running with state dir/],
    [['join-token', 'admin'], 2, /usage: shoal join-token worker\|manager/],
    [['--state-dir', join(dir, 'none'), 'init', '--cert-expiry', '3 weeks'], 2, /--cert-expiry must be a number with s, m, h or d/],
    [['--state-dir', join(dir, 'none'), 'node', 'update', 'n1'], 2, /node update: give --availability, --label-add or --label-rm/],
    [['--state-dir', join(dir, 'none'), 'node', 'update', '--label-add', 'novalue', 'n1'], 2, /--label-add needs key=value/],
    [['--state-dir', join(dir, 'none'), 'node', 'promote'], 2, /usage: shoal node promote NODE/],
    [['--state-dir', join(dir, 'none'), 'node', 'ls'], 1, /shoald is not running with state dir .*none/],
    [['--state-dir', join(dir, 'none'), 'init'], 1, /shoald is not running with state dir/],
  ];
  const results = await runAll(SHOAL, cases.map(([args]) => args));
  cases.forEach(([args, code, msg], i) => {
    t.equal(results[i]!.code, code, `shoal ${args.join(' ')}: exit ${code}`);
    t.match(results[i]!.stderr, msg);
  });
  const help = await run(SHOAL, ['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: shoal .*COMMAND/);
});

t.test('help: per command, on stdout with exit 0; --version; "did you mean" for a mistyped word', async (t) => {
  const ok: [string[], RegExp][] = [
    [[], /Commands:\n(.|\n)*node .*list and manage(.|\n)*service /],
    [['help'], /Commands:/],
    [['help', 'node'], /shoal node: list and manage(.|\n)*Commands:(.|\n)*promote(.|\n)*Flags:/],
    [['node', '--help'], /shoal node: list and manage/],
    [['node'], /shoal node: list and manage/],
    [['help', 'service', 'create'], /shoal service create: (.|\n)*--replicas N(.|\n)*Examples:/],
    [['service', 'create', '--help'], /--liveness\|--readiness\|--startup PROBE/],
    [['node', 'ls', '--help'], /Usage:\n  shoal node ls/],
    [['--version'], /^shoal \d+\.\d+\.\d+ \(\//],
  ];
  const okResults = await runAll(SHOAL, ok.map(([args]) => args));
  ok.forEach(([args, msg], i) => {
    t.equal(okResults[i]!.code, 0, `shoal ${args.join(' ')}: exit 0`);
    t.match(okResults[i]!.stdout, msg, `shoal ${args.join(' ')}: on stdout`);
    t.equal(okResults[i]!.stderr, '', 'nothing on stderr');
  });
  const bad: [string[], RegExp][] = [
    [['nod', 'ls'], /unknown command "nod": did you mean "node"\?/],
    [['servce', 'ls'], /unknown command "servce": did you mean "service"\?/],
    [['--state-dir', join(dir, 'none'), 'service', 'lss'], /unknown service command "lss": did you mean "ls"\?/],
    [['--state-dir', join(dir, 'none'), 'node', 'promot', 'x'], /unknown node command "promot": did you mean "promote"\?/],
    [['service', 'create', '--replica', '3', '--name', 'x', 'img'], /unknown flag "--replica": did you mean "--replicas"\?/],
    [['help', 'nodes'], /unknown command "nodes": did you mean "node"\?/],
    [['zzzzzz'], /unknown command "zzzzzz": use one of init, join/],
    // An unknown flag is named as unknown: alone (not "needs a value"), before a command's help
    // (not the help), and without swallowing the next word.
    [['--no-such-flag'], /^shoal: unknown flag "--no-such-flag"\n\("shoal help" lists the commands and their flags\)\n$/],
    [['node', '--bogus'], /^shoal: unknown flag "--bogus"\n\("shoal node --help" lists its flags\)\n$/],
    [['--replica', '3', 'service', 'ls'], /unknown flag "--replica": did you mean "--replicas"\?\n\("shoal help"/],
  ];
  const badResults = await runAll(SHOAL, bad.map(([args]) => args));
  bad.forEach(([args, msg], i) => {
    t.equal(badResults[i]!.code, 2, `shoal ${args.join(' ')}: exit 2`);
    t.match(badResults[i]!.stderr, msg);
  });
});

t.test('shoald flag errors', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--state-dir', dir, '--listen', '0.0.0.0:4242'], /is a wildcard: give --advertise/],
    [['--state-dir', dir, '--listen', 'nope'], /--listen must be HOST:PORT/],
    [['--state-dir', dir, '--listen', '127.0.0.1:1', '--join', '127.0.0.1:2'], /--join needs a join token: --token-file F, or the environment variable SHOAL_JOIN_TOKEN/],
    [['--state-dir', dir, '--listen', '127.0.0.1:1', '--join', '127.0.0.1:2', '--token-file', join(dir, 'missing')], /cannot read the join token from --token-file .*missing: no such file/],
    [['--state-dir', dir, '--listen', '127.0.0.1:1', '--join', '127.0.0.1:2', '--token-file', emptyFile], /is empty: it must hold the join token/],
    [['--state-dir', dir, '--listen', '127.0.0.1:1', '--join', '127.0.0.1:2', '--token', 'x', '--token-file', tokenFile], /give the join token once/],
    [['--state-dir', dir, '--listen', '127.0.0.1:1', '--token-file', tokenFile], /--token-file needs --join ADDR or --join-dht/],
    [['--state-dir', dir, '--listen', '127.0.0.1:1', '--join-dht', '--token-file', tokenFile, '--dht=false'], /--join-dht looks a manager up on the DHT, which is off here/],
    [['--state-dir', dir, '--listen', '127.0.0.1:1', '--join', 'x:1', '--join-dht', '--token', 't'], /--join ADDR and --join-dht exclude each other/],
    [['--state-dir', dir, '--listen', '127.0.0.1:1', '--dht=maybe'], /--dht must be true or false, got maybe/],
    [['--state-dir', dir, '--listen', '127.0.0.1:1', '--dht-bootstrap', '10.0.0.1'], /--dht-bootstrap entry 10\.0\.0\.1 is not host:port/],
    [['--state-dir', dir, '--listen', '127.0.0.1:1', '--dht=false', '--dht-bootstrap', '127.0.0.1:5'], /--dht-bootstrap with --dht=false: give one or the other/],
    [['--state-dir', dir, '--listen', '127.0.0.1:1', '--init', '--join', 'x:1', '--token', 't'], /--init and --join exclude each other/],
    [['--state-dir', dir, '--raft-port', '70000'], /--raft-port needs a port number/],
    [['--bogus'], /unknown flag --bogus/],
  ];
  const results = await runAll(SHOALD, cases.map(([args]) => args));
  cases.forEach(([args, msg], i) => {
    t.equal(results[i]!.code, 2, `shoald ${args.join(' ')}: exit 2`);
    t.match(results[i]!.stderr, msg);
  });
});
