// Secrets and configs on a real lab (2 managers, 2 workers; real shoald, runtime and runc
// containers). A secret and a config are created from files with random markers; a service on
// worker-1 uses both. Proven here:
// - the secret is readable in the container at its target with its mode, uid and gid (through the
//   CRI's ExecSync), read-only; so is the config;
// - the data key is in each manager's state dir (0600, the same on both: manager-2 got it when it
//   joined), in no worker's; a worker promoted later gets it, and loses it when demoted;
// - the secret's bytes are in no file of any manager's state dir (WAL and snapshots included), after
//   the writes, after a snapshot (the promotion's membership change) and after a restart, while
//   the config's bytes are found in the WAL and the snapshot (the search reads what raft wrote);
// - worker-1 holds it only on its tmpfs (no file of its state dir on disk holds it); worker-2, with
//   no task that uses it, holds it nowhere, and the dispatcher's complete assignments for worker-2
//   carry no secret (seen on the wire with worker-2's own identity), while worker-1's do;
// - `secret rm` is refused while used, naming the service; changing the reference rolls the
//   service, and the old secret's file leaves the node; when the service goes, every file goes;
// - bad input gets a clear error and writes nothing.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAB_IMAGE } from '../lab/registry.js';
import { criClient } from '../node/cri/client.js';
import { Lab, eventually } from './services-helpers.js';

const lab = new Lab(t, 'sec');
t.setTimeout(30 * 60_000);
const W1 = ['--constraint', 'node.hostname==worker-1'];
const SECRET = Buffer.from(`shoal-secret-${process.pid}-${randomBytes(12).toString('hex')}`);
const SECRET2 = Buffer.from(`shoal-secret2-${process.pid}-${randomBytes(12).toString('hex')}`);
const CONFIG = Buffer.from(`shoal-config-${process.pid}-${randomBytes(12).toString('hex')}\n`);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const PROBE = join(fileURLToPath(new URL('.', import.meta.url)), 'secrets-probe.js');
const TMPFS = 0x01021994;

/** Regular files under `root` on root's own filesystem (mounts below it are not entered) holding `marker`. */
function filesWith(root: string, marker: Buffer): { scanned: number; found: string[] } {
  const dev = statSync(root).dev;
  const out = { scanned: 0, found: [] as string[] };
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue; // gone meanwhile
      }
      if (st.dev !== dev) continue; // a mount point: another filesystem
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        out.scanned++;
        if (readFileSync(p).includes(marker)) out.found.push(p.slice(root.length + 1));
      }
    }
  };
  walk(root);
  return out;
}

const managers = () => lab.nodes().filter((n) => existsSync(join(n.stateDir, 'raft'))).map((n) => n.name);

function noSecretOnManagers(t: { same: (a: unknown, b: unknown, m: string) => unknown; ok: (a: unknown, m: string) => unknown }, when: string): void {
  for (const m of managers()) {
    const dir = lab.node(m).stateDir;
    const r = filesWith(dir, SECRET);
    t.same(r.found, [], `${when}: the secret is in none of the ${r.scanned} files under ${m}'s state dir`);
    t.ok(filesWith(join(dir, 'raft'), CONFIG).found.length > 0, `${when}: ${m}'s raft files hold the config's bytes (the search reads them)`);
  }
}

async function exec(node: string, containerId: string, cmd: string[]): Promise<{ out: string; code: number }> {
  const c = criClient(join(lab.node(node).stateDir, 'cri.sock'), 20_000);
  try {
    const r = await c.runtime.ExecSync({ container_id: containerId, cmd, timeout: 15 });
    return { out: Buffer.from(r.stdout ?? []).toString() + Buffer.from(r.stderr ?? []).toString(), code: Number(r.exit_code) };
  } finally {
    c.close();
  }
}

async function probe(node: string): Promise<{ tasks: string[]; secrets: { id: string; name: string; sha256: string }[]; configs: { id: string; sha256: string }[] }> {
  const n = lab.node(node);
  const out = await lab.ok(['lab', 'exec', node, '--', process.execPath, PROBE, '--state-dir', n.stateDir, '--manager', `${lab.node('manager-1').address}:4242`, '--hostname', node, '--addr', `${n.address}:4242`], 60_000);
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

async function running(service: string): Promise<{ id: string; containerId: string; node: string }> {
  return eventually(`a running task of ${service}`, async () => {
    const live = (await lab.live(service)).filter((x) => x.state === 'running' && x.containerId);
    return live.length === 1 && { id: live[0]!.id, containerId: live[0]!.containerId!, node: live[0]!.node! };
  });
}

let secretId = '';

t.before(async () => {
  const up = await lab.shoal(['lab', 'up', '--managers', '2', '--workers', '2', '--demo', '0'], 400_000);
  if (up.code !== 0) throw new Error(`lab up failed: ${up.stderr}\n${up.stdout}`);
});

t.test('the data key: on both managers (manager-2 got it when it joined), on no worker', async (t) => {
  const key = (n: string) => join(lab.node(n).stateDir, 'data.key');
  // A joining manager writes the key it fetched once it has the cluster object (and so knows
  // whether autolock seals it): a moment after lab up may be before that.
  await eventually('manager-2 writes its data key', async () => existsSync(key('manager-2')));
  for (const m of ['manager-1', 'manager-2']) {
    t.ok(existsSync(key(m)), `${m} holds a data key`);
    t.equal(statSync(key(m)).mode & 0o777, 0o600, `${m}: mode 0600`);
  }
  t.same(readFileSync(key('manager-2')), readFileSync(key('manager-1')), 'the same key');
  for (const w of ['worker-1', 'worker-2']) t.notOk(existsSync(key(w)), `${w} holds none`);
  const logs = readFileSync(join(lab.dir, 'logs', 'manager-1.log'), 'utf8') + readFileSync(join(lab.dir, 'logs', 'manager-2.log'), 'utf8');
  t.match(logs, /handed data key [0-9a-f]{16} to manager/, 'handed over by a manager (CA.GetDataKey, mTLS)');
});

t.test('a secret and a config, used by a service: readable in the container with target, mode, uid and gid', async (t) => {
  const sf = join(lab.dir, 'secret.txt');
  const cf = join(lab.dir, 'app.conf');
  writeFileSync(sf, SECRET, { mode: 0o600 });
  writeFileSync(cf, CONFIG);
  secretId = (await lab.ok(['--lab', 'secret', 'create', 'db-pw', sf])).trim();
  await lab.ok(['--lab', 'config', 'create', 'app.conf', cf]);
  const r = await lab.shoal(['--lab', 'service', 'create', '--name', 'app', '--replicas', '1', ...W1,
    '--secret', 'db-pw,target=db,uid=1000,gid=1000,mode=0440', '--config', 'app.conf,target=/etc/app.conf,mode=0444', LAB_IMAGE, 'sleep', '1000000']);
  t.equal(r.code, 0, `service created and running (${r.stderr})`);
  const task = await running('app');
  t.equal(task.node, 'worker-1');
  const s = await exec('worker-1', task.containerId, ['sh', '-c', 'stat -c "%a %u %g" /run/secrets/db; cat /run/secrets/db']);
  t.equal(s.code, 0, 'read in the container');
  t.equal(s.out, `440 1000 1000\n${SECRET.toString()}`, 'the secret at /run/secrets/db, mode 0440, uid 1000, gid 1000, its exact bytes');
  const w = await exec('worker-1', task.containerId, ['sh', '-c', 'echo x > /run/secrets/db']);
  t.not(w.code, 0, 'and read-only');
  t.match(w.out, /Read-only file system/);
  const c = await exec('worker-1', task.containerId, ['sh', '-c', 'stat -c "%a %u %g" /etc/app.conf; cat /etc/app.conf']);
  t.equal(c.out, `444 0 0\n${CONFIG.toString()}`, 'the config at /etc/app.conf, mode 0444');
  const insp = await lab.ok(['--lab', 'secret', 'inspect', 'db-pw', '--format', 'json']);
  t.notOk(insp.includes(SECRET.toString()), 'secret inspect never shows the data');
  t.same(JSON.parse(insp)[0].services, ['app'], 'and says which service uses it');
});

t.test('on the nodes: worker-1 holds it on its tmpfs only; worker-2 receives nothing', async (t) => {
  const w1 = lab.node('worker-1').stateDir;
  const sdir = join(w1, 'secrets');
  t.equal(statfsSync(sdir).type, TMPFS, `${sdir} is a tmpfs`);
  const onTmpfs = filesWith(sdir, SECRET);
  t.equal(onTmpfs.found.length, 1, "the task's secret file is there");
  const disk = filesWith(w1, SECRET);
  t.same(disk.found, [], `none of the ${disk.scanned} files of worker-1's state dir on disk holds it (assignments, runtime records, logs)`);
  t.ok(disk.scanned > 10, 'the search read the state dir');
  t.ok(readFileSync(join(w1, 'assignments.json'), 'utf8').includes(secretId), "worker-1's saved assignments name the secret (the reference)");

  const w2 = lab.node('worker-2').stateDir;
  t.same(filesWith(w2, SECRET).found, [], "no file of worker-2's holds it");
  t.notOk(existsSync(join(w2, 'secrets')), 'worker-2 never even mounted a secrets tmpfs');
  t.notOk(readFileSync(join(w2, 'assignments.json'), 'utf8').includes(secretId), "worker-2's assignments do not name it");
  // What the dispatcher sends each node, read on the wire with the node's own identity.
  const p2 = await probe('worker-2');
  t.same(p2.secrets, [], 'the dispatcher sends worker-2 no secret');
  t.same(p2.configs, [], 'nor a config');
  const p1 = await probe('worker-1');
  t.same(p1.secrets.map((x) => [x.id, x.name, x.sha256]), [[secretId, 'db-pw', sha(SECRET)]], 'it sends worker-1 the secret (decrypted by the manager), with its task');
  t.equal(p1.configs.length, 1, 'and the config');
});

t.test('in clear text in no manager file: after the writes, after a snapshot, after a restart', async (t) => {
  noSecretOnManagers(t, 'after the writes');
  // A membership change makes every manager write a snapshot: promote worker-2.
  const snaps = (m: string) => (existsSync(join(lab.node(m).stateDir, 'raft', 'snap')) ? readdirSync(join(lab.node(m).stateDir, 'raft', 'snap')).filter((f) => f.endsWith('.snap')) : []);
  const before = new Set(snaps('manager-1'));
  await lab.ok(['--lab', 'node', 'promote', 'worker-2']);
  const keyFile = join(lab.node('worker-2').stateDir, 'data.key');
  await eventually('worker-2 to get the data key', async () => existsSync(keyFile));
  t.same(readFileSync(keyFile), readFileSync(join(lab.node('manager-1').stateDir, 'data.key')), 'the promoted worker got the same key');
  t.equal(statSync(keyFile).mode & 0o777, 0o600, 'kept 0600');
  await eventually('worker-2 a raft voter', async () => JSON.parse(await lab.ok(['--lab', 'node', 'ls', '--format', 'json'])).some((n: any) => n.hostname === 'worker-2' && n.managerStatus?.voter));
  const fresh = await eventually('a new snapshot on manager-1', async () => snaps('manager-1').filter((f) => !before.has(f)));
  t.ok(fresh.length > 0, `manager-1 wrote ${fresh.join(', ')}`);
  const snapDir = join(lab.node('manager-1').stateDir, 'raft', 'snap');
  t.ok(fresh.some((f) => readFileSync(join(snapDir, f)).includes(CONFIG)), 'the snapshot holds the store (the config is in it)');
  t.notOk(fresh.some((f) => readFileSync(join(snapDir, f)).includes(SECRET)), 'but not the secret in clear');
  await eventually('a snapshot on worker-2 (installed or its own)', async () => existsSync(join(lab.node('worker-2').stateDir, 'raft', 'snap')) && snaps('worker-2').length > 0);
  noSecretOnManagers(t, 'after the snapshot');

  t.equal((await lab.shoal(['lab', 'stop', 'manager-1'])).code, 0, 'manager-1 stopped');
  t.equal((await lab.shoal(['lab', 'start', 'manager-1'])).code, 0, 'and started again');
  await eventually('manager-1 answering', async () => (await lab.shoal(['--lab', 'secret', 'ls'], 20_000)).code === 0);
  noSecretOnManagers(t, 'after a restart');
  // The restarted cluster still opens it: a forced redeploy starts a new task with the secret.
  const old = (await running('app')).id;
  const r = await lab.shoal(['--lab', 'service', 'update', '--force', '--update-monitor', '1s', 'app']);
  t.equal(r.code, 0, `redeployed (${r.stderr})`);
  const task = await running('app');
  t.not(task.id, old, 'a new task');
  t.equal((await exec(task.node, task.containerId, ['cat', '/run/secrets/db'])).out, SECRET.toString(), 'which reads the secret');
  noSecretOnManagers(t, 'after the redeploy');
});

t.test('secret rm refused while used; a reference change rolls the service; files leave with the task', async (t) => {
  const rm = await lab.shoal(['--lab', 'secret', 'rm', 'db-pw']);
  t.equal(rm.code, 1, 'secret rm refused');
  t.match(rm.stderr, /secret db-pw is in use by service app/, 'naming the service');
  t.match((await lab.ok(['--lab', 'secret', 'ls'])), /db-pw/, 'still there');
  const f2 = join(lab.dir, 'secret2.txt');
  writeFileSync(f2, SECRET2, { mode: 0o600 });
  await lab.ok(['--lab', 'secret', 'create', 'db-pw2', f2]);
  const before = await running('app');
  const sdir = join(lab.node('worker-1').stateDir, 'secrets');
  // The redeployed task's predecessor leaves its files as its shutdown completes.
  t.same(await eventually("the secrets tmpfs holds only the running task's files", async (saw) => { const l = saw(readdirSync(sdir)); return l.length === 1 && l; }), [before.id], "the secrets tmpfs holds the running task's files");
  const up = await lab.shoal(['--lab', 'service', 'update', '--secret-rm', 'db-pw', '--secret-add', 'db-pw2,target=/run/secrets/db,mode=0400', '--update-monitor', '1s', 'app']);
  t.equal(up.code, 0, `update exits 0 (${up.stderr})`);
  t.match(up.stdout, /service app converged \(update completed/, 'a rolling update, to completion');
  const after = await running('app');
  t.not(after.id, before.id, 'the task was replaced');
  const s = await exec('worker-1', after.containerId, ['sh', '-c', 'stat -c "%a" /run/secrets/db; cat /run/secrets/db']);
  t.equal(s.out, `400\n${SECRET2.toString()}`, 'the new task reads the new secret');
  const hist = await lab.ok(['--lab', 'service', 'history', 'app']);
  t.match(hist, /secrets \["db-pw"\] -> \["db-pw2"\]/, 'the history says what changed');
  await eventually("the old task's files gone from worker-1", async () => !existsSync(join(sdir, before.id)));
  t.same(filesWith(sdir, SECRET).found, [], 'the old secret is on worker-1 no more');
  const rm2 = await lab.shoal(['--lab', 'secret', 'rm', 'db-pw']);
  t.match(rm2.stderr, /in use by service app \(the previous revision, which a rollback returns to\)/, 'still kept for a rollback, and it says so');

  await lab.ok(['--lab', 'service', 'rm', 'app']);
  await eventually('every file of the service gone from worker-1', async () => readdirSync(sdir).length === 0 && readdirSync(join(lab.node('worker-1').stateDir, 'configs')).length === 0);
  t.pass("the secrets tmpfs and the configs dir are empty once the task ended");
  await lab.ok(['--lab', 'secret', 'rm', 'db-pw', 'db-pw2']);
  await lab.ok(['--lab', 'config', 'rm', 'app.conf']);
  t.equal((await lab.ok(['--lab', 'secret', 'ls', '--format', 'json'])).trim(), '[]', 'unused secrets removed');
});

t.test('bad input: a clear error and nothing written', async (t) => {
  const f = join(lab.dir, 'x.txt');
  writeFileSync(f, 'x');
  const big = join(lab.dir, 'big.bin');
  writeFileSync(big, Buffer.alloc(500 * 1024 + 1, 1));
  const empty = join(lab.dir, 'empty.txt');
  writeFileSync(empty, '');
  await lab.ok(['--lab', 'secret', 'create', 'keep', f]);
  await lab.ok(['--lab', 'service', 'create', '--name', 'keep', '--replicas', '0', '--secret', 'keep', LAB_IMAGE, 'true']);
  const secretsBefore = await lab.ok(['--lab', 'secret', 'ls', '--format', 'json']);
  const servicesBefore = await lab.ok(['--lab', 'service', 'ls', '--format', 'json']);
  const cases: [string, string[], RegExp][] = [
    ['a name that is not one', ['secret', 'create', 'no/slash', f], /secret name "no\/slash" is not valid/],
    ['empty data', ['secret', 'create', 'e', empty], /the data is empty/],
    ['over 500 KiB', ['secret', 'create', 'big', big], /a secret holds at most 512000 bytes \(500 KiB\)/],
    ['a duplicate name', ['secret', 'create', 'keep', f], /a secret named "keep" exists already/],
    ['a missing file', ['secret', 'create', 'nofile', join(lab.dir, 'nosuch')], /cannot read .*nosuch/],
    ['a reference to a missing secret', ['service', 'create', '--name', 'x1', '--secret', 'nosuch', LAB_IMAGE], /secret "nosuch" does not exist/],
    ['a target under /proc', ['service', 'create', '--name', 'x2', '--secret', 'keep,target=/proc/x', LAB_IMAGE], /under \/proc/],
    ['a target with ..', ['service', 'create', '--name', 'x3', '--secret', 'keep,target=../etc/x', LAB_IMAGE], /must not contain '\.\.'/],
    ['a setuid mode', ['service', 'create', '--name', 'x4', '--secret', 'keep,mode=4755', LAB_IMAGE], /mode 04755 is not valid/],
    ['a mode that is not octal', ['service', 'create', '--name', 'x5', '--secret', 'keep,mode=999', LAB_IMAGE], /mode must be octal/],
    ['two files at one path', ['service', 'create', '--name', 'x6', '--secret', 'keep,target=/a', '--config', 'nosuch,target=/a', LAB_IMAGE], /both target \/a/],
    ['an update adding a missing secret', ['service', 'update', '--secret-add', 'nosuch', 'keep'], /secret "nosuch" does not exist/],
    ['removing a reference it has not', ['service', 'update', '--secret-rm', 'other', 'keep'], /the service has no secret "other"/],
    ['rm of a secret in use', ['secret', 'rm', 'keep'], /secret keep is in use by service keep/],
    ['rm of a missing one', ['secret', 'rm', 'nosuch'], /no secret "nosuch"/],
  ];
  for (const [what, args, msg] of cases) {
    const r = await lab.shoal(['--lab', ...args]);
    t.not(r.code, 0, `${what}: refused`);
    t.match(r.stderr, msg, `${what}: ${r.stderr.trim()}`);
  }
  t.equal(await lab.ok(['--lab', 'secret', 'ls', '--format', 'json']), secretsBefore, 'no secret written or removed');
  t.equal(await lab.ok(['--lab', 'service', 'ls', '--format', 'json']), servicesBefore, 'no service written or changed');
  await lab.ok(['--lab', 'service', 'rm', 'keep']);
  await lab.ok(['--lab', 'secret', 'rm', 'keep']);
});

t.test('a demoted manager deletes its data key', async (t) => {
  // A demotion that would leave too few reachable managers is refused (as it must be); on a
  // loaded machine a manager can be briefly unreachable, which is not what this tests.
  const { waitedMs } = await lab.leaderWithReachableVoters(3);
  t.comment(`secrets-lab: all 3 managers reachable voters (waited ${(waitedMs / 1000).toFixed(1)} s)`);
  await lab.ok(['--lab', 'node', 'demote', 'worker-2']);
  await eventually('worker-2 without a data key', async () => !existsSync(join(lab.node('worker-2').stateDir, 'data.key')));
  t.pass('data.key removed on demotion');
});
