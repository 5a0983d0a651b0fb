// The events command's arguments: --since as a duration back or a time, --filter type=/name=.
import t from 'tap';
import { parseFilters, parseSince } from './events.js';

t.test('--since', async (t) => {
  const now = Date.parse('2024-05-01T12:00:00Z');
  t.equal(parseSince('10m', now), now - 600_000, 'a duration back from now');
  t.equal(parseSince('1.5h', now), now - 5_400_000);
  t.equal(parseSince('2024-05-01T11:00:00Z', now), Date.parse('2024-05-01T11:00:00Z'), 'a time');
  for (const bad of ['yesterday', '10', '-5m', '2024-13-45']) t.throws(() => parseSince(bad, now), /--since must be a duration back from now \(10m, 2h\) or a time/, `${bad} refused`);
});

t.test('--filter', async (t) => {
  t.same(parseFilters(['type=service', 'type=node', 'name=web']), { types: ['service', 'node'], names: ['web'] });
  t.throws(() => parseFilters(['type=container']), /--filter type=container: the types are service, task, node/);
  t.throws(() => parseFilters(['colour=red']), /--filter must be type=KIND or name=NAME/);
});
