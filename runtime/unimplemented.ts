// The CRI options shoal-runtime does not implement: a request that sets one is refused with
// UNIMPLEMENTED naming the field, never run without it. (Fields it ignores on purpose, such as
// oom_score_adj, are listed with their reasons in runtime/README.md.)
import { UnimplementedError } from './errors.js';
import type { CriObject } from './state.js';

const NODE = 2;

function securityContext(where: string, sc: CriObject): void {
  const se = sc?.selinux_options;
  if (se && (se.user || se.role || se.type || se.level)) throw new UnimplementedError(`${where}: linux.security_context.selinux_options (SELinux labels) are not implemented by shoal-runtime; leave them unset`);
  // AppArmor: only "unconfined" (profile_type Unconfined) can be honoured, since no profile is ever loaded.
  const aa = sc?.apparmor;
  if (aa && (aa.profile_type ?? 0) !== 1 && (aa.profile_type !== undefined || aa.localhost_ref)) {
    throw new UnimplementedError(`${where}: linux.security_context.apparmor (AppArmor profile ${aa.profile_type === 2 || aa.profile_type === 'Localhost' ? `localhost/${aa.localhost_ref ?? ''}` : 'runtime/default'}) is not implemented by shoal-runtime; use Unconfined or leave it unset`);
  }
  if (sc?.apparmor_profile && sc.apparmor_profile !== 'unconfined') throw new UnimplementedError(`${where}: linux.security_context.apparmor_profile ${JSON.stringify(sc.apparmor_profile)} is not implemented by shoal-runtime; use "unconfined" or leave it unset`);
}

export function checkSandboxConfig(config: CriObject): void {
  const sc = config?.linux?.security_context;
  const userns = sc?.namespace_options?.userns_options;
  if (userns && (userns.mode ?? NODE) !== NODE) throw new UnimplementedError('RunPodSandbox: linux.security_context.namespace_options.userns_options (user namespaces, mode POD) are not implemented by shoal-runtime; use mode NODE');
  securityContext('RunPodSandbox', sc);
}

export function checkContainerConfig(config: CriObject): void {
  (config?.mounts ?? []).forEach((m: CriObject, i: number) => {
    const at = `CreateContainer: mounts[${i}] (${m?.container_path ?? ''})`;
    if (m?.image?.image) throw new UnimplementedError(`${at}: image volumes (mounts[].image) are not implemented by shoal-runtime; mount a host path`);
    if (m?.uidMappings?.length || m?.gidMappings?.length) throw new UnimplementedError(`${at}: idmapped mounts (mounts[].uidMappings/gidMappings) are not implemented by shoal-runtime`);
    if (m?.recursive_read_only) throw new UnimplementedError(`${at}: recursive read-only mounts (mounts[].recursive_read_only) are not implemented by shoal-runtime (Status reports recursive_read_only_mounts: false); use readonly`);
  });
  if (config?.CDI_devices?.length) throw new UnimplementedError('CreateContainer: CDI_devices are not implemented by shoal-runtime; list the device nodes in devices');
  const unified = Object.keys(config?.linux?.resources?.unified ?? {}).filter((k) => k !== 'pids.max');
  if (unified.length) throw new UnimplementedError(`CreateContainer: linux.resources.unified ${unified.join(', ')} is not implemented by shoal-runtime (only pids.max is)`);
  securityContext('CreateContainer', config?.linux?.security_context);
}
