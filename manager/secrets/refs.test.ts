// A service's references to secrets and configs: defaults and the file targets they make, every
// kind of bad reference with its error, resolution by name, the guard that makes a service write
// fail if a secret it takes up was removed, and who uses a secret.
import t from 'tap';
import { ObjectStore } from '../store/store.js';
import { SpecError, specFromWire, specToWire } from '../services/validate.js';
import type { ServiceObject, ServiceSpec } from '../services/model.js';
import { guardOps, refFromWire, refsFromWire, resolveRefs, usedBy } from './refs.js';

t.test('defaults and targets', async (t) => {
  t.same(refFromWire('secret', { name: 'db-pw' }, 0), { id: '', name: 'db-pw', target: '/run/secrets/db-pw', uid: 0, gid: 0, mode: 0o444 }, 'a secret lands in /run/secrets/NAME, 0444, root');
  t.equal(refFromWire('secret', { name: 'a', target: 'x/y' }, 0).target, '/run/secrets/x/y', 'a relative secret target is under /run/secrets');
  t.equal(refFromWire('config', { name: 'app.conf' }, 0).target, '/app.conf', 'a config lands in /NAME');
  t.equal(refFromWire('config', { name: 'a', target: 'etc/app.conf' }, 0).target, '/etc/app.conf');
  t.equal(refFromWire('config', { name: 'a', target: '/etc//app.conf' }, 0).target, '/etc/app.conf', 'normalised');
  t.same(refFromWire('secret', { name: 'a', uid: '1000', gid: '100', mode: 0o400 }, 0), { id: '', name: 'a', target: '/run/secrets/a', uid: 1000, gid: 100, mode: 0o400 });
  t.equal(refFromWire('secret', { name: 'a', mode: 0 }, 0).mode, 0, 'mode 0 is a mode');
});

t.test('bad references: a clear error each', async (t) => {
  const cases: [string, Parameters<typeof refFromWire>[1], RegExp][] = [
    ['no name', {}, /secrets\[0\]: secret name undefined is not valid/],
    ['a bad name', { name: 'a b' }, /secret name "a b" is not valid: use 1-64 letters/],
    ['a name of 65', { name: 'a'.repeat(65) }, /is not valid/],
    ['..', { name: 'a', target: '/etc/../root/x' }, /must not contain '\.\.'/],
    ['a directory', { name: 'a', target: '/etc/' }, /must name a file, not a directory/],
    ['the root', { name: 'a', target: '/' }, /must name a file/],
    ['/proc', { name: 'a', target: '/proc/self/x' }, /under \/proc, which the runtime mounts itself/],
    ['/dev', { name: 'a', target: '/dev' }, /under \/dev/],
    ['NUL', { name: 'a', target: 'a\0b' }, /must not contain NUL/],
    ['setuid', { name: 'a', mode: 0o4755 }, /mode 04755 is not valid: give permission bits between 0 and 0777/],
    ['negative mode', { name: 'a', mode: -1 }, /mode -1 is not valid/],
    ['uid not a number', { name: 'a', uid: 'root' }, /uid "root" must be a numeric id/],
    ['gid too large', { name: 'a', gid: '4294967295' }, /gid "4294967295" must be a numeric id between 0 and 4294967294/],
  ];
  for (const [what, w, msg] of cases) t.throws(() => refFromWire('secret', w, 0), msg, what);
  t.throws(() => refsFromWire([{ name: 'a', target: '/x' }], [{ name: 'b', target: '/x' }]), /config b and secret a both target \/x: each file needs its own path/, 'two files, one path');
  t.throws(() => refsFromWire([{ name: 'a' }, { name: 'a' }], []), /both target \/run\/secrets\/a/, 'the same secret twice at one path');
  t.same(Object.keys(refsFromWire([{ name: 'a' }, { name: 'a', target: 'b' }], [])), ['secrets'], 'the same secret at two paths is fine');
  t.same(refsFromWire([], []), {}, 'none: nothing added to the template (its digest stays as before)');
  let err: unknown;
  try {
    specFromWire({ main: { image: 'busybox' }, secrets: [{ name: 'a', mode: 0o1000 }] });
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof SpecError && /mode 01000 is not valid/.test(err.message), 'specFromWire checks them (a SpecError: INVALID_ARGUMENT on the API)');
  const spec = specFromWire({ main: { image: 'busybox' }, secrets: [{ name: 'a', target: 'k', uid: '5', mode: 0o400 }], configs: [{ name: 'c' }] });
  t.same(specToWire(spec).secrets, [{ name: 'a', id: '', target: '/run/secrets/k', uid: '5', gid: '0', mode: 0o400 }], 'and specToWire gives them back');
  t.same(specFromWire(specToWire(spec)), spec, 'round trip');
});

function store(): ObjectStore {
  const s = new ObjectStore();
  s.applyTxn(1, [
    { op: 'create', object: { kind: 'secret', id: 'S1', name: 'pw', spec: { sealed: new Uint8Array(40) } } },
    { op: 'create', object: { kind: 'config', id: 'C1', name: 'conf', spec: { data: new Uint8Array([1]) } } },
  ]);
  return s;
}

t.test('resolve by name; guard new references', async (t) => {
  const s = store();
  const spec = specFromWire({ main: { image: 'busybox' }, secrets: [{ name: 'pw' }], configs: [{ name: 'conf' }] });
  const r = resolveRefs(s, spec);
  t.equal(r.task.secrets![0]!.id, 'S1');
  t.equal(r.task.configs![0]!.id, 'C1');
  t.throws(() => resolveRefs(s, specFromWire({ main: { image: 'busybox' }, secrets: [{ name: 'nosuch' }] })), /secret "nosuch" does not exist: create it first/);
  const ops = guardOps(s, undefined, r);
  t.same(ops.map((o) => [o.op, (o as { object: { id: string } }).object.id, (o as { expectVersion: number }).expectVersion]), [['update', 'S1', 1], ['update', 'C1', 1]], 'a new service guards each file at its version');
  t.same(guardOps(s, r, r), [], 'references the old spec had already: no guard (no rewrite)');
  // A write that raced with a removal fails as a whole.
  s.applyTxn(2, [{ op: 'delete', kind: 'secret', id: 'S1' }]);
  t.throws(() => guardOps(s, undefined, r), /secret "pw" \(S1\) no longer exists: it was removed/, 'a rollback to a spec whose secret is gone');
  const res = s.applyTxn(3, [{ op: 'create', object: { kind: 'service', id: 'x', name: 'x', spec: r } }, ...ops]);
  t.equal(res.ok, false, 'a transaction with a guard on a removed secret fails');
  t.notOk(s.get('service', 'x'), 'and writes nothing');
});

t.test('who uses a secret: the current spec, or the revision a rollback returns to', async (t) => {
  const s = store();
  const withPw = resolveRefs(s, specFromWire({ main: { image: 'busybox' }, secrets: [{ name: 'pw' }] }));
  const without = specFromWire({ main: { image: 'busybox' } });
  const svc = (name: string, spec: ServiceSpec, revs: ServiceSpec[]): ServiceObject => ({ kind: 'service', id: name, name, labels: {}, version: 1, createdVersion: 1, spec, status: { createdAt: 0, updatedAt: 0, revision: revs.length, revisions: revs.map((r, i) => ({ revision: i + 1, spec: r, at: 0, change: '' })) } });
  const list = [svc('b', withPw, [withPw]), svc('a', without, [withPw, without]), svc('c', without, [withPw, without, without])];
  t.same(usedBy(list, 'secret', 'S1'), [{ name: 'a', by: 'rollback' }, { name: 'b', by: 'spec' }], 'b uses it; a would roll back to it; c no longer');
  t.same(usedBy(list, 'config', 'C1'), []);
});
