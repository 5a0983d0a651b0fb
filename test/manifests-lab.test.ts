// Manifests on a real lab (1 manager, 2 workers; real shoald, runtime, runc containers): the
// example stack applied (every service converged, real containers), applied again (no change, no
// write), edited, diffed (what would change, nothing written), applied (a rolling update, a
// scale-down) and pruned (a service no longer declared removed; another stack's and a CLI-made
// service untouched); `get service -o yaml` output applied unchanged; and a table of malformed
// manifests, each refused with its file:line error and nothing written.
import t from 'tap';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAB_IMAGE } from '../lab/registry.js';
import { Lab, eventually } from './services-helpers.js';

const lab = new Lab(t, 'mfst');
t.setTimeout(30 * 60_000);
const dir = mkdtempSync(join(tmpdir(), `shoal-mfst-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const EXAMPLE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'shop.yaml');
const SHOP = join(dir, 'shop.yaml');

t.before(async () => {
  const up = await lab.shoal(['lab', 'up', '--managers', '1', '--workers', '2', '--demo', '0'], 300_000);
  if (up.code !== 0) throw new Error(`lab up failed: ${up.stderr}\n${up.stdout}`);
  copyFileSync(EXAMPLE, SHOP);
});

/** Each service as name@revision (versions move as tasks report; revisions only with spec changes). */
async function snapshot(): Promise<string[]> {
  const list = JSON.parse(await lab.ok(['--lab', 'service', 'ls', '--format', 'json'])) as { name: string; revision: number; labels: Record<string, string> }[];
  return list.map((s) => `${s.name}@${s.revision}${s.labels['io.shoal.stack'] ? `/${s.labels['io.shoal.stack']}` : ''}`).sort();
}

async function runningContainers(serviceId: string): Promise<number> {
  return (await lab.criRunning('worker-1', serviceId)).length + (await lab.criRunning('worker-2', serviceId)).length;
}

async function inspect(name: string): Promise<any> {
  return (JSON.parse(await lab.ok(['--lab', 'service', 'inspect', name, '--format', 'json'])) as any[])[0];
}

t.test('apply the example stack, again (no change), edit, diff, apply, prune', async (t) => {
  // Services that are not the stack's: one made with the CLI, one of another stack.
  await lab.ok(['--lab', 'service', 'create', '--name', 'loose', '--replicas', '0', LAB_IMAGE, 'true']);
  writeFileSync(join(dir, 'blog.yaml'), `stack: blog\nservices:\n  blog:\n    image: ${LAB_IMAGE}\n    replicas: 0\n`);
  await lab.ok(['--lab', 'apply', '-f', join(dir, 'blog.yaml')]);

  const r = await lab.shoal(['--lab', 'apply', '-f', SHOP], 600_000);
  t.equal(r.code, 0, `apply exits 0 once converged (${r.stderr})`);
  t.match(r.stdout, /service\/web created/);
  t.match(r.stdout, /service\/api created/);
  t.match(r.stdout, /service\/report created/);
  t.match(r.stdout, /web: 3\/3 running/, 'progress per service');
  t.match(r.stdout, /report: scheduled "\*\/5 \* \* \* \*", next run /, 'the scheduled job: its next run');
  t.match(r.stdout, /stack shop applied: 3 created; .*converged/, 'and a verdict');
  const web = await inspect('web');
  t.equal(web.labels['io.shoal.stack'], 'shop', 'labelled with its stack');
  t.equal(await runningContainers(web.id), 3, "three containers of web in the workers' runtimes");
  const api = await inspect('api');
  await eventually('api: the sidecar reaches main, after the init container ran', async () => {
    const logs = await lab.ok(['--lab', 'service', 'logs', 'api']);
    return logs.includes('migrated') && logs.includes('api answers') && logs.includes('api up (production)');
  });
  t.equal(await runningContainers(api.id), 2 * 2, 'api: main and sidecar in each of 2 pods');

  const before = await snapshot();
  const again = await lab.shoal(['--lab', 'apply', '-f', SHOP]);
  t.equal(again.code, 0);
  t.match(again.stdout, /stack shop: no change \(3 unchanged\)/, 'a second apply changes nothing and says so');
  t.same(await snapshot(), before, 'no revision moved');

  // The edit: web gets a variable (a rolling update), api one replica, report is deleted.
  const edited = readFileSync(SHOP, 'utf8')
    .replace('    replicas: 3\n', '    replicas: 3\n    env: {RELEASE: "2"}\n')
    .replace(/    replicas: 2\n/, '    replicas: 1\n');
  writeFileSync(SHOP, edited.slice(0, edited.indexOf('  # A report every')));
  const diff = await lab.shoal(['--lab', 'diff', '-f', SHOP, '--prune']);
  t.equal(diff.code, 0, `diff exits 0 (${diff.stderr})`);
  t.match(diff.stdout, /service\/web: would be configured \(env null -> \["RELEASE=2"\]\); its tasks would be replaced \(rolling update\)/);
  t.match(diff.stdout, /\+    env:\n\+      RELEASE: "2"\n/, 'as a diff of the manifest');
  t.match(diff.stdout, /service\/api: would be configured \(replicas 2 -> 1\)\n/);
  t.match(diff.stdout, /-    replicas: 2\n\+    replicas: 1\n/);
  t.match(diff.stdout, /service\/report: would be pruned/);
  t.notMatch(diff.stdout, /blog|loose/, "other stacks' and CLI-made services are not the stack's");
  t.match(diff.stdout, /3 change\(s\); nothing was applied/);
  t.same(await snapshot(), before, 'diff wrote nothing');

  const up = await lab.shoal(['--lab', 'apply', '-f', SHOP, '--prune'], 600_000);
  t.equal(up.code, 0, `apply of the edit exits 0 (${up.stderr})`);
  t.match(up.stdout, /service\/web configured: env null -> \["RELEASE=2"\] \(rolling update\)/);
  t.match(up.stdout, /service\/api configured: replicas 2 -> 1/);
  t.match(up.stdout, /service\/report pruned/);
  t.match(up.stdout, /web: updating, \d\/3 updated/, 'the rolling update shown as it goes');
  t.match(up.stdout, /stack shop applied: 2 configured, 1 pruned; .*converged/);
  const webAfter = await inspect('web');
  t.equal(webAfter.revision, 2, 'web: a new revision');
  t.equal(webAfter.updateStatus?.state, 'completed', 'its rolling update completed');
  const live = await lab.live('web');
  t.equal(live.length, 3, 'three web tasks');
  t.ok(live.every((x) => x.state === 'running' && (x as any).upToDate), 'all running the new spec');
  const env = await lab.ok(['--lab', 'get', 'service', 'web', '-o', 'yaml']);
  t.match(env, /RELEASE: "2"/);
  await eventually('api down to one task', async () => (await lab.live('api')).length === 1);
  await eventually('report gone', async () => !(await snapshot()).some((s) => s.startsWith('report@')));
  t.same((await snapshot()).filter((s) => !s.startsWith('web@') && !s.startsWith('api@')), ['blog@1/blog', 'loose@1'], "the other stack's service and the CLI's are untouched");

  const third = await lab.shoal(['--lab', 'apply', '-f', SHOP, '--prune']);
  t.match(third.stdout, /stack shop: no change \(2 unchanged\)/, 'and applying the edit again changes nothing');
});

t.test('get service -o yaml: output that apply accepts unchanged', async (t) => {
  for (const name of ['web', 'api', 'loose']) {
    const yaml = await lab.ok(['--lab', 'get', 'service', name, '-o', 'yaml']);
    const p = join(dir, `got-${name}.yaml`);
    writeFileSync(p, yaml);
    const r = await lab.shoal(['--lab', 'apply', '-f', p]);
    t.equal(r.code, 0, `${name}: apply of get's output (${r.stderr})`);
    t.match(r.stdout, /no change \(1 unchanged\)/, `${name}: nothing changes`);
  }
  const all = await lab.ok(['--lab', 'get', 'service', '--stack', 'shop', '-o', 'yaml']);
  t.match(all, /^stack: shop\nservices:\n  api:/, 'a whole stack as one manifest');
  const p = join(dir, 'got-shop.yaml');
  writeFileSync(p, all);
  const r = await lab.shoal(['--lab', 'apply', '-f', p, '--prune']);
  t.match(r.stdout, /stack shop: no change \(2 unchanged\)/, 'the stack from get, applied with --prune: nothing changes, nothing pruned');
  const stdin = await new Promise<{ code: number; out: string }>((resolve) => {
    import('node:child_process').then(({ spawn }) => {
      const c = spawn(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js'), '--lab', 'apply', '-f', '-'], { env: lab.env });
      let out = '';
      c.stdout.on('data', (d) => (out += d));
      c.on('close', (code) => resolve({ code: code ?? 1, out }));
      c.stdin.end(all);
    });
  });
  t.equal(stdin.code, 0);
  t.match(stdin.out, /no change/, '-f - reads standard input');
});

t.test('malformed manifests: each refused with its file:line error, nothing written', async (t) => {
  const before = await snapshot();
  const tasksBefore = (await lab.tasks('web')).length + (await lab.tasks('api')).length;
  const img = LAB_IMAGE;
  const cases: [string, string, RegExp][] = [
    ['a count that is not a number', `stack: shop\nservices:\n  web:\n    image: ${img}\n    replicas: three\n`, /bad\d+\.yaml:5: services\.web\.replicas: expected a non-negative integer, got "three"/],
    ['a misspelt field', `services:\n  fresh:\n    image: ${img}\n    replcas: 2\n`, /bad\d+\.yaml:4: services\.fresh\.replcas: unknown field \(did you mean replicas\?\)/],
    ['no image', 'services:\n  fresh:\n    replicas: 1\n', /bad\d+\.yaml:2: services\.fresh\.image: required/],
    ['YAML that does not parse', `services:\n  fresh: {image: ${img}, replicas: [1}\n`, /bad\d+\.yaml:2: not valid YAML/],
    ['a valid service beside an invalid one', `stack: shop\nservices:\n  fresh:\n    image: ${img}\n  broken:\n    image: ${img}\n    stopGracePeriod: soon\n`, /bad\d+\.yaml:7: services\.broken\.stopGracePeriod: expected a duration/],
    // Refused by the cluster (its own validation), placed at the field's line by the CLI.
    ['an image reference the cluster refuses', `stack: shop\nservices:\n  fresh:\n    replicas: 1\n    image: "UPPER/Case::x"\n`, /bad\d+\.yaml:5: services\.fresh\.image: main\.image "UPPER\/Case::x" is not a valid image reference/],
    ['a cron the cluster refuses', `services:\n  fresh:\n    image: ${img}\n    mode: replicated-job\n    schedule: "61 * * * *"\n`, /bad\d+\.yaml:5: services\.fresh\.schedule: schedule "61 \* \* \* \*": minute field: 61 is outside 0-59/],
    ['a constraint the cluster refuses', `services:\n  fresh:\n    image: ${img}\n    constraints: [node.colour=red]\n`, /bad\d+\.yaml:4: services\.fresh\.constraints: constraint "node\.colour=red" does not parse/],
    ['a mode change', `stack: shop\nservices:\n  web:\n    image: ${img}\n    mode: global\n`, /bad\d+\.yaml:5: services\.web\.mode: is replicated in the cluster: its mode cannot change to global/],
    ["another stack's service", `stack: shop\nservices:\n  blog:\n    image: ${img}\n`, /bad\d+\.yaml:3: services\.blog: exists already and belongs to stack "blog"/],
    ['prune without a stack', `services:\n  fresh:\n    image: ${img}\n`, /--prune needs a stack/],
  ];
  let i = 0;
  for (const [what, text, want] of cases) {
    const p = join(dir, `bad${++i}.yaml`);
    writeFileSync(p, text);
    const r = await lab.shoal(['--lab', 'apply', '-f', p, ...(what === 'prune without a stack' ? ['--prune'] : [])]);
    t.not(r.code, 0, `${what}: refused`);
    t.match(r.stderr, want, `${what}: ${r.stderr.trim().split('\n').slice(-1)[0]}`);
    t.match(r.stderr, /nothing was applied|--prune needs/, `${what}: says nothing was applied`);
  }
  t.same(await snapshot(), before, 'no service created, changed or removed');
  t.equal((await lab.tasks('web')).length + (await lab.tasks('api')).length, tasksBefore, 'no task created');
});
