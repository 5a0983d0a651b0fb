// End-to-end: shoal-runtime as its own process, driven over its CRI socket, pulling from a real
// docker-registry on loopback and running containers with real runc.
import t from 'tap';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { cleanupRoot } from './testing/cleanup.js';
import { startRegistry, pushImage } from './testing/registry.js';
import { startRuntime, type RuntimeProc } from './testing/runtime-proc.js';
import { busyboxImage, hostileImages } from './testing/test-image.js';
import { parseLine } from './logs.js';
import { execStream } from './testing/ws-exec-client.js';
import { cgroupVersion } from './cgroups.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const base = mkdtempSync(join(tmpdir(), `shoal-cri-${process.pid}-`));
const root = join(base, 'root');
const socket = join(base, 'cri.sock');
const logDir = join(base, 'logs');
let rt: RuntimeProc | undefined;
t.teardown(async () => {
  if (rt) await rt.kill('SIGKILL');
  cleanupRoot(root);
  rmSync(base, { recursive: true, force: true });
});

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const code = (e: any) => e?.code;

t.test('CRI runtime end to end', async (t) => {
  const reg = await startRegistry();
  t.teardown(() => reg.stop());
  const img = busyboxImage();
  await pushImage(reg.host, 'shoal/busybox', '1', img);
  for (const [name, h] of Object.entries(hostileImages())) await pushImage(reg.host, `shoal/hostile-${name}`, '1', h);
  const IMAGE = `${reg.host}/shoal/busybox:1`;
  rt = await startRuntime(socket, root);
  let c = rt.client;

  let n = 0;
  const pod = async (extra: any = {}) => {
    const config = { metadata: { name: `pod${++n}`, uid: `uid-${n}`, namespace: 'test' }, hostname: `pod${n}`, log_directory: logDir, labels: { test: 'cri', n: String(n) }, ...extra };
    const { pod_sandbox_id } = await c.rt.RunPodSandbox({ config });
    return { id: pod_sandbox_id as string, config };
  };
  const container = async (p: { id: string; config: any }, name: string, cfg: any) => {
    const { container_id } = await c.rt.CreateContainer({ pod_sandbox_id: p.id, sandbox_config: p.config, config: { metadata: { name }, image: { image: IMAGE }, log_path: `${name}.log`, ...cfg } });
    return container_id as string;
  };
  const status = async (id: string) => (await c.rt.ContainerStatus({ container_id: id })).status;
  const exited = (id: string, ms?: number) => waitFor(`container ${id.slice(0, 12)} to exit`, async () => { const s = await status(id); return s.state === 2 && s; }, ms);
  const logLines = (name: string) => existsSync(join(logDir, `${name}.log`)) ? readFileSync(join(logDir, `${name}.log`), 'utf8').split('\n').filter(Boolean).map((l) => parseLine(l)!) : [];

  t.test('Version, Status, and UNIMPLEMENTED for what is not implemented', async (t) => {
    const v = await c.rt.Version({ version: 'v1' });
    t.equal(v.runtime_name, 'shoal-runtime');
    t.equal(v.runtime_api_version, 'v1');
    const s = await c.rt.Status({});
    t.same(s.status.conditions.map((x: any) => [x.type, x.status, x.reason]), [['RuntimeReady', true, ''], ['NetworkReady', false, 'NetworkPluginNotReady']], 'no CNI config: network not ready (pods still run, loopback only)');
    t.match(s.status.conditions[1].message, /no network config found in \/.*\.no-cni-config/, 'the message names the config directory');
    for (const [svc, name, req] of [['rt', 'CheckpointContainer', {}], ['rt', 'UpdateRuntimeConfig', {}], ['rt', 'ListMetricDescriptors', {}]] as const) {
      const e = await (c as any)[svc][name](req).catch((x: any) => x);
      t.equal(code(e), 12, `${name} answers UNIMPLEMENTED`);
      t.match(e.details, new RegExp(`${name} is not implemented by shoal-runtime`), 'naming the call');
    }
  });

  t.test('GetContainerEvents streams pod and container lifecycle events', async (t) => {
    await c.img.PullImage({ image: { image: IMAGE } });
    const seen: any[] = [];
    const stream = c.raw.GetContainerEvents({});
    stream.on('data', (e: any) => seen.push(e));
    stream.on('error', () => {});
    await new Promise((r) => setTimeout(r, 100));
    const p = await pod();
    const id = await container(p, 'evented', { command: ['sh', '-c', 'exit 0'] });
    await c.rt.StartContainer({ container_id: id });
    await exited(id);
    await c.rt.RemoveContainer({ container_id: id });
    await c.rt.StopPodSandbox({ pod_sandbox_id: p.id });
    await c.rt.RemovePodSandbox({ pod_sandbox_id: p.id });
    await waitFor('the pod deleted event', async () => seen.some((e) => e.container_id === p.id && e.container_event_type === 3));
    stream.cancel();
    const names = seen.map((e) => `${e.container_id === p.id ? 'pod' : e.container_id === id ? 'ctr' : '?'} ${['CREATED', 'STARTED', 'STOPPED', 'DELETED'][e.container_event_type]}`);
    t.same(names, ['pod CREATED', 'pod STARTED', 'ctr CREATED', 'ctr STARTED', 'ctr STOPPED', 'ctr DELETED', 'pod STOPPED', 'pod DELETED']);
    const started = seen.find((e) => e.container_id === id && e.container_event_type === 1);
    t.equal(started.pod_sandbox_status.id, p.id, 'with the pod\'s status');
    t.same(started.containers_statuses.map((s: any) => [s.id, s.state]), [[id, 1]], 'and its containers\' statuses');
    t.ok(Number(started.created_at) > 0);
  });

  t.test('images: pull, list, status, fs info, hostile images refused', async (t) => {
    const r = await c.img.PullImage({ image: { image: IMAGE } });
    t.equal(r.image_ref, img.config.digest);
    const list = await c.img.ListImages({});
    t.same(list.images.map((i: any) => i.repo_tags), [[IMAGE]]);
    t.ok(Number(list.images[0].size) > 1000000, 'size counts the layers');
    const st = await c.img.ImageStatus({ image: { image: `${reg.host}/shoal/busybox@${img.manifest.digest}` } });
    t.equal(st.image.id, img.config.digest, 'status by digest');
    const none = await c.img.ImageStatus({ image: { image: 'example.com/nothing:here' } });
    t.equal(none.image, null, 'absent image: status without image, no error');
    const fsi = await c.img.ImageFsInfo({});
    t.ok(Number(fsi.image_filesystems[0].used_bytes.value) > 0);
    for (const name of Object.keys(hostileImages())) {
      const e = await c.img.PullImage({ image: { image: `${reg.host}/shoal/hostile-${name}:1` } }).catch((x: any) => x);
      t.equal(code(e), 3, `hostile image ${name} refused with INVALID_ARGUMENT`);
      t.match(e.details, /refusing/);
    }
    t.notOk(existsSync('/tmp/shoal-escape.txt'));
    const bad = await c.img.PullImage({ image: { image: '' } }).catch((x: any) => x);
    t.equal(code(bad), 3);
  });

  t.test('a container runs, logs in CRI format and reports its exit code', async (t) => {
    const p = await pod();
    const id = await container(p, 'echo', {
      command: ['sh', '-c', 'echo hello; echo oops >&2; hostname; id -u; cat /layer2.txt; ls /data; test -e /etc/removed.txt || echo whiteout-ok; echo "$IMAGE_VAR $MINE"; pwd; printf partial; exit 3'],
      envs: [{ key: 'MINE', value: 'from-request' }],
      working_dir: '/app',
      labels: { role: 'echo' },
    });
    t.equal((await status(id)).state, 0, 'created');
    await c.rt.StartContainer({ container_id: id });
    const s = await exited(id);
    t.equal(s.exit_code, 3);
    t.equal(s.reason, 'Error');
    t.ok(s.started_at > 0 && s.finished_at >= s.started_at);
    await waitFor('log lines', async () => logLines('echo').length >= 10);
    const lines = logLines('echo');
    t.ok(lines.every((l) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/.test(l.time)), 'RFC 3339 timestamps');
    const out = lines.filter((l) => l.stream === 'stdout').map((l) => l.content);
    t.same(out, ['hello', p.config.hostname, '0', 'hello from layer 2', 'c', 'whiteout-ok', 'from-image from-request', '/app', 'partial']);
    t.same(lines.filter((l) => l.stream === 'stderr').map((l) => `${l.tag} ${l.content}`), ['F oops']);
    const list = await c.rt.ListContainers({ filter: { label_selector: { role: 'echo' } } });
    t.same(list.containers.map((x: any) => x.id), [id]);
    const byState = await c.rt.ListContainers({ filter: { state: { state: 2 }, pod_sandbox_id: p.id } });
    t.same(byState.containers.map((x: any) => x.id), [id]);
    const again = await c.rt.StartContainer({ container_id: id }).catch((x: any) => x);
    t.equal(code(again), 9, 'starting an exited container: FAILED_PRECONDITION');
  });

  t.test('exec, stats, stop with grace period then kill', async (t) => {
    // A PID namespace of its own (CONTAINER), so sleep is pid 1 (see security.test.ts for POD).
    const p = await pod({ linux: { security_context: { namespace_options: { pid: 1 } } } });
    const id = await container(p, 'sleeper', { command: ['sleep', '1000'], run_as_username: undefined, linux: { security_context: { namespace_options: { pid: 1 } }, resources: { cpu_shares: 512, cpu_quota: 50000, cpu_period: 100000 } } });
    await c.rt.StartContainer({ container_id: id });
    t.equal((await status(id)).state, 1, 'running');
    const r = await c.rt.ExecSync({ container_id: id, cmd: ['sh', '-c', 'cat /etc/hostname; echo to-err >&2; exit 7'], timeout: 10 });
    t.equal(r.stdout.toString(), `${p.config.hostname}\n`);
    t.equal(r.stderr.toString(), 'to-err\n');
    t.equal(r.exit_code, 7);
    // Streaming exec over the URL Exec returns (WebSocket, Kubernetes channel protocol).
    const ex = await c.rt.Exec({ container_id: id, cmd: ['sh', '-c', 'read line; echo "got $line"; echo warn >&2; cat; exit 4'], stdin: true, stdout: true, stderr: true });
    t.match(ex.url, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[a-f0-9]{32}$/, 'a loopback URL');
    const res = await execStream(ex.url, { stdin: 'hello\nrest\n', closeStdin: true });
    t.equal(res.protocol, 'v5.channel.k8s.io');
    t.equal(res.stdout, 'got hello\nrest\n', 'stdin reached the command, stdout came back');
    t.equal(res.stderr, 'warn\n');
    t.same((res.status as any)?.details?.causes?.[0], { reason: 'ExitCode', message: '4' }, 'exit code on the status channel');
    // A client that disconnects mid-stream: the exec'd process is killed, not left running.
    const marker = `${31000 + (process.pid % 1000)}`;
    const gone = await c.rt.Exec({ container_id: id, cmd: ['sleep', marker], stdout: true });
    const execd = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).some((p) => {
      try { return readFileSync(`/proc/${p}/cmdline`, 'utf8') === `sleep\0${marker}\0`; } catch { return false; }
    });
    await execStream(gone.url, { disconnect: waitFor('the exec\'d process to run', async () => execd()) });
    await waitFor('the exec\'d process to be killed after the client went away', async () => !execd());
    t.pass('exec\'d process killed when its client disconnected');
    const again = await execStream(ex.url).catch((x: any) => x);
    t.equal(again.statusCode, 404, 'an exec URL is single-use');
    const ok = await execStream((await c.rt.Exec({ container_id: id, cmd: ['echo', 'v4'], stdout: true })).url, { protocol: 'v4.channel.k8s.io' });
    t.same([ok.protocol, ok.stdout, (ok.status as any)?.status], ['v4.channel.k8s.io', 'v4\n', 'Success']);
    // Attach follows the live output of a running container until it exits.
    const talker = await container(p, 'talker', { command: ['sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.05; done; echo out-line; echo err-line >&2; exit 0'] });
    await c.rt.StartContainer({ container_id: talker });
    const at = await c.rt.Attach({ container_id: talker, stdout: true, stderr: true });
    t.match(at.url, /\/attach\//);
    // The server follows the output before it answers the upgrade, so nothing is missed.
    const ar = await execStream(at.url, { onOpen: () => writeFileSync(join(root, 'containers', talker, 'rootfs', 'tmp', 'go'), '') });
    t.same([ar.stdout, ar.stderr, (ar.status as any)?.status], ['out-line\n', 'err-line\n', 'Success'], 'attached output until the exit');
    const tty = await c.rt.Exec({ container_id: id, cmd: ['sh'], tty: true, stdout: true, stderr: true }).catch((x: any) => x);
    t.equal(code(tty), 3, 'tty exec with stderr: INVALID_ARGUMENT (see streaming.test.ts for TTY exec)');
    const slow = await c.rt.ExecSync({ container_id: id, cmd: ['sleep', '30'], timeout: 1 }).catch((x: any) => x);
    t.equal(code(slow), 4, 'exec past its timeout: DEADLINE_EXCEEDED');
    const ps = await c.rt.ExecSync({ container_id: id, cmd: ['ps', '-o', 'pid,comm'] });
    t.match(ps.stdout.toString(), /1 sleep/, 'own pid namespace: sleep is pid 1');
    const net = await c.rt.ExecSync({ container_id: id, cmd: ['cat', '/proc/net/dev'] });
    t.same(net.stdout.toString().split('\n').slice(2).filter(Boolean).map((l: string) => l.trim().split(':')[0]), ['lo'], 'only loopback in the pod network namespace');
    const stats = (await c.rt.ContainerStats({ container_id: id })).stats;
    t.ok(Number(stats.memory.usage_bytes.value) > 0, 'memory usage read from the cgroup');
    t.ok(stats.cpu.usage_core_nano_seconds.value !== undefined);
    const all = await c.rt.ListContainerStats({ filter: { pod_sandbox_id: p.id } });
    t.equal(all.stats.length, 1);
    const ps1 = (await c.rt.PodSandboxStats({ pod_sandbox_id: p.id })).stats;
    t.equal(ps1.linux.containers.length, 1, 'pod stats include the running container');
    t.ok(Number(ps1.linux.memory.usage_bytes.value) > 0, 'pod memory from the pod cgroup');
    t.equal((await c.rt.ListPodSandboxStats({ filter: { id: p.id } })).stats.length, 1);
    t.equal((await c.rt.RuntimeConfig({})).linux.cgroup_driver, 1, 'cgroupfs driver');
    await c.rt.UpdateContainerResources({ container_id: id, linux: { memory_limit_in_bytes: 64 * 1024 * 1024, cpu_shares: 256 } });
    const upd = (await status(id)).resources.linux;
    t.equal(Number(upd.memory_limit_in_bytes), 64 * 1024 * 1024, 'status shows the new limit');
    if (cgroupVersion() === 1) {
      const dir = JSON.parse((await c.rt.ContainerStatus({ container_id: id, verbose: true })).info.info).cgroupsPath;
      t.equal(readFileSync(`/sys/fs/cgroup/cpu${dir}/cpu.shares`, 'utf8').trim(), '256', 'cpu shares applied, then updated');
      t.equal(readFileSync(`/sys/fs/cgroup/memory${dir}/memory.limit_in_bytes`, 'utf8').trim(), String(64 * 1024 * 1024), 'memory limit updated in the cgroup');
      t.equal(readFileSync(`/sys/fs/cgroup/cpu${dir}/cpu.cfs_quota_us`, 'utf8').trim(), '50000', 'cpu quota applied');
    }
    // sleep as pid 1 ignores SIGTERM, so the grace period runs out and SIGKILL follows.
    await c.rt.StopContainer({ container_id: id, timeout: 1 });
    const s = await status(id);
    t.equal(s.state, 2);
    t.equal(s.exit_code, 137, 'killed after the grace period');
    await c.rt.StopContainer({ container_id: id, timeout: 1 });
    t.pass('stopping again is fine');
    const e = await c.rt.ExecSync({ container_id: id, cmd: ['true'] }).catch((x: any) => x);
    t.equal(code(e), 9, 'exec in a stopped container: FAILED_PRECONDITION');
    // A process that handles SIGTERM exits within the grace period with its own code.
    const id2 = await container(p, 'trapper', { command: ['sh', '-c', 'trap "echo got-term; exit 42" TERM; echo ready; while true; do sleep 0.1; done'] });
    await c.rt.StartContainer({ container_id: id2 });
    await waitFor('trapper ready', async () => logLines('trapper').some((l) => l.content === 'ready'));
    await c.rt.StopContainer({ container_id: id2, timeout: 30 });
    t.equal((await status(id2)).exit_code, 42);
    await waitFor('got-term logged', async () => logLines('trapper').some((l) => l.content === 'got-term'));
  });

  t.test('memory limit: the OOM killer ends the container, status says OOMKilled', async (t) => {
    const p = await pod();
    const id = await container(p, 'hog', {
      command: ['awk', 'BEGIN { s = "xxxxxxxxxxxxxxxx"; while (1) { s = s s } }'],
      linux: { resources: { memory_limit_in_bytes: 32 * 1024 * 1024 } },
    });
    await c.rt.StartContainer({ container_id: id });
    const s = await exited(id, 60000);
    t.equal(s.reason, 'OOMKilled');
    t.equal(s.exit_code, 137);
    t.same(s.resources.linux.memory_limit_in_bytes, 32 * 1024 * 1024);
  });

  t.test('pids limit holds', async (t) => {
    const p = await pod();
    // The shell starts background sleeps until fork fails; with pids.max 8 it gets 7 (itself
    // being the 8th), then busybox sh exits with status 2 on "can't fork".
    const id = await container(p, 'forker', {
      command: ['sh', '-c', 'i=0; while [ $i -lt 30 ]; do sleep 600 & i=$((i+1)); echo started $i; done; echo all-started'],
      linux: { resources: { unified: { 'pids.max': '8' } } },
    });
    await c.rt.StartContainer({ container_id: id });
    const dir = JSON.parse((await c.rt.ContainerStatus({ container_id: id, verbose: true })).info.info).cgroupsPath;
    const st = await exited(id);
    t.equal(st.exit_code, 2, 'the shell failed to fork');
    await waitFor('fork failure logged', async () => logLines('forker').some((l) => /can't fork|resource temporarily unavailable/i.test(l.content)));
    const started = logLines('forker').filter((l) => /^started \d+$/.test(l.content)).length;
    t.equal(started, 7, 'exactly 7 more processes fit under pids.max 8');
    t.notOk(logLines('forker').some((l) => l.content === 'all-started'));
    const file = cgroupVersion() === 1 ? `/sys/fs/cgroup/pids${dir}/pids.max` : `/sys/fs/cgroup${dir}/pids.max`;
    t.equal(readFileSync(file, 'utf8').trim(), '8');
    const bad = await container(p, 'badpids', { command: ['true'], linux: { resources: { unified: { 'pids.max': 'lots' } } } }).catch((x: any) => x);
    t.equal(code(bad), 3, 'a malformed pids.max is INVALID_ARGUMENT');
  });

  t.test('mounts, user, read-only root, tmpfs', async (t) => {
    const p = await pod();
    const host = join(base, 'shared');
    mkdirSync(host, { recursive: true, mode: 0o777 });
    chmodSync(host, 0o777);
    writeFileSync(join(host, 'in.txt'), 'from the host\n');
    const id = await container(p, 'mounts', {
      command: ['sh', '-c', 'cat /mnt/ro/in.txt; touch /mnt/ro/x 2>/dev/null && echo ro-writable || echo ro-refused; echo w > /mnt/rw/out.txt; id -u; id -g; echo t > /scratch/f && echo tmpfs-ok; touch /rootfile 2>/dev/null && echo root-writable || echo root-readonly; cat /home/app/secret'],
      mounts: [{ container_path: '/mnt/ro', host_path: host, readonly: true }, { container_path: '/mnt/rw', host_path: host }],
      annotations: { 'shoal.io/tmpfs': JSON.stringify([{ path: '/scratch', options: ['size=1m'] }]) },
      linux: { security_context: { run_as_username: 'app', readonly_rootfs: true } },
    });
    await c.rt.StartContainer({ container_id: id });
    const s = await exited(id);
    t.equal(s.exit_code, 0, JSON.stringify(logLines('mounts')));
    await waitFor('mount logs', async () => logLines('mounts').length >= 7);
    t.same(logLines('mounts').filter((l) => l.stream === 'stdout').map((l) => l.content), ['from the host', 'ro-refused', '1000', '1000', 'tmpfs-ok', 'root-readonly', 'owned by app']);
    t.equal(readFileSync(join(host, 'out.txt'), 'utf8'), 'w\n');
    t.same(s.user.linux, { uid: 1000, gid: 1000, supplemental_groups: [] });
    const missing = await container(p, 'nomount', { command: ['true'], mounts: [{ container_path: '/x', host_path: join(base, 'nope') }] }).catch((x: any) => x);
    t.equal(code(missing), 3, 'missing host path: INVALID_ARGUMENT');
    const nouser = await container(p, 'nouser', { command: ['true'], linux: { security_context: { run_as_username: 'ghost' } } }).catch((x: any) => x);
    t.equal(code(nouser), 3, 'unknown user: INVALID_ARGUMENT');
    t.match(nouser.details, /ghost/);
  });

  t.test('bad requests get clear errors', async (t) => {
    const p = await pod();
    const e1 = await container(p, 'x', { image: { image: `${reg.host}/shoal/notpulled:1` }, command: ['true'] }).catch((x: any) => x);
    t.equal(code(e1), 5, 'image not pulled: NOT_FOUND');
    const e2 = await c.rt.CreateContainer({ pod_sandbox_id: 'f'.repeat(64), config: { metadata: { name: 'x' }, image: { image: IMAGE } } }).catch((x: any) => x);
    t.equal(code(e2), 5, 'unknown sandbox: NOT_FOUND');
    const e3 = await c.rt.ContainerStatus({ container_id: 'nope' }).catch((x: any) => x);
    t.equal(code(e3), 5);
    const e4 = await c.rt.RunPodSandbox({ config: { metadata: { name: 'bad' }, hostname: 'not a hostname!' } }).catch((x: any) => x);
    t.match(e4.details, /not a valid DNS name/);
    const e5 = await c.rt.RunPodSandbox({ config: { metadata: { name: 'x' } }, runtime_handler: 'kata' }).catch((x: any) => x);
    t.match(e5.details, /unknown runtime handler/);
    await container(p, 'dup', { command: ['true'] });
    const e6 = await container(p, 'dup', { command: ['true'] }).catch((x: any) => x);
    t.equal(code(e6), 9, 'same name and attempt twice: FAILED_PRECONDITION');
    const nx = await container(p, 'nx', { command: ['/no/such/binary'] });
    const started = await c.rt.StartContainer({ container_id: nx }).then(() => null, (x: any) => x);
    const sx = started ? (await status(nx)) : await exited(nx);
    t.equal(sx.state, 2, 'a command that does not exist ends the container');
    t.not(sx.exit_code, 0);
    t.match(`${started?.details ?? ''} ${sx.message}`, /no such file|not found|executable/i, 'and says why');
    // log_path must stay inside the sandbox's log_directory.
    for (const bad of ['../escape.log', 'a/../../escape.log', '/tmp/abs.log']) {
      const e = await container(p, `lp${bad.length}`, { command: ['true'], log_path: bad }).catch((x: any) => x);
      t.equal(code(e), 3, `log_path ${bad}: INVALID_ARGUMENT`);
      t.match(e.details, /log_path .* (leaves|must be relative)/, 'and says why');
    }
    t.notOk(existsSync(join(base, 'escape.log')), 'nothing written outside the log directory');
    const nolog = await c.rt.RunPodSandbox({ config: { metadata: { name: 'nolog', uid: 'nolog', namespace: 'test' } } });
    const e7 = await c.rt.CreateContainer({ pod_sandbox_id: nolog.pod_sandbox_id, config: { metadata: { name: 'x' }, image: { image: IMAGE }, log_path: 'x.log' } }).catch((x: any) => x);
    t.match(e7.details, /no log_directory/, 'log_path without a log_directory is refused');
    await c.rt.RemovePodSandbox({ pod_sandbox_id: nolog.pod_sandbox_id });
    await c.rt.RemoveContainer({ container_id: 'f'.repeat(64) });
    t.pass('removing an unknown container is idempotent');
    await c.rt.RemovePodSandbox({ pod_sandbox_id: 'f'.repeat(64) });
    t.pass('removing an unknown sandbox is idempotent');
  });

  t.test('log reopen after rotation', async (t) => {
    const p = await pod();
    const id = await container(p, 'ticker', { command: ['sh', '-c', 'i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.05; done'] });
    await c.rt.StartContainer({ container_id: id });
    await waitFor('ticks', async () => logLines('ticker').length >= 3);
    renameSync(join(logDir, 'ticker.log'), join(logDir, 'ticker.log.1'));
    await c.rt.ReopenContainerLog({ container_id: id });
    await waitFor('ticks in the new file', async () => logLines('ticker').length >= 3);
    t.match(logLines('ticker')[0]!.content, /^tick\d+$/);
    await c.rt.StopContainer({ container_id: id, timeout: 0 });
    const e = await c.rt.ReopenContainerLog({ container_id: id }).catch((x: any) => x);
    t.equal(code(e), 9, 'reopen on a stopped container: FAILED_PRECONDITION');
  });

  t.test('state survives a runtime restart', async (t) => {
    const p = await pod();
    const keeps = await container(p, 'keeps', { command: ['sh', '-c', 'echo before; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo after-restart; sleep 1000'] });
    const quits = await container(p, 'quits', { command: ['sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.05; done; echo last-words; exit 5'] });
    await c.rt.StartContainer({ container_id: keeps });
    await c.rt.StartContainer({ container_id: quits });
    await waitFor('before', async () => logLines('keeps').some((l) => l.content === 'before'));
    const later = await container(p, 'later', { command: ['cat', '/layer2.txt'] });
    const torn = await container(p, 'torn', { command: ['true'] });
    const p2 = await pod();
    const p2netns = JSON.parse((await c.rt.PodSandboxStatus({ pod_sandbox_id: p2.id, verbose: true })).info.info).netns;
    await rt!.kill('SIGKILL');
    // As a reboot would: the created container's root and the second pod's netns unmounted.
    execFileSync('umount', [join(root, 'containers', later, 'rootfs')]);
    execFileSync('umount', [p2netns]);
    // A crash in the middle of CreateContainer's first (unrenamed) record write: a torn file.
    const tornMeta = join(root, 'containers', torn, 'meta.json');
    writeFileSync(tornMeta, readFileSync(tornMeta, 'utf8').slice(0, 40));
    // While the runtime is down: one container prints, the other exits.
    // (through the host's view of each container's overlay root)
    writeFileSync(join(root, 'containers', keeps, 'rootfs', 'tmp', 'go'), '');
    writeFileSync(join(root, 'containers', quits, 'rootfs', 'tmp', 'go'), '');
    await waitFor('quits to exit', async () => existsSync(join(root, 'containers', quits, 'exitcode')));
    rt = await startRuntime(socket, root);
    c = rt.client;
    const sq = await exited(quits);
    t.equal(sq.exit_code, 5, 'an exit while the runtime was down is recorded');
    await waitFor('last words of a container that exited while the runtime was down', async () => logLines('quits').some((l) => l.content === 'last-words'));
    t.pass('output written just before an exit while the runtime was down is in the log');
    t.equal((await status(keeps)).state, 1, 'the other container is running and known');
    t.equal(code(await c.rt.ContainerStatus({ container_id: torn }).catch((x: any) => x)), 5, 'a container whose first record is torn was never created: NOT_FOUND');
    t.notOk(existsSync(join(root, 'containers', torn)), 'its bundle (and mounted root) is cleaned up');
    t.ok((await c.rt.ListPodSandbox({ filter: { id: p.id } })).items.length === 1, 'the sandbox is known');
    await waitFor('output written while the runtime was down', async () => logLines('keeps').some((l) => l.content === 'after-restart'));
    const r = await c.rt.ExecSync({ container_id: keeps, cmd: ['echo', 'still-here'] });
    t.equal(r.stdout.toString(), 'still-here\n');
    await c.rt.StopContainer({ container_id: keeps, timeout: 0 });
    t.equal((await status(keeps)).exit_code, 137);
    await c.rt.StartContainer({ container_id: later });
    t.equal((await exited(later)).exit_code, 0, 'a created container whose root was unmounted gets it back');
    await waitFor('later output', async () => logLines('later').some((l) => l.content === 'hello from layer 2'));
    t.equal((await c.rt.PodSandboxStatus({ pod_sandbox_id: p2.id })).status.state, 1, 'a pod whose namespaces are gone is not ready');
    await c.rt.RemovePodSandbox({ pod_sandbox_id: p2.id });
  });

  t.test('StartContainer has a deadline: a runc that hangs is killed and the container marked StartError', async (t) => {
    // A second runtime whose "runc" hangs in `run` (stands for a runc stuck while starting a
    // container) and passes every other command to the real runc.
    const root2 = join(base, 'root-hang');
    const marker = `600.${process.pid}`;
    const fake = join(base, 'hanging-runc');
    writeFileSync(fake, `#!/bin/sh\nfor a; do [ "$a" = run ] && exec sleep ${marker}; done\nexec runc "$@"\n`);
    chmodSync(fake, 0o755);
    const rt2 = await startRuntime(join(base, 'hang.sock'), root2, ['--runc', fake, '--start-timeout', '1', '--insecure-registry', reg.host]);
    t.teardown(async () => { await rt2.kill('SIGKILL'); cleanupRoot(root2); });
    await rt2.client.img.PullImage({ image: { image: IMAGE } });
    const config = { metadata: { name: 'hang', uid: 'hang', namespace: 'test' } };
    const { pod_sandbox_id } = await rt2.client.rt.RunPodSandbox({ config });
    const { container_id } = await rt2.client.rt.CreateContainer({ pod_sandbox_id, sandbox_config: config, config: { metadata: { name: 'main' }, image: { image: IMAGE }, command: ['true'] } });
    const e = await rt2.client.rt.StartContainer({ container_id }).catch((x: any) => x);
    t.equal(code(e), 4, 'DEADLINE_EXCEEDED');
    t.match(e.details, new RegExp(`StartContainer ${container_id}: runc did not start the container within 1 s`), 'the error names the container');
    const st = (await rt2.client.rt.ContainerStatus({ container_id })).status;
    t.same([st.state, st.reason], [2, 'StartError'], 'the container is marked exited (StartError)');
    const hung = () => readdirSync('/proc').some((p) => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8') === `sleep\0${marker}\0`; } catch { return false; } });
    await waitFor('the hanging runc to be killed', async () => !hung());
    t.pass('the hanging runc is gone');
  });

  t.test('CreateContainer racing RemovePodSandbox never leaves a container in a removed pod', async (t) => {
    for (let i = 0; i < 4; i++) {
      const p = await pod();
      // Both requests are in flight together: the removal arrives while the create is under way.
      const [cr, rm] = await Promise.allSettled([container(p, 'racer', { command: ['sleep', '1000'] }), c.rt.RemovePodSandbox({ pod_sandbox_id: p.id })]);
      t.equal(rm.status, 'fulfilled', 'the removal succeeds');
      if (cr.status === 'rejected') t.equal(code(cr.reason), 9, `round ${i}: the create is refused (FAILED_PRECONDITION): ${cr.reason.details}`);
      else t.equal(code(await c.rt.ContainerStatus({ container_id: cr.value }).catch((x: any) => x)), 5, `round ${i}: a create that won the race was removed with the pod`);
      t.same((await c.rt.ListContainers({ filter: { pod_sandbox_id: p.id } })).containers, [], 'no container of the removed pod is listed');
    }
    const dirs = readdirSync(join(root, 'containers'));
    const listed = new Set((await c.rt.ListContainers({})).containers.map((x: any) => x.id));
    t.same(dirs.filter((d) => !listed.has(d)), [], 'no bundle left behind');
  });

  t.test('image removal is refused while used; sandbox stop and remove clean up', async (t) => {
    const p = await pod();
    const id = await container(p, 'user', { command: ['sleep', '1000'] });
    await c.rt.StartContainer({ container_id: id });
    const e = await c.img.RemoveImage({ image: { image: IMAGE } }).catch((x: any) => x);
    t.equal(code(e), 9, 'image in use: FAILED_PRECONDITION');
    const sbs = (await c.rt.ListPodSandbox({})).items;
    t.ok(sbs.length >= 2);
    t.same((await c.rt.ListPodSandbox({ filter: { label_selector: { n: p.config.labels.n } } })).items.map((x: any) => x.id), [p.id]);
    await c.rt.StopPodSandbox({ pod_sandbox_id: p.id });
    t.equal((await status(id)).state, 2, 'stopping the pod stops its containers');
    t.equal((await c.rt.PodSandboxStatus({ pod_sandbox_id: p.id })).status.state, 1, 'SANDBOX_NOTREADY');
    const netns = JSON.parse((await c.rt.PodSandboxStatus({ pod_sandbox_id: p.id, verbose: true })).info.info).netns;
    t.ok(existsSync(netns));
    for (const s of (await c.rt.ListPodSandbox({})).items) await c.rt.RemovePodSandbox({ pod_sandbox_id: s.id });
    t.notOk(existsSync(netns), 'network namespace removed');
    t.same((await c.rt.ListContainers({})).containers, []);
    t.same((await c.rt.ListPodSandbox({})).items, []);
    await c.img.RemoveImage({ image: { image: IMAGE } });
    t.same((await c.img.ListImages({})).images, []);
    await c.img.RemoveImage({ image: { image: IMAGE } });
    t.pass('removing again is fine');
    const leftover = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(root + '/') && m !== join(root, 'ns'));
    t.same(leftover, [], 'no overlay or namespace mount left');
  });
});
