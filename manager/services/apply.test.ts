// The apply plan: what a stack request does against the services the cluster holds (create,
// unchanged, update with the change in words, prune of the stack's own only), and what it refuses,
// every problem at once. Pure: the same plan serves the dry run and the apply. The stack's secrets
// and configs: created before the services that use them, unchanged with the same content (a
// secret opened with a real data key to compare), refused with other content, pruned when unused.
import t from 'tap';
import { STACK_LABEL, plan, type ServiceStep } from './apply.js';
import { specFromWire, type WireSpec } from './validate.js';
import type { ServiceObject, ServiceSpec } from './model.js';
import { resolveRefs } from '../secrets/refs.js';
import type { ObjectStore } from '../store/store.js';
import type { StoreObject } from '../store/types.js';
import { DataKey } from '../secrets/datakey.js';
import { holdsWith, type FileStep, type FilesView } from '../secrets/apply.js';
import { secretAad, type SecretObject } from '../secrets/model.js';

const wire = (image: string, extra: Partial<WireSpec> = {}): WireSpec => ({ mode: 'replicated', replicas: 2, main: { name: 'main', image, command: [], args: ['sleep', '1d'], env: [] }, ...extra });
let n = 0;
function existing(name: string, w: WireSpec, labels: Record<string, string> = {}): ServiceObject {
  const spec = specFromWire(w);
  return { kind: 'service', id: `id-${++n}`, name, labels, version: n, createdVersion: n, spec, status: { createdAt: 0, updatedAt: 0 } };
}
const req = (services: { name: string; spec: WireSpec; labels?: Record<string, string> }[], o: { stack?: string; prune?: boolean } = {}) => ({
  stack: o.stack ?? 'shop',
  prune: !!o.prune,
  dry_run: false,
  services: services.map((s) => ({ name: s.name, labels: s.labels ?? {}, spec: s.spec })),
});

t.test('create, unchanged, update, prune', async (t) => {
  const cur = [
    existing('web', wire('img:1'), { [STACK_LABEL]: 'shop' }),
    existing('db', wire('db:1'), { [STACK_LABEL]: 'shop' }),
    existing('old', wire('old:1'), { [STACK_LABEL]: 'shop' }),
    existing('other', wire('x:1'), { [STACK_LABEL]: 'blog' }),
    existing('loose', wire('x:1')),
  ];
  const steps = plan(req([{ name: 'web', spec: wire('img:1') }, { name: 'db', spec: wire('db:2') }, { name: 'new', spec: wire('n:1') }], { prune: true }), cur);
  t.same(steps.map((s) => `${s.name}:${s.action}`), ['web:unchanged', 'db:update', 'new:create', 'old:prune'], 'only the stack\'s own undeclared service is pruned');
  const db = steps.find((s) => s.name === 'db')!;
  t.match(db.detail, /image "db:1" -> "db:2"/, 'the change in words');
  t.equal(db.rolls, true, 'an image change rolls the tasks');
  t.same(steps.find((s) => s.name === 'new')!.labels, { [STACK_LABEL]: 'shop' }, 'created with the stack label');

  const scale = plan(req([{ name: 'web', spec: wire('img:1', { replicas: 5 }) }]), cur)[0]!;
  t.equal(scale.action, 'update');
  t.equal(scale.rolls, false, 'a replica change does not roll the tasks');

  const noPrune = plan(req([{ name: 'web', spec: wire('img:1') }]), cur);
  t.same(noPrune.map((s) => s.action), ['unchanged'], 'without --prune nothing is removed');
});

t.test('adoption, ownership, defaults and forced redeploys', async (t) => {
  const loose = existing('web', wire('img:1'));
  const adopt = plan(req([{ name: 'web', spec: wire('img:1') }]), [loose])[0]!;
  t.equal(adopt.action, 'update');
  t.match(adopt.detail, /adopted into stack shop/);
  t.equal(adopt.rolls, false, 'a label change does not roll');
  t.same(plan(req([{ name: 'web', spec: wire('img:1') }], { stack: '' }), [loose]).map((s) => s.action), ['unchanged'], 'no stack: a service without one is unchanged');

  const withDefaults = existing('web', wire('img:1', { update: { parallelism: 1, delay_ms: 0, order: 'stop-first', failure_action: 'pause', monitor_ms: 5000, max_failure_ratio: 0 } }), { [STACK_LABEL]: 'shop' });
  t.same(plan(req([{ name: 'web', spec: wire('img:1') }]), [withDefaults]).map((s) => s.action), ['unchanged'], 'defaults written out or left out: the same spec');

  const forced = existing('web', wire('img:1', { force_update: 3 }), { [STACK_LABEL]: 'shop' });
  t.same(plan(req([{ name: 'web', spec: wire('img:1') }]), [forced]).map((s) => s.action), ['unchanged'], 'a forced redeploy counter is kept, not undone');
});

t.test('refusals: every problem at once', async (t) => {
  const cur = [existing('blogweb', wire('x:1'), { [STACK_LABEL]: 'blog' }), existing('job', { ...wire('j:1'), mode: 'replicated-job', replicas: null, completions: 1 }, { [STACK_LABEL]: 'shop' })];
  t.throws(
    () => plan(req([
      { name: 'Bad_Name', spec: wire('img:1') },
      { name: 'blogweb', spec: wire('img:1') },
      { name: 'job', spec: wire('j:1') },
      { name: 'dup', spec: wire('img:1') },
      { name: 'dup', spec: wire('img:1') },
      { name: 'img', spec: wire('UPPER::x') },
      { name: 'lab', spec: wire('img:1'), labels: { [STACK_LABEL]: 'x' } },
    ]), cur),
    {
      message: /6 problems:\nservice Bad_Name: service name "Bad_Name" is not valid.*\nservice blogweb: exists already and belongs to stack "blog".*\nservice job: is replicated-job in the cluster: its mode cannot change to replicated.*\nservice dup: declared twice\nservice img: main.image "UPPER::x" is not a valid image reference.*\nservice lab: label io.shoal.stack is set by apply/s,
    },
  );
  t.throws(() => plan(req([], { stack: '', prune: true }), []), /prune needs a stack name/);
  t.throws(() => plan(req([], { stack: 'No Good' }), []), /stack name "No Good" is not valid/);
  t.throws(() => plan(req([{ name: 'cron', spec: { ...wire('j:1'), replicas: null, mode: 'replicated-job', schedule: { cron: '61 * * * *' } } }]), []), /service cron: schedule "61 \* \* \* \*": minute field: 61 is outside 0-59/);
  t.throws(() => plan(req([{ name: 'cron', spec: { ...wire('j:1'), schedule: { cron: '* * * * *' } } }]), []), /schedule applies to jobs only/);
});

t.test('secrets and configs: resolved by name as create does; a missing one is its service\'s problem', async (t) => {
  // The store as resolveRefs reads it (getByName only): one secret, no configs.
  const store = { getByName: (kind: string, name: string) => (kind === 'secret' && name === 'db-password' ? { id: 'sec-1' } : undefined) } as unknown as ObjectStore;
  const resolve = (spec: ServiceSpec) => resolveRefs(store, spec);
  const withSecret = wire('img:1', { secrets: [{ name: 'db-password', mode: 0o400 }] });
  const [create] = plan(req([{ name: 'web', spec: withSecret }]), [], resolve);
  t.equal(create!.action, 'create');
  t.same((create as ServiceStep).spec!.task.secrets, [{ id: 'sec-1', name: 'db-password', target: '/run/secrets/db-password', uid: 0, gid: 0, mode: 0o400 }], 'the reference resolved to the secret, target defaulted');
  const cur = existing('web', withSecret, { [STACK_LABEL]: 'shop' });
  cur.spec = resolve(cur.spec);
  t.same(plan(req([{ name: 'web', spec: withSecret }]), [cur], resolve).map((s) => s.action), ['unchanged'], 'the same reference again: unchanged');
  t.throws(() => plan(req([{ name: 'web', spec: withSecret }, { name: 'api', spec: wire('img:1', { configs: [{ name: 'nope' }] }) }]), [], resolve), /^service api: config "nope" does not exist: create it first/);
});

t.test('secrets and configs of the stack: create, unchanged, refused when the content differs, pruned when unused', async (t) => {
  // The cluster's secrets sealed with a real data key, opened by the plan to compare (as the leader does).
  const key = DataKey.generate();
  const objects: StoreObject[] = [];
  let v = 100;
  const add = (kind: 'secret' | 'config', name: string, data: string, labels: Record<string, string> = { [STACK_LABEL]: 'shop' }) => {
    const id = `${kind}-${++v}`;
    const spec = kind === 'secret' ? { sealed: key.seal(Buffer.from(data), secretAad(id)) } : { data: Buffer.from(data) };
    const o = { kind, id, name, labels, spec, status: { createdAt: 0 }, version: v, createdVersion: v } as StoreObject;
    objects.push(o);
    return o;
  };
  let ids = 0;
  const files: FilesView = { list: (kind) => objects.filter((o) => o.kind === kind), holds: holdsWith((o) => key.open((o as SecretObject).spec.sealed, secretAad(o.id))), newId: () => `new-${++ids}` };
  const store = { getByName: (kind: string, name: string) => objects.find((o) => o.kind === kind && o.name === name) } as unknown as ObjectStore;
  const resolve = (spec: ServiceSpec, planned: ReadonlyMap<string, string>) => resolveRefs(store, spec, planned);
  const file = (name: string, data: string, labels: Record<string, string> = {}) => ({ name, labels, data: Buffer.from(data) });
  const withRefs = wire('img:1', { secrets: [{ name: 'db-password' }], configs: [{ name: 'nginx-conf' }] });

  // Nothing yet: created first, and the service refers to what this very apply creates.
  const first = plan({ ...req([{ name: 'web', spec: withRefs }]), secrets: [file('db-password', 's3cret')], configs: [file('nginx-conf', 'server {}', { team: 'shop' })] }, [], resolve, files);
  t.same(first.map((s) => `${s.kind}/${s.name}:${s.action}`), ['secret/db-password:create', 'config/nginx-conf:create', 'service/web:create'], 'secrets and configs before the services');
  t.same(first[1]!.labels, { team: 'shop', [STACK_LABEL]: 'shop' }, 'labelled with the stack');
  t.equal(first[0]!.detail, '6 bytes', 'the size, never the content');
  t.same((first[2] as ServiceStep).spec!.task.secrets!.map((r) => r.id), [(first[0] as FileStep).id], "the service's reference resolves to the secret created with it");

  // As the cluster holds them after that apply: the same content again is unchanged.
  const sec = add('secret', 'db-password', 's3cret');
  const conf = add('config', 'nginx-conf', 'server {}', { team: 'shop', [STACK_LABEL]: 'shop' });
  const web = existing('web', withRefs, { [STACK_LABEL]: 'shop' });
  web.spec = resolve(web.spec, new Map());
  const again = plan({ ...req([{ name: 'web', spec: withRefs }], { prune: true }), secrets: [file('db-password', 's3cret')], configs: [file('nginx-conf', 'server {}', { team: 'shop' })] }, [web], resolve, files);
  t.same(again.map((s) => s.action), ['unchanged', 'unchanged', 'unchanged'], 'a second apply of the same content: no change');

  // Other content under the same name: refused, with the way to roll it.
  t.throws(() => plan({ ...req([{ name: 'web', spec: withRefs }]), secrets: [file('db-password', 'n3w')], configs: [file('nginx-conf', 'server { listen 81; }', { team: 'shop' })] }, [web], resolve, files), {
    message: /^2 problems:\nsecret db-password: exists already with other content, and secrets cannot change: to roll it, declare the new content under a new name \(e\.g\. db-password-v2\) and point the services at it.*\nconfig nginx-conf: exists already with other content, and configs cannot change: .*nginx-conf-v2/s,
  });
  t.throws(() => plan({ ...req([]), secrets: [file('db-password-v2', 'x')] }, [], resolve, { ...files, list: () => [{ ...sec, name: 'db-password-v2' }] }), /e\.g\. db-password-v3/, 'a -vN name suggests the next one');

  // The roll: a new name, the service moved to it; with --prune the old one is kept while the
  // revision a rollback returns to uses it, and pruned once nothing does.
  const rolled = wire('img:1', { secrets: [{ name: 'db-password-v2' }], configs: [{ name: 'nginx-conf' }] });
  const roll = plan({ ...req([{ name: 'web', spec: rolled }], { prune: true }), secrets: [file('db-password-v2', 'n3w')], configs: [file('nginx-conf', 'server {}', { team: 'shop' })] }, [web], resolve, files);
  t.same(roll.map((s) => `${s.kind}/${s.name}:${s.action}`), ['secret/db-password-v2:create', 'config/nginx-conf:unchanged', 'service/web:update', 'secret/db-password:kept']);
  t.equal((roll[2] as ServiceStep).rolls, true, 'the service rolls to the new secret');
  t.match(roll[3]!.detail, /kept: the previous revision of service web \(a rollback returns to it\) uses it/);
  const unused = plan({ ...req([], { prune: true }), configs: [] }, [], resolve, files);
  t.same(unused.map((s) => `${s.kind}/${s.name}:${s.action}`), ['secret/db-password:prune', 'config/nginx-conf:prune'], 'no service uses them: pruned');
  t.same(plan({ ...req([]), configs: [] }, [], resolve, files), [], 'without --prune nothing is removed');
  add('secret', 'blog-key', 'k', { [STACK_LABEL]: 'blog' });
  add('secret', 'loose', 'l', {});
  t.same(plan({ ...req([], { prune: true }) }, [], resolve, files).map((s) => s.name), ['db-password', 'nginx-conf'], "another stack's and a CLI-made secret are never pruned");

  // Labels: a loose one with the same content is adopted; another stack's is refused.
  const adopt = plan({ ...req([]), secrets: [file('loose', 'l')] }, [], resolve, files);
  t.same([adopt[0]!.action, adopt[0]!.detail], ['update', 'adopted into stack shop']);
  t.throws(() => plan({ ...req([]), secrets: [file('blog-key', 'k'), file('Bad Name', 'x'), file('empty', ''), file('lab', 'x', { [STACK_LABEL]: 'x' })] }, [], resolve, files), {
    message: /^4 problems:\nsecret blog-key: exists already and belongs to stack "blog".*\nsecret Bad Name: secret name "Bad Name" is not valid.*\nsecret empty: the data is empty.*\nsecret lab: label io\.shoal\.stack is set by apply/s,
  });
  t.throws(() => plan({ ...req([]), configs: [file('big', 'x'.repeat(1000 * 1024 + 1))] }, [], resolve, files), /config big: the data is 1024001 bytes, over the limit of 1024000 bytes/);
});
