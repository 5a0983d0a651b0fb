// The CLI's --secret / --config references and the --*-add / --*-rm edits of service update.
import t from 'tap';
import { parseRef, updateRefs } from './secret.js';

const flags = (m: Record<string, string[]>) => ({ one: (k: string) => m[k]?.at(-1), all: (k: string) => m[k] ?? [], has: (k: string) => !!m[k] });

t.test('reference syntax', async (t) => {
  t.same(parseRef('secret', 'pw'), { name: 'pw', target: '', uid: '', gid: '', mode: null });
  t.same(parseRef('secret', 'pw,target=/etc/pw,uid=1000,gid=100,mode=0440'), { name: 'pw', target: '/etc/pw', uid: '1000', gid: '100', mode: 0o440 });
  t.same(parseRef('config', 'source=app.conf,target=/app.conf'), { name: 'app.conf', target: '/app.conf', uid: '', gid: '', mode: null }, "Docker's source= form");
  t.equal(parseRef('secret', 'pw,mode=400').mode, 0o400, 'octal without the leading 0');
  const bad: [string, RegExp][] = [
    ['pw,mode=9', /mode must be octal permission bits like 0400/],
    ['pw,mode=rw', /mode must be octal/],
    ['pw,colour=red', /unknown option "colour"/],
    ['pw,x', /"x" must be KEY=VALUE/],
    ['target=/x', /give the secret's name/],
    ['', /give the secret's name/],
  ];
  for (const [s, msg] of bad) t.throws(() => parseRef('secret', s), msg, JSON.stringify(s));
  try {
    parseRef('secret', 'pw,mode=9');
  } catch (e) {
    t.equal((e as { exitCode: number }).exitCode, 2, 'a usage error (exit 2)');
  }
});

t.test('service update: rm by name or target, then add', async (t) => {
  const spec: any = { secrets: [{ name: 'a', target: '/run/secrets/a' }, { name: 'b', target: '/etc/b' }], configs: [] };
  updateRefs(flags({ 'secret-rm': ['a', '/etc/b'], 'secret-add': ['c,mode=0400'], 'config-add': ['conf'] }), spec);
  t.same(spec.secrets, [{ name: 'c', target: '', uid: '', gid: '', mode: 0o400 }]);
  t.same(spec.configs.map((c: any) => c.name), ['conf']);
  t.throws(() => updateRefs(flags({ 'secret-rm': ['nosuch'] }), { secrets: [] }), /--secret-rm nosuch: the service has no secret "nosuch"/);
  const same: any = { secrets: [{ name: 'a', target: '/run/secrets/a' }] };
  updateRefs(flags({ 'secret-rm': ['a'], 'secret-add': ['a,target=/new'] }), same);
  t.same(same.secrets.map((s: any) => s.target), ['/new'], 'rm then add moves a secret to another path');
});
