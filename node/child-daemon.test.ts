// The supervisor of shoald's child daemons (node/child-daemon.ts) with a real child: a small Node
// script serving a Unix socket (it stands for shoal-runtime and shoal-net, whose own start-up
// needs a state directory, runc or network namespaces; the supervisor only sees a process and a
// socket). A child that dies is started again; stop() ends it with SIGTERM (SIGKILL when it
// ignores that); a stale instance in the pid file is stopped only when its command line is ours;
// a child that never answers fails start() with an error that names it and its socket.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '../test/until.js';
import { ChildDaemon } from './child-daemon.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-childd-${process.pid}-`));
const others: ChildProcess[] = [];
t.teardown(() => {
  for (const p of others) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

// argv: SOCKET MODE. serve: answers "ok" to each connection; silent: accepts and never answers;
// stubborn: serves and ignores SIGTERM. On SIGTERM it leaves a file term-PID to prove it got it.
const SCRIPT = join(dir, 'child.cjs');
writeFileSync(SCRIPT, `
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
const [socket, mode] = process.argv.slice(2);
process.on('SIGTERM', () => {
  fs.writeFileSync(path.join(path.dirname(socket), 'term-' + process.pid), '');
  if (mode !== 'stubborn') process.exit(0);
});
try { fs.rmSync(socket, { force: true }); } catch {}
net.createServer((c) => { if (mode !== 'silent') c.end('ok\\n'); }).listen(socket, () => {
  process.stderr.write('test-child: serving on ' + socket + '\\n');
});
`);

/** Whether something answers "ok" on the socket (a connection that never answers: no, after 500 ms). */
function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(socket);
    const done = (v: boolean) => {
      clearTimeout(timer);
      c.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), 500);
    c.on('data', (d) => done(d.toString().startsWith('ok')));
    c.on('error', () => done(false));
  });
}

/** Waits until something answers on the socket (the deadline only turns a hang into a failure). */
async function untilAnswers(socket: string, what: string): Promise<void> {
  const end = Date.now() + 30_000;
  while (!(existsSync(socket) && (await answers(socket)))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} to answer on ${socket}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const alive = (pid: number) => existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8') !== '';

function daemon(name: string, mode: string, logs: string[], stableMs?: number): { d: ChildDaemon; socket: string; pidFile: string } {
  const socket = join(dir, `${name}.sock`);
  const pidFile = join(dir, `${name}.pid`);
  const d = new ChildDaemon({
    logName: 'test',
    program: 'test-child',
    args: [SCRIPT, socket, mode],
    socket,
    pidFile,
    probe: () => ({
      ready: async () => {
        if (!(await answers(socket))) throw new Error('no answer');
      },
      close: () => {},
    }),
    isOurs: (cmd) => cmd.includes(SCRIPT) && cmd.includes(socket),
    stderrPrefix: 'test-child: ',
    staleNote: 'it keeps nothing',
    exitNote: 'nothing lost',
    stableMs,
    log: (m) => logs.push(m),
  });
  return { d, socket, pidFile };
}

t.test('a child that dies is started again; stop() ends it with SIGTERM and it stays down', async (t) => {
  const logs: string[] = [];
  const { d, socket, pidFile } = daemon('restart', 'serve', logs);
  t.teardown(() => d.stop());
  await d.start(30_000);
  const first = d.pid!;
  t.ok(alive(first), 'the child runs');
  t.equal(readFileSync(pidFile, 'utf8'), String(first), 'its pid is in the pid file');
  await until(() => logs.includes(`test: serving on ${socket}`), 'its stderr line in the log', 30_000);
  t.pass('its stderr lines are logged with the prefix, its own name dropped');

  process.kill(first, 'SIGKILL');
  await until(() => logs.includes('test: test-child exited (SIGKILL); nothing lost; starting it again in 500 ms'), 'the exit logged', 30_000);
  t.pass('its exit is logged with the delay before the next start');
  const second = await until(() => (d.pid !== undefined && d.pid !== first ? d.pid : undefined), 'a new child', 30_000);
  t.equal(readFileSync(pidFile, 'utf8'), String(second), 'the pid file names the new child');
  await untilAnswers(socket, 'the new child');
  t.pass('the new child answers');

  await d.stop();
  t.ok(existsSync(join(dir, `term-${second}`)), 'stop() sent it SIGTERM');
  t.notOk(alive(second), 'it is gone');
  t.notOk(existsSync(pidFile), 'the pid file is removed');
  t.equal(d.pid, undefined, 'no child runs');
  t.equal(logs.filter((l) => l.includes('exited')).length, 1, 'a child stopped on purpose is not started again');
});

t.test('the restart delay grows while a child keeps failing, and starts afresh after a stable run', async (t) => {
  const logs: string[] = [];
  const { d, socket } = daemon('backoff', 'serve', logs, 3000);
  t.teardown(() => d.stop());
  await d.start(30_000);
  const delays = (): string[] => logs.filter((l) => l.includes('exited')).map((l) => /again in (\d+) ms/.exec(l)![1]!);
  // Killed as soon as it is spawned: it lives milliseconds, far less than stableMs.
  let last = d.pid;
  const killAtSpawn = async (n: number): Promise<void> => {
    const pid = await until(() => (d.pid !== last ? d.pid : undefined), 'a new child', 30_000);
    last = pid;
    process.kill(pid, 'SIGKILL');
    await until(() => delays().length === n, `exit ${n} logged`, 30_000);
  };
  process.kill(last!, 'SIGKILL');
  last = undefined;
  await until(() => delays().length === 1, 'exit 1 logged', 30_000);
  await killAtSpawn(2);
  await killAtSpawn(3);
  t.same(delays(), ['500', '1000', '2000'], 'quick failures: 500, 1000, 2000 ms');
  // This one runs past stableMs (3 s here) before it dies.
  const pid = await until(() => d.pid, 'a child', 30_000);
  await untilAnswers(socket, 'the child');
  const born = Date.now();
  await until(() => Date.now() - born > 3500 || undefined, 'the child ran past the stable time', 30_000);
  process.kill(pid, 'SIGKILL');
  await until(() => delays().length === 4, 'exit 4 logged', 30_000);
  t.equal(delays()[3], '500', 'after a stable run: 500 ms again');
});

t.test('a child that ignores SIGTERM is killed after the grace', async (t) => {
  const logs: string[] = [];
  const { d } = daemon('stubborn', 'stubborn', logs);
  t.teardown(() => d.stop());
  await d.start(30_000);
  const pid = d.pid!;
  await d.stop();
  t.ok(existsSync(join(dir, `term-${pid}`)), 'it got SIGTERM first');
  await until(() => !alive(pid), 'the stubborn child gone', 30_000);
  t.pass('SIGKILL ended it');
});

t.test('a stale instance in the pid file is stopped only when its command line is ours', async (t) => {
  const logs: string[] = [];
  const { d, socket, pidFile } = daemon('stale', 'serve', logs);
  t.teardown(() => d.stop());
  // One an earlier shoald left running: the same program on the same socket.
  const stale = spawn(process.execPath, [SCRIPT, socket, 'serve'], { stdio: 'ignore' });
  others.push(stale);
  await untilAnswers(socket, 'the stale instance');
  writeFileSync(pidFile, String(stale.pid));
  await d.start(30_000);
  t.ok(existsSync(join(dir, `term-${stale.pid}`)), 'the stale instance got SIGTERM');
  await until(() => stale.exitCode !== null || stale.signalCode !== null, 'the stale instance gone', 30_000);
  t.ok(logs.includes(`test: stopping the test-child (pid ${stale.pid}) an earlier shoald left running; it keeps nothing`), 'its stop is logged');
  t.not(d.pid, stale.pid, 'a new child took its place');
  t.ok(await answers(socket), 'and answers on the socket');
  await d.stop();

  // Unrelated processes whose pids a stale pid file names: another program, and ours on another socket.
  for (const [what, argv] of [
    ['another program', ['-e', 'setInterval(() => {}, 1000)']],
    ['the same program on another socket', [SCRIPT, join(dir, 'elsewhere.sock'), 'serve']],
  ] as const) {
    const logs2: string[] = [];
    const { d: d2, pidFile: pidFile2 } = daemon('unrelated', 'serve', logs2);
    t.teardown(() => d2.stop());
    const other = spawn(process.execPath, [...argv], { stdio: 'ignore' });
    others.push(other);
    await until(() => other.pid !== undefined && alive(other.pid), `${what} running`, 30_000);
    const cmdline = readFileSync(`/proc/${other.pid}/cmdline`, 'utf8');
    writeFileSync(pidFile2, String(other.pid));
    await d2.start(30_000);
    t.ok(alive(other.pid!) && readFileSync(`/proc/${other.pid}/cmdline`, 'utf8') === cmdline, `${what}: left alone`);
    t.notOk(existsSync(join(dir, `term-${other.pid}`)), `${what}: sent no SIGTERM`);
    t.notOk(logs2.some((l) => l.includes('earlier shoald')), `${what}: nothing stopped`);
    t.equal(readFileSync(pidFile2, 'utf8'), String(d2.pid), `${what}: the pid file names the new child`);
    await d2.stop();
    other.kill('SIGKILL');
  }
});

t.test('a child that never answers fails start() with an error naming it and its socket', async (t) => {
  const logs: string[] = [];
  const { d, socket, pidFile } = daemon('silent', 'silent', logs);
  t.teardown(() => d.stop());
  writeFileSync(pidFile, 'not a pid\n'); // a pid file that names nothing is ignored
  await t.rejects(d.start(1500), {
    message: `test-child did not answer on ${socket} within 1.5 s; see the test lines in shoald's log`,
  });
  const pid = d.pid!;
  t.ok(alive(pid), 'the child itself still runs (it may answer later)');
  await d.stop();
  t.notOk(alive(pid), 'stop() ends it');
});
