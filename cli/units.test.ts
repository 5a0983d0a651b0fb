// The CLI's units and word splitting: what operators type, and the errors for what they mistype.
import t from 'tap';
import { bytes, cpus, duration, splitWords } from './units.js';

t.test('durations', async (t) => {
  t.equal(duration('500ms', '--x'), 500);
  t.equal(duration('5s', '--x'), 5000);
  t.equal(duration('1.5s', '--x'), 1500);
  t.equal(duration('2m', '--x'), 120_000);
  t.equal(duration('1h', '--x'), 3_600_000);
  for (const bad of ['5', 's', '-1s', '5d', '1 s', '']) t.throws(() => duration(bad, '--restart-delay'), /--restart-delay must be a duration like 500ms, 5s, 2m or 1h/, `refuses ${JSON.stringify(bad)}`);
});

t.test('sizes: K/M/G are binary as in docker -m; Ki/Mi/Gi too; KB-style decimal suffixes likewise binary', async (t) => {
  t.equal(bytes('64M', '--x'), 64 * 1024 ** 2);
  t.equal(bytes('64m', '--x'), 64 * 1024 ** 2);
  t.equal(bytes('1G', '--x'), 1024 ** 3);
  t.equal(bytes('512Mi', '--x'), 512 * 1024 ** 2);
  t.equal(bytes('1000', '--x'), 1000);
  t.equal(bytes('0.5G', '--x'), 512 * 1024 ** 2);
  for (const bad of ['M', '12X', '-5M', '1.2.3G']) t.throws(() => bytes(bad, '--limit-memory'), /--limit-memory must be a size like 64M, 1G or 512Mi/, `refuses ${JSON.stringify(bad)}`);
});

t.test('cpus: cores or millicores', async (t) => {
  t.equal(cpus('0.5', '--x'), 500);
  t.equal(cpus('2', '--x'), 2000);
  t.equal(cpus('250m', '--x'), 250);
  for (const bad of ['half', '1c', '-1']) t.throws(() => cpus(bad, '--limit-cpu'), /--limit-cpu must be a number of CPUs/);
});

t.test('splitWords: quotes and escapes as a shell would', async (t) => {
  t.same(splitWords('sh -c "echo hi; sleep 1"'), ['sh', '-c', 'echo hi; sleep 1']);
  t.same(splitWords(`a 'b c' "d \\"e\\"" f\\ g`), ['a', 'b c', 'd "e"', 'f g']);
  t.same(splitWords('  spaced   out  '), ['spaced', 'out']);
  t.same(splitWords('empty "" arg'), ['empty', '', 'arg']);
  t.throws(() => splitWords('sh -c "unterminated'), /unterminated " quote/);
});
