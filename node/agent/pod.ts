// A task as CRI configs: the pod sandbox and its containers. Labels mark everything the agent
// made (so a restarted agent finds its pods again); the downward API puts the task's identity in
// each container's environment; limits become the main container's cgroup limits.
import { join } from 'node:path';
import { LABELS, taskDisplayName, type ContainerSpec, type TaskObject } from '../../manager/services/model.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

export function podLabels(t: TaskObject, nodeId: string): Record<string, string> {
  return {
    [LABELS.managed]: 'true',
    [LABELS.taskId]: t.id,
    [LABELS.serviceId]: t.serviceId ?? '',
    [LABELS.serviceName]: t.spec.serviceName,
    [LABELS.slot]: String(t.spec.slot),
    [LABELS.nodeId]: nodeId,
  };
}

/** The pod annotation the network plugin finds a pod's task by (runtimes pass pod annotations to
 * CNI plugins that declare io.kubernetes.cri.pod-annotations; K8S_POD_UID = metadata.uid is the
 * other way it finds it). */
export const TASK_ANNOTATION = 'shoal.io/task-id';

/** `dns`: the resolver of the network plugin (pods on a network resolve services by name). */
export function podConfig(t: TaskObject, nodeId: string, logRoot: string, dns?: string[]): any {
  return {
    // Kubernetes' pod identity fields: the name people see, the task id as the unique id.
    metadata: { name: taskDisplayName(t).replace(/\./g, '-'), uid: t.id, namespace: 'shoal', attempt: 0 },
    hostname: t.id.slice(0, 12),
    log_directory: join(logRoot, t.id),
    labels: podLabels(t, nodeId),
    annotations: { [TASK_ANNOTATION]: t.id },
    ...(dns?.length ? { dns_config: { servers: dns, searches: [], options: [] } } : {}),
    linux: { cgroup_parent: '', security_context: { namespace_options: { network: 0, pid: 1, ipc: 0 } } },
  };
}

/** The downward API: what a container may know about its task, as environment variables. */
export function downwardEnv(t: TaskObject, node: { id: string; hostname: string }): [string, string][] {
  return [
    ['SHOAL_TASK_ID', t.id],
    ['SHOAL_TASK_NAME', taskDisplayName(t)],
    ['SHOAL_TASK_SLOT', String(t.spec.slot)],
    ['SHOAL_SERVICE_ID', t.serviceId ?? ''],
    ['SHOAL_SERVICE_NAME', t.spec.serviceName],
    ['SHOAL_NODE_ID', node.id],
    ['SHOAL_NODE_HOSTNAME', node.hostname],
    ['SHOAL_TASK_LABELS', JSON.stringify(t.labels ?? {})],
  ];
}

function user(u: string | undefined): any {
  if (!u) return {};
  const [name, gid] = u.split(':');
  const out: any = /^\d+$/.test(name!) ? { run_as_user: { value: Number(name) } } : { run_as_username: name };
  if (gid) out.run_as_group = { value: Number(gid) };
  return out;
}

export function containerConfig(t: TaskObject, c: ContainerSpec, role: 'main' | 'sidecar' | 'init', nodeId: string, node: { id: string; hostname: string }): any {
  const tpl = t.spec.template;
  const env = new Map<string, string>();
  for (const [k, v] of downwardEnv(t, node)) env.set(k, v);
  for (const e of c.env ?? []) {
    const i = e.indexOf('=');
    env.set(e.slice(0, i), e.slice(i + 1));
  }
  const resources: any = {};
  if (role === 'main') {
    const lim = tpl.resources.limits;
    const res = tpl.resources.reservations;
    if (lim.cpuMillis) {
      resources.cpu_period = 100_000;
      resources.cpu_quota = Math.max(1000, Math.round(lim.cpuMillis * 100));
    }
    // Reservations weigh the container's share of CPU under contention (Kubernetes' requests).
    if (res.cpuMillis) resources.cpu_shares = Math.max(2, Math.round((res.cpuMillis * 1024) / 1000));
    if (lim.memoryBytes) resources.memory_limit_in_bytes = lim.memoryBytes;
  }
  return {
    metadata: { name: c.name, attempt: 0 },
    image: { image: c.image },
    command: c.command ?? [],
    args: c.args ?? [],
    working_dir: c.workdir ?? '',
    envs: [...env].map(([key, value]) => ({ key, value })),
    labels: { ...podLabels(t, nodeId), [LABELS.container]: c.name, 'io.shoal.container.role': role },
    annotations: { 'io.shoal.stop-signal': tpl.stopSignal },
    log_path: `${c.name}.log`,
    linux: { resources, security_context: user(c.user) },
  };
}
