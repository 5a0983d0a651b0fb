// The agent's reading of CRI log files: the line format the runtime writes, partial lines joined,
// the backlog with a tail, following what is written later, and the end of a subscription.
import t from 'tap';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogPublisher, parseCriLine, type LogEntry } from './logs.js';

t.test('parseCriLine', async (t) => {
  const p = parseCriLine('2026-12-05T15:00:00.123456789Z stdout F hello world');
  t.same(p, { timeNs: Date.parse('2026-12-05T15:00:00Z') * 1e6 + 123456789, stream: 'stdout', partial: false, text: 'hello world' });
  t.equal(parseCriLine('2026-12-05T15:00:00Z stderr P part')!.partial, true);
  t.equal(parseCriLine('2026-12-05T15:00:00.5+01:00 stdout F x')!.timeNs, Date.parse('2026-12-05T14:00:00Z') * 1e6 + 500_000_000, 'an offset and a short fraction');
  t.equal(parseCriLine('2026-12-05T15:00:00Z stdout F ')!.text, '', 'an empty line');
  for (const bad of ['', 'garbage', '2026-12-05 stdout F x', '2026-12-05T15:00:00Z stdin F x']) t.equal(parseCriLine(bad), undefined, `not a CRI line: ${JSON.stringify(bad)}`);
});

t.test('a subscription: backlog (tail), follow, close', async (t) => {
  const root = mkdtempSync(join(tmpdir(), `shoal-agent-logs-${process.pid}-`));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'task1'));
  const ts = (s: number) => new Date(Date.UTC(2026, 11, 5, 15, 0, s)).toISOString().replace('.000Z', '.000000000Z');
  writeFileSync(join(root, 'task1', 'main.log'), `${ts(1)} stdout F one\n${ts(3)} stdout P thr\n${ts(3)} stdout F ee\n${ts(5)} stderr F five\n`);
  writeFileSync(join(root, 'task1', 'side.log'), `${ts(2)} stdout F two\n${ts(4)} stdout F four\n`);
  const got: LogEntry[][] = [];
  let done = false;
  const pub = new LogPublisher(root, () => {});
  pub.handle({ id: 's1', task_ids: ['task1', 'nosuch'], follow: false, tail: 0, close: false }, async (b) => {
    got.push(b.entries);
    if (b.done) done = true;
    return { cancelled: false };
  });
  while (!done) await new Promise((r) => setTimeout(r, 10));
  t.same(got.flat().map((e) => `${e.container}:${e.stream}:${e.line}`), ['main:stdout:one', 'side:stdout:two', 'main:stdout:three', 'side:stdout:four', 'main:stderr:five'], 'every line of both containers, partial lines joined, in time order');

  const tailed: LogEntry[] = [];
  done = false;
  pub.handle({ id: 's2', task_ids: ['task1'], follow: false, tail: 1, close: false }, async (b) => {
    tailed.push(...b.entries);
    if (b.done) done = true;
    return { cancelled: false };
  });
  while (!done) await new Promise((r) => setTimeout(r, 10));
  t.same(tailed.map((e) => e.line).sort(), ['five', 'four'], 'tail 1: the last line of each container');

  const followed: string[] = [];
  let calls = 0;
  pub.handle({ id: 's3', task_ids: ['task1'], follow: true, tail: 1, close: false }, async (b) => {
    calls++;
    followed.push(...b.entries.map((e) => e.line));
    t.notOk(b.done, 'a following subscription is never done by itself');
    return { cancelled: false };
  });
  while (followed.length < 2) await new Promise((r) => setTimeout(r, 10));
  appendFileSync(join(root, 'task1', 'main.log'), `${ts(6)} stdout F six\n`);
  while (!followed.includes('six')) await new Promise((r) => setTimeout(r, 10));
  t.pass('a line written later is sent');
  pub.handle({ id: 's3', task_ids: [], follow: false, tail: 0, close: true }, async () => ({ cancelled: false }));
  const n = calls;
  appendFileSync(join(root, 'task1', 'main.log'), `${ts(7)} stdout F seven\n`);
  await new Promise((r) => setTimeout(r, 600));
  t.equal(calls, n, 'nothing more after the subscription was closed');
  t.notOk(followed.includes('seven'));
  pub.stopAll();
});
