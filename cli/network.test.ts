// The CLI's --publish syntax (as docker service create takes it) and --publish-rm/--network-rm
// over a current spec; bad values exit 2 with the forms that work.
import t from 'tap';
import { CliError } from './client.js';
import { networkCommand, parsePublish, updateNetworking } from './network.js';
import type { Flags } from './service.js';

t.test('--publish forms', async (t) => {
  t.same(parsePublish('8080:80'), { protocol: 'tcp', target_port: 80, published_port: 8080, publish_mode: 'ingress' });
  t.same(parsePublish('53:5353/udp'), { protocol: 'udp', target_port: 5353, published_port: 53, publish_mode: 'ingress' });
  t.same(parsePublish('8080:80,mode=host'), { protocol: 'tcp', target_port: 80, published_port: 8080, publish_mode: 'host' });
  t.same(parsePublish('published=9000,target=90,protocol=udp,mode=host'), { protocol: 'udp', target_port: 90, published_port: 9000, publish_mode: 'host' });
  for (const bad of ['8080', '8080:', ':80', '70000:80', '8080:80/sctp', '8080:80,color=red', 'published=1', '0:80']) {
    t.throws(() => parsePublish(bad), { constructor: CliError, exitCode: 2, message: /--publish must be PUBLISHED:TARGET/ } as never, `${bad} refused`);
  }
});

t.test('service update: --network-add/-rm by name, --publish-add/-rm', async (t) => {
  const flags = (m: Record<string, string[]>): Flags => ({ one: (k) => m[k]?.at(-1), all: (k) => m[k] ?? [], has: (k) => k in m });
  const sp = { networks: ['id-front', 'id-back'], ports: [{ protocol: 'tcp', published_port: 8080, target_port: 80, publish_mode: 'ingress' }, { protocol: 'udp', published_port: 53, target_port: 53, publish_mode: 'ingress' }] };
  await updateNetworking(flags({ 'network-rm': ['back'], 'network-add': ['extra'], 'publish-rm': ['8080'], 'publish-add': ['9090:90'] }), sp, async (ref) => `id-${ref}`);
  t.same(sp.networks, ['id-front', 'extra'], 'a network removed by name (its id looked up), one added');
  t.same(sp.ports.map((p) => `${p.published_port}/${p.protocol}`), ['53/udp', '9090/tcp'], '8080/tcp removed, 9090 added; 53/udp kept');
  await t.rejects(updateNetworking(flags({ 'publish-rm': ['web'] }), sp, async (r) => r), /--publish-rm takes a published port/);
});

t.test('a mistyped or missing network command: exit 2 with a suggestion, before any shoald is asked', async (t) => {
  const none = { stateDir: '/nonexistent/shoal-network-test', host: undefined };
  const f: Flags = { one: () => undefined, all: () => [], has: () => false };
  await t.rejects(networkCommand(none, 'crate', ['x'], f, false), { constructor: CliError, exitCode: 2, message: /unknown network command "crate": did you mean "create"\?/ } as never);
  await t.rejects(networkCommand(none, undefined, [], f, false), { constructor: CliError, exitCode: 2, message: /unknown network command ""/ } as never);
  await t.rejects(networkCommand(none, 'ls', [], f, false), /shoald is not running/, 'a real command goes on to the (absent) shoald');
});
