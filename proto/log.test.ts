import t from 'tap';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLog, defaultFormat, formatLogLine, parseFormat, parseLevel } from './log.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-log-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function capture(o: Parameters<typeof createLog>[0], write: (log: ReturnType<typeof createLog>) => void): string {
  const file = join(dir, `${Math.random()}.log`);
  const fd = openSync(file, 'w');
  write(createLog({ ...o, fd }));
  closeSync(fd);
  return readFileSync(file, 'utf8');
}

t.test('json: one line per call, with level, time, base fields and ids', async (t) => {
  const out = capture({ level: 'info', format: 'json', base: { host: 'm1' } }, (log) => {
    log('dispatcher: session s1 of node n1 ended: gone', { nodeId: 'n1' });
    log('shoald: warning: the token file can be read by others');
    log('agent: task t1 is "unhealthy"\nsecond line', { taskId: 't1', serviceId: 's1', level: 'error' });
    log('noise', { level: 'debug' });
  });
  const lines = out.trimEnd().split('\n').map((l) => JSON.parse(l));
  t.equal(lines.length, 3, 'debug is below info: not written');
  t.match(lines[0], { level: 'info', host: 'm1', nodeId: 'n1', msg: 'dispatcher: session s1 of node n1 ended: gone' });
  t.match(lines[0].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO time');
  t.equal(lines[1].level, 'warn', 'a message that says warning: is a warning');
  t.match(lines[2], { level: 'error', taskId: 't1', serviceId: 's1', msg: 'agent: task t1 is "unhealthy"\nsecond line' }, 'quotes and newlines survive inside one line');
  t.notOk('pid' in lines[0], 'no pid: the host field says where');
});

t.test('levels: --log-level filters; bad values are refused naming the choices', async (t) => {
  const out = capture({ level: 'warn', format: 'json' }, (log) => {
    log('info line');
    log('shoald: warning: shown');
    log('debug', { level: 'debug' });
  });
  t.equal(out.trimEnd().split('\n').length, 1);
  const dbg = capture({ level: 'debug', format: 'json' }, (log) => log('d', { level: 'debug' }));
  t.match(JSON.parse(dbg).level, 'debug');
  t.equal(parseLevel('debug'), 'debug');
  t.throws(() => parseLevel('verbose'), /--log-level must be one of debug, info, warn, error, got "verbose"/);
  t.equal(parseFormat('text'), 'text');
  t.throws(() => parseFormat('pretty'), /--log-format must be json or text/);
  t.equal(defaultFormat(true), 'text', 'a terminal gets text');
  t.equal(defaultFormat(undefined), 'json', 'a pipe or file gets JSON');
});

t.test('text: what a terminal shows, fields after the message', async (t) => {
  const out = capture({ level: 'info', format: 'text', base: { host: 'w1' } }, (log) => {
    log('agent: task t1 is unhealthy: probe failed', { taskId: 't1', serviceId: 's1' });
    log('plain');
  });
  const [a, b] = out.trimEnd().split('\n');
  t.match(a, /^\d{4}-\d\d-\d\dT\S+Z INFO  \[w1\] agent: task t1 is unhealthy: probe failed  taskId=t1 serviceId=s1$/);
  t.match(b, /INFO  \[w1\] plain$/);
  t.equal(formatLogLine('not json'), 'not json', 'other lines pass through');
  t.equal(formatLogLine('{"half'), '{"half');
  t.equal(formatLogLine('{"a":1}'), '{"a":1}', 'JSON that is not a log line passes through');
  t.match(formatLogLine('{"level":"warn","time":"T","msg":"m","n":{"x":1},"s":"two words"}'), /^T WARN  m  n=\{"x":1\} s="two words"$/);
});
