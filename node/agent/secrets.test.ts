// The agent's side of secrets and configs, on this machine's real filesystems: data held in memory
// from the assignments; a task's secrets written to a tmpfs the agent mounts (checked by its
// filesystem type) and its configs to the state dir, each with its uid, gid and mode; a task that
// starts before its data came waits for it, gives up with the names of what is missing, or stops
// when asked; files removed when the task ends, swept when a task no longer runs here, and the
// tmpfs unmounted when the node leaves.
import { existsSync, mkdtempSync, readFileSync, statSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { TaskObject } from '../../manager/services/model.js';
import { removeTestDir } from '../../test/teardown.js';
import { FileError, TMPFS_MAGIC, TaskFiles, isMountPoint } from './secrets.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-agent-secrets-${process.pid}-`));
t.teardown(() => removeTestDir(dir));
const logs: string[] = [];
const files = new TaskFiles({ stateDir: dir, log: (m) => logs.push(m), waitMs: 2000 });

const task = (id: string): TaskObject => ({
  kind: 'task', id, name: id, labels: {}, version: 1, createdVersion: 1, nodeId: 'n',
  spec: {
    serviceName: 's', slot: 1, serviceVersion: 1, desiredState: 'running', restarts: [],
    template: {
      main: { name: 'main', image: 'busybox' }, sidecars: [], init: [], resources: { reservations: {}, limits: {} }, placement: { constraints: [], preferences: [] },
      restart: { condition: 'any', delayMs: 0, maxAttempts: 0, windowMs: 0 }, stopGracePeriodMs: 0, stopSignal: 'SIGTERM',
      secrets: [{ id: 'S1', name: 'pw', target: '/run/secrets/pw', uid: 1000, gid: 100, mode: 0o440 }],
      configs: [{ id: 'C1', name: 'conf', target: '/etc/app.conf', uid: 0, gid: 0, mode: 0o444 }],
    },
  },
  status: { state: 'assigned', message: '', err: '', timestamps: {} },
});
const secret = (action: string, data = 'hunter2') => ({ action, secret: { id: 'S1', name: 'pw', data: Buffer.from(data) } });
const config = (action: string) => ({ action, config: { id: 'C1', name: 'conf', data: Buffer.from('port=80\n') } });

t.test('changes that are not about files are left to the caller', async (t) => {
  t.equal(files.apply({ action: 'update' }), false);
  t.equal(files.apply(secret('update')), true);
  t.same(files.holding('secret'), ['S1']);
  t.equal(files.apply(secret('remove')), true);
  t.same(files.holding('secret'), [], 'removed from memory');
  files.apply(config('update'));
  files.reset();
  t.same(files.holding('config'), [], 'a complete set starts from nothing');
});

t.test('a task that starts before its data came waits for it, then gets its files', async (t) => {
  const started = Date.now();
  const p = files.prepare(task('t1'), () => {});
  setTimeout(() => {
    files.apply(secret('update'));
    files.apply(config('update'));
  }, 300);
  const mounts = await p;
  t.ok(Date.now() - started >= 250, 'it waited for the data');
  t.same(mounts.map((m) => [m.container_path, m.readonly]), [['/run/secrets/pw', true], ['/etc/app.conf', true]], 'read-only mounts at the targets');
  const [sm, cm] = mounts;
  t.equal(statfsSync(sm!.host_path).type, TMPFS_MAGIC, 'the secret is on a tmpfs');
  t.ok(isMountPoint(files.secretsDir), `${files.secretsDir} is a mount point (the agent mounted it)`);
  t.not(statfsSync(cm!.host_path).type, TMPFS_MAGIC, 'the config is in the state dir (not secret)');
  t.equal(readFileSync(sm!.host_path, 'utf8'), 'hunter2');
  const st = statSync(sm!.host_path);
  t.same([st.mode & 0o7777, st.uid, st.gid], [0o440, 1000, 100], "the reference's mode, uid and gid");
  t.equal(statSync(cm!.host_path).mode & 0o7777, 0o444);
  t.equal(readFileSync(cm!.host_path, 'utf8'), 'port=80\n');
  t.equal(statSync(join(files.secretsDir, 't1')).mode & 0o777, 0o700, "the task's secrets directory is owner-only");
  const again = await files.prepare(task('t1'), () => {});
  t.equal(readFileSync(again[0]!.host_path, 'utf8'), 'hunter2', 'a second attempt starts from a clean set');
});

t.test('the task ends: its files go; files of tasks that no longer run here are swept', async (t) => {
  await files.prepare(task('t2'), () => {});
  files.release('t1');
  t.notOk(existsSync(join(files.secretsDir, 't1')) || existsSync(join(files.configsDir, 't1')), "t1's files are gone");
  t.ok(existsSync(join(files.secretsDir, 't2')), "t2's are not");
  files.sweep(new Set(['t9']));
  t.notOk(existsSync(join(files.secretsDir, 't2')) || existsSync(join(files.configsDir, 't2')), 'swept');
  t.match(logs.join('\n'), /removed the files of task t2/);
});

t.test('missing data: a clear error after the wait, or a stop while waiting', async (t) => {
  files.reset();
  await t.rejects(files.prepare(task('t3'), () => {}), new FileError('secret pw, config conf did not come from the managers within 2 s (removed, or no manager reachable)'));
  t.notOk(existsSync(join(files.secretsDir, 't3')), 'nothing written');
  let stop = false;
  setTimeout(() => (stop = true), 200);
  await t.rejects(files.prepare(task('t4'), () => {
    if (stop) throw new Error('stop requested');
  }), /stop requested/, 'a stop ends the wait');
});

t.test('the node leaves: everything goes and the tmpfs is unmounted', async (t) => {
  files.apply(secret('update'));
  files.apply(config('update'));
  await files.prepare(task('t5'), () => {});
  files.removeAll();
  t.notOk(isMountPoint(files.secretsDir), 'unmounted');
  t.notOk(existsSync(join(files.configsDir, 't5')), 'configs removed');
  t.same(files.holding('secret'), [], 'memory cleared');
});
