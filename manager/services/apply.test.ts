// The apply plan: what a stack request does against the services the cluster holds (create,
// unchanged, update with the change in words, prune of the stack's own only), and what it refuses,
// every problem at once. Pure: the same plan serves the dry run and the apply.
import t from 'tap';
import { STACK_LABEL, plan } from './apply.js';
import { specFromWire, type WireSpec } from './validate.js';
import type { ServiceObject, ServiceSpec } from './model.js';
import { resolveRefs } from '../secrets/refs.js';
import type { ObjectStore } from '../store/store.js';

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
  t.same(create!.spec!.task.secrets, [{ id: 'sec-1', name: 'db-password', target: '/run/secrets/db-password', uid: 0, gid: 0, mode: 0o400 }], 'the reference resolved to the secret, target defaulted');
  const cur = existing('web', withSecret, { [STACK_LABEL]: 'shop' });
  cur.spec = resolve(cur.spec);
  t.same(plan(req([{ name: 'web', spec: withSecret }]), [cur], resolve).map((s) => s.action), ['unchanged'], 'the same reference again: unchanged');
  t.throws(() => plan(req([{ name: 'web', spec: withSecret }, { name: 'api', spec: wire('img:1', { configs: [{ name: 'nope' }] }) }]), [], resolve), /^service api: config "nope" does not exist: create it first/);
});
