import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerLog, parseLine, rfc3339Nano } from './logs.js';

t.test('timestamps are RFC 3339 with nanoseconds, trailing zeros trimmed', async (t) => {
  t.equal(rfc3339Nano(1_700_000_000_123_456_789n), '2023-11-14T22:13:20.123456789Z');
  t.equal(rfc3339Nano(1_700_000_000_120_000_000n), '2023-11-14T22:13:20.12Z');
  t.equal(rfc3339Nano(1_700_000_000_000_000_000n), '2023-11-14T22:13:20Z');
});

t.test('lines, partial lines and overlong lines in the CRI format', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), `shoal-logs-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'sub', 'c.log');
  const log = new ContainerLog(file);
  log.write('stdout', Buffer.from('one\ntw'));
  log.write('stderr', Buffer.from('err\n'));
  log.write('stdout', Buffer.from('o\n'));
  log.write('stdout', Buffer.alloc(16 * 1024 + 10, 0x61));
  log.end('stdout');
  log.write('stdout', Buffer.from('no newline at the end'));
  log.end('stdout');
  await log.close();
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => parseLine(l)!);
  t.same(lines.map((l) => `${l.stream} ${l.tag} ${l.content.length > 100 ? l.content.length : l.content}`), [
    'stdout F one', 'stderr F err', 'stdout F two', `stdout P ${16 * 1024}`, 'stdout F aaaaaaaaaa', 'stdout F no newline at the end',
  ]);
  t.notOk(parseLine('garbage'), 'a line that is not CRI format is recognised as such');
});
