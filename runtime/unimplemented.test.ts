// The CRI options shoal-runtime does not implement are refused with UNIMPLEMENTED naming the
// field (unimplemented.ts); the ones it implements or ignores on purpose pass.
import t from 'tap';
import { UnimplementedError } from './errors.js';
import { checkContainerConfig, checkSandboxConfig } from './unimplemented.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const refused = (t: any, fn: () => void, re: RegExp, what: string) => {
  const e = (() => { try { fn(); return undefined; } catch (x) { return x; } })();
  t.ok(e instanceof UnimplementedError, `${what}: UNIMPLEMENTED`);
  t.match((e as Error)?.message, re, `${what}: the message names it`);
};

t.test('container options that are not implemented are named', async (t) => {
  const mount = { container_path: '/data', host_path: '/tmp' };
  refused(t, () => checkContainerConfig({ mounts: [mount, { ...mount, image: { image: 'busybox' } }] }), /mounts\[1\] \(\/data\): image volumes \(mounts\[\]\.image\)/, 'image volume');
  refused(t, () => checkContainerConfig({ mounts: [{ ...mount, uidMappings: [{ host_id: 1000, container_id: 0, length: 1 }] }] }), /idmapped mounts/, 'idmapped mount');
  refused(t, () => checkContainerConfig({ mounts: [{ ...mount, recursive_read_only: true }] }), /recursive_read_only/, 'recursive read-only mount');
  refused(t, () => checkContainerConfig({ CDI_devices: [{ name: 'vendor.com/gpu=0' }] }), /CDI_devices/, 'CDI device');
  refused(t, () => checkContainerConfig({ linux: { resources: { unified: { 'pids.max': '10', 'memory.high': '1G' } } } }), /unified memory\.high/, 'unified key other than pids.max');
  refused(t, () => checkContainerConfig({ linux: { security_context: { selinux_options: { type: 'spc_t' } } } }), /selinux_options/, 'SELinux label');
  refused(t, () => checkContainerConfig({ linux: { security_context: { apparmor: { profile_type: 0 } } } }), /AppArmor profile runtime\/default/, 'AppArmor RuntimeDefault');
  refused(t, () => checkContainerConfig({ linux: { security_context: { apparmor: { profile_type: 2, localhost_ref: 'mine' } } } }), /AppArmor profile localhost\/mine/, 'AppArmor Localhost');
  refused(t, () => checkContainerConfig({ linux: { security_context: { apparmor_profile: 'localhost/mine' } } }), /apparmor_profile "localhost\/mine"/, 'deprecated AppArmor field');
  // What is implemented or accepted passes.
  t.doesNotThrow(() => checkContainerConfig({}));
  t.doesNotThrow(() => checkContainerConfig({ stdin: true, tty: true, stdin_once: true, mounts: [{ ...mount, readonly: true, propagation: 1, selinux_relabel: false }], linux: { resources: { unified: { 'pids.max': '5' }, oom_score_adj: 1000 }, security_context: { apparmor: { profile_type: 1 }, apparmor_profile: 'unconfined', selinux_options: { user: '', role: '', type: '', level: '' } } } }), 'stdin/tty, pids.max, Unconfined, empty SELinux options');
});

t.test('sandbox options that are not implemented are named', async (t) => {
  refused(t, () => checkSandboxConfig({ linux: { security_context: { namespace_options: { userns_options: { mode: 0 } } } } }), /userns_options \(user namespaces, mode POD\)/, 'user namespace');
  refused(t, () => checkSandboxConfig({ linux: { security_context: { selinux_options: { level: 's0:c1,c2' } } } }), /RunPodSandbox: .*selinux_options/, 'SELinux label on the pod');
  t.doesNotThrow(() => checkSandboxConfig({ linux: { security_context: { namespace_options: { userns_options: { mode: 2 } } } } }), 'userns mode NODE is the host\'s: fine');
  t.doesNotThrow(() => checkSandboxConfig({}));
});
