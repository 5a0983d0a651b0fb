// Security context end to end (real runc containers): the pod's shared PID namespace,
// privileged containers and "ALL" capabilities from the runtime's own bounding set, seccomp
// (RuntimeDefault, Localhost, Unconfined), CRI devices, mount propagation.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupRoot } from './testing/cleanup.js';
import { startRuntime, type RuntimeProc } from './testing/runtime-proc.js';
import { busyboxImage, ociArchive } from './testing/test-image.js';
import { boundingCaps, capabilities, mountOf } from './security.js';
import { defaultSeccompProfile } from './seccomp-default.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const base = mkdtempSync(join(tmpdir(), `shoal-sec-${process.pid}-`));
const root = join(base, 'root');
const shared = join(base, 'shared');
let rt: RuntimeProc | undefined;
t.teardown(async () => {
  if (rt) await rt.kill('SIGKILL');
  cleanupRoot(root);
  spawnSync('umount', ['-R', '-l', shared]);
  rmSync(base, { recursive: true, force: true });
});

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 20000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('capabilities and seccomp profile (pure)', async (t) => {
  const held = boundingCaps('CapBnd:\t000001fffeffffff\n');
  t.notOk(held.includes('CAP_SYS_RESOURCE'), 'bit 24 clear: no CAP_SYS_RESOURCE');
  t.ok(held.includes('CAP_SYS_ADMIN') && held.includes('CAP_CHECKPOINT_RESTORE'));
  t.same(capabilities([], [], true, held), held, 'privileged: the bounding set');
  t.same(capabilities(['ALL'], [], false, held), held, 'ALL: the bounding set');
  t.notOk(capabilities([], ['ALL'], false, held).length, 'drop ALL: none');
  t.same(capabilities(['NET_ADMIN'], ['ALL'], false, held), ['CAP_NET_ADMIN']);
  t.throws(() => capabilities(['SYS_RESOURCE'], [], false, held), /CAP_SYS_RESOURCE cannot be added: shoal-runtime itself does not hold it/);
  t.throws(() => capabilities(['FLY'], [], false, held), /unknown capability "CAP_FLY"/);
  const p = defaultSeccompProfile(['CAP_CHOWN']);
  const allowed = (n: string) => p.syscalls.some((r) => r.action === 'SCMP_ACT_ALLOW' && r.names.includes(n) && !r.args);
  t.ok(allowed('read') && allowed('openat'));
  t.notOk(allowed('mount') || allowed('keyctl') || allowed('swapoff'), 'mount, keyctl, swapoff denied');
  t.ok(p.syscalls.some((r) => r.names.includes('clone') && r.args?.[0]?.op === 'SCMP_CMP_MASKED_EQ'), 'clone filtered by its namespace flags');
  t.ok(defaultSeccompProfile(['CAP_SYS_ADMIN']).syscalls.some((r) => r.names.includes('mount') && r.action === 'SCMP_ACT_ALLOW'), 'CAP_SYS_ADMIN unlocks mount');
  t.match(mountOf('/proc/self', '1 0 0:1 / / rw shared:1 - ext4 x rw\n2 1 0:2 / /proc rw nosuid shared:2 - proc proc rw\n'), { mountPoint: '/proc', optional: 'shared:2' });
});

t.test('security context end to end', async (t) => {
  const archive = join(base, 'busybox.tar');
  writeFileSync(archive, ociArchive(busyboxImage(), 'sec.test/busybox:1'));
  rt = await startRuntime(join(base, 'cri.sock'), root);
  const c = rt.client;
  await c.img.PullImage({ image: { image: `oci-archive:${archive}` } });
  let n = 0;
  const pod = async (sc: any = {}) => {
    const config = { metadata: { name: `sec${++n}`, uid: `sec-${n}`, namespace: 'sec' }, linux: { security_context: sc } };
    const { pod_sandbox_id } = await c.rt.RunPodSandbox({ config });
    return { id: pod_sandbox_id as string, config };
  };
  const create = async (p: { id: string; config: any }, name: string, cfg: any) => (await c.rt.CreateContainer({ pod_sandbox_id: p.id, sandbox_config: p.config, config: { metadata: { name }, image: { image: 'sec.test/busybox:1' }, ...cfg } })).container_id as string;
  const run = async (p: { id: string; config: any }, name: string, cfg: any) => { const id = await create(p, name, { command: ['sleep', '1000'], ...cfg }); await c.rt.StartContainer({ container_id: id }); return id; };
  const sh = async (id: string, script: string) => {
    const r = await c.rt.ExecSync({ container_id: id, cmd: ['sh', '-c', script], timeout: 20 });
    return (r.stdout.toString() + r.stderr.toString()).trim();
  };
  const code = (e: any) => e?.code;

  t.test('shared PID namespace (POD), CONTAINER, NODE', async (t) => {
    const p = await pod();
    const a = await run(p, 'a', { command: ['sleep', '1001'] });
    const b = await run(p, 'b', { command: ['sleep', '1002'] });
    const ps = await sh(b, 'ps -o pid,args');
    t.match(ps, /^\s*1 \{?shoal-pause/m, 'the infra process is pid 1 of the pod');
    t.match(ps, /sleep 1001/, 'b sees a\'s process');
    t.match(ps, /sleep 1002/);
    const infra = JSON.parse((await c.rt.PodSandboxStatus({ pod_sandbox_id: p.id, verbose: true })).info.info).pid;
    t.ok(infra > 0 && readFileSync(`/proc/${infra}/comm`, 'utf8').trim() === 'shoal-pause', 'the infra process runs on the host');
    t.equal(readFileSync(`/proc/${infra}/cwd/meta.json`, 'utf8').length > 0, true);
    const own = await run(p, 'own', { command: ['sleep', '1003'], linux: { security_context: { namespace_options: { pid: 1 } } } });
    t.match(await sh(own, 'ps -o pid,args'), /^\s*1 sleep 1003/m, 'CONTAINER: its own namespace');
    const host = await run(p, 'host', { command: ['sleep', '1004'], linux: { security_context: { namespace_options: { pid: 2 } } } });
    t.match(await sh(host, `cat /proc/${process.pid}/comm`), /node/, 'NODE: the host\'s processes are visible');
    await c.rt.StopPodSandbox({ pod_sandbox_id: p.id });
    const alive = () => { try { return /\(shoal-pause\) [^Z]/.test(readFileSync(`/proc/${infra}/stat`, 'utf8')); } catch { return false; } };
    t.notOk(alive(), 'stopping the pod ends its infra process');
    for (const id of [a, b]) t.equal((await c.rt.ContainerStatus({ container_id: id })).status.state, 2);
    await c.rt.RemovePodSandbox({ pod_sandbox_id: p.id });
  });

  t.test('privileged and ALL get the runtime\'s bounding set; privileged gets host devices and writable sysfs', async (t) => {
    const hostBnd = /^CapBnd:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1];
    const p = await pod({ privileged: true });
    const priv = await run(p, 'priv', { linux: { security_context: { privileged: true, seccomp: { profile_type: 0 } } } });
    const st = await sh(priv, 'grep -E "^(CapEff|Seccomp):" /proc/self/status');
    t.match(st, new RegExp(`CapEff:\\s*${hostBnd}`), `privileged: CapEff is the runtime's bounding set (${hostBnd}), which lacks CAP_SYS_RESOURCE here`);
    t.match(st, /Seccomp:\s*0/, 'privileged ignores seccomp');
    t.match(await sh(priv, 'ls /dev'), /loop-control/, 'the host\'s devices');
    t.match(await sh(priv, 'grep " /sys " /proc/mounts'), / rw[ ,]/, 'sysfs writable');
    const all = await run(p, 'all', { linux: { security_context: { capabilities: { add_capabilities: ['ALL'] } } } });
    t.match(await sh(all, 'grep CapEff /proc/self/status'), new RegExp(hostBnd!), 'ALL: the bounding set');
    const plain = await pod();
    const e = await create(plain, 'p2', { command: ['true'], linux: { security_context: { privileged: true } } }).catch((x: any) => x);
    t.equal(code(e), 3, 'privileged container in an unprivileged pod: INVALID_ARGUMENT');
    const e2 = await create(plain, 'p3', { command: ['true'], linux: { security_context: { capabilities: { add_capabilities: ['SYS_RESOURCE'] } } } }).catch((x: any) => x);
    if (!readFileSync('/proc/self/status', 'utf8').match(/CapBnd/) || boundingCaps().includes('CAP_SYS_RESOURCE')) t.pass('this machine holds CAP_SYS_RESOURCE');
    else t.match(e2.details, /CAP_SYS_RESOURCE cannot be added/, 'a capability the runtime lacks: a clear error');
    // A CRI device: the host's /dev/loop-control as /dev/myloopctl, read-only (opening it for
    // writing is refused by the device cgroup).
    const dev = await run(plain, 'dev', { devices: [{ host_path: '/dev/loop-control', container_path: '/dev/myloopctl', permissions: 'r' }] });
    t.match(await sh(dev, 'ls -l /dev/myloopctl; (exec 3</dev/myloopctl) && echo read-open-ok; (exec 3>/dev/myloopctl) || echo write-refused'), /^c.*10,\s+237 .*\/dev\/myloopctl\nread-open-ok\nwrite-refused\n.*Operation not permitted/s, 'device node made, r allowed, w refused by the device cgroup');
    const bad = await create(plain, 'bad', { devices: [{ host_path: '/etc/hostname', container_path: '/dev/x' }] }).catch((x: any) => x);
    t.match(bad.details, /is not a device node/);
    await c.rt.RemovePodSandbox({ pod_sandbox_id: p.id });
    await c.rt.RemovePodSandbox({ pod_sandbox_id: plain.id });
  });

  t.test('seccomp: RuntimeDefault, Localhost, Unconfined', async (t) => {
    const p = await pod();
    const admin = { capabilities: { add_capabilities: ['SYS_ADMIN'] } };
    const def = await run(p, 'def', { linux: { security_context: { ...admin, seccomp: { profile_type: 0 } } } });
    t.match(await sh(def, 'grep Seccomp: /proc/self/status'), /Seccomp:\s*2/, 'RuntimeDefault: filtered (Seccomp: 2)');
    t.match(await sh(def, 'swapoff /nonexistent'), /Operation not permitted/, 'swapoff is denied by the profile even with CAP_SYS_ADMIN');
    t.match(await sh(def, 'sh -c "echo forked"'), /forked/, 'fork and exec work');
    const old = await run(p, 'old', { linux: { security_context: { seccomp_profile_path: 'runtime/default' } } });
    t.match(await sh(old, 'grep Seccomp: /proc/self/status'), /Seccomp:\s*2/, 'the deprecated runtime/default too');
    const unconf = await run(p, 'unconf', { linux: { security_context: { ...admin, seccomp: { profile_type: 1 } } } });
    t.match(await sh(unconf, 'grep Seccomp: /proc/self/status'), /Seccomp:\s*0/, 'Unconfined');
    t.match(await sh(unconf, 'swapoff /nonexistent'), /No such file/, 'unconfined: swapoff reaches the kernel');
    const none = await run(p, 'none', {});
    t.match(await sh(none, 'grep Seccomp: /proc/self/status'), /Seccomp:\s*0/, 'no profile asked: unconfined, as containerd 1.6');
    const prof = join(base, 'no-mkdir.json');
    writeFileSync(prof, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] }));
    const local = await run(p, 'local', { linux: { security_context: { seccomp: { profile_type: 2, localhost_ref: prof } } } });
    t.match(await sh(local, 'mkdir /tmp/x; grep Seccomp: /proc/self/status'), /Seccomp:\s*2[\s\S]*mkdir: can't create directory '\/tmp\/x': Permission denied/, 'Localhost profile from its path: mkdir answers EACCES');
    const missing = await create(p, 'missing', { linux: { security_context: { seccomp: { profile_type: 2, localhost_ref: join(base, 'nope.json') } } } }).catch((x: any) => x);
    t.equal(code(missing), 3);
    t.match(missing.details, /cannot read seccomp profile .*nope\.json/);
    writeFileSync(join(base, 'bad.json'), '{"syscalls": []}');
    const badp = await create(p, 'badp', { linux: { security_context: { seccomp: { profile_type: 2, localhost_ref: join(base, 'bad.json') } } } }).catch((x: any) => x);
    t.match(badp.details, /has no defaultAction/);
    await c.rt.RemovePodSandbox({ pod_sandbox_id: p.id });
  });

  t.test('mount propagation: rprivate, rslave, rshared', async (t) => {
    mkdirSync(shared);
    execFileSync('mount', ['--bind', shared, shared]);
    execFileSync('mount', ['--make-shared', shared]);
    const p = await pod();
    const mnt = (propagation: number) => [{ container_path: '/mnt/p', host_path: shared, propagation }];
    const adminU = { capabilities: { add_capabilities: ['SYS_ADMIN'] } };
    const priv = await run(p, 'private', { mounts: mnt(0) });
    const slave = await run(p, 'slave', { mounts: mnt(1) });
    const bidi = await run(p, 'bidi', { mounts: mnt(2), linux: { security_context: adminU } });
    // A mount made on the host under the source after the containers started.
    mkdirSync(join(shared, 'fromhost'));
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', join(shared, 'fromhost')]);
    writeFileSync(join(shared, 'fromhost', 'f'), 'host-mount\n');
    t.match(await sh(slave, 'cat /mnt/p/fromhost/f'), /host-mount/, 'rslave: the host\'s new mount appears in the container');
    t.match(await sh(bidi, 'cat /mnt/p/fromhost/f'), /host-mount/, 'rshared: too');
    t.match(await sh(priv, 'cat /mnt/p/fromhost/f 2>&1; ls /mnt/p/fromhost | wc -l'), /No such file[\s\S]*\b0$/, 'rprivate: not');
    // And for rshared the reverse: a mount made in the container appears on the host.
    await sh(bidi, 'mkdir -p /mnt/p/fromctr && mount -t tmpfs tmpfs /mnt/p/fromctr && echo ctr-mount > /mnt/p/fromctr/g');
    await waitFor('the container\'s mount on the host', async () => existsSync(join(shared, 'fromctr', 'g')));
    t.equal(readFileSync(join(shared, 'fromctr', 'g'), 'utf8'), 'ctr-mount\n', 'rshared: the container\'s mount appears on the host');
    t.match(await sh(slave, 'cat /mnt/p/fromctr/g'), /ctr-mount/, 'and reaches the rslave container through the host');
    const spec = JSON.parse(readFileSync(join(root, 'containers', bidi, 'config.json'), 'utf8'));
    t.equal(spec.linux.rootfsPropagation, 'rshared');
    // A source that does not propagate is refused for rshared/rslave, naming the mount.
    const plainDir = join(base, 'plain');
    mkdirSync(plainDir);
    execFileSync('mount', ['--bind', plainDir, plainDir]);
    execFileSync('mount', ['--make-private', plainDir]);
    try {
      const e = await create(p, 'refused', { command: ['true'], mounts: [{ container_path: '/x', host_path: plainDir, propagation: 2 }] }).catch((x: any) => x);
      t.equal(code(e), 3);
      t.match(e.details, /not a shared mount/);
    } finally { spawnSync('umount', [plainDir]); }
    await c.rt.RemovePodSandbox({ pod_sandbox_id: p.id });
    spawnSync('umount', ['-l', join(shared, 'fromctr')]);
    spawnSync('umount', [join(shared, 'fromhost')]);
    t.same(readdirSync(join(root, 'containers')), [], 'containers removed');
  });
});
