// A task as CRI configs: labels that let a restarted agent find its pods, the downward API, the
// user, limits on the main container only, the stop signal; and the image pull policy.
import t from 'tap';
import { LABELS, type TaskObject } from '../../manager/services/model.js';
import { alwaysPull } from './images.js';
import { containerConfig, podConfig } from './pod.js';

const task = {
  kind: 'task', id: 'abcdefghijklmnopqrstuvwxy', name: 'web.2.abcdefghijkl', labels: { tier: 'front' }, version: 9, createdVersion: 8, serviceId: 'svc1', nodeId: 'node1',
  spec: {
    serviceName: 'web', slot: 2, serviceVersion: 7, desiredState: 'running', restarts: [],
    template: {
      main: { name: 'main', image: 'reg:5000/app:1', command: ['/app'], args: ['--port', '80'], env: ['A=1', 'SHOAL_TASK_SLOT=overridden'], workdir: '/srv', user: 'app:1000' },
      sidecars: [{ name: 'proxy', image: 'reg:5000/proxy:1' }], init: [],
      resources: { reservations: { cpuMillis: 250, memoryBytes: 1 << 20 }, limits: { cpuMillis: 1500, memoryBytes: 64 << 20 } },
      placement: { constraints: [], preferences: [] },
      restart: { condition: 'any', delayMs: 5000, maxAttempts: 0, windowMs: 0 }, stopGracePeriodMs: 7000, stopSignal: 'SIGQUIT',
    },
  },
  status: { state: 'assigned', message: '', err: '', timestamps: {} },
} as unknown as TaskObject;

t.test('pod sandbox config', async (t) => {
  const p = podConfig(task, 'node1', '/var/lib/shoal/logs');
  t.equal(p.metadata.uid, task.id, 'the task id is the pod uid');
  t.equal(p.metadata.name, 'web-2');
  t.equal(p.log_directory, `/var/lib/shoal/logs/${task.id}`);
  t.same(p.labels, { [LABELS.managed]: 'true', [LABELS.taskId]: task.id, [LABELS.serviceId]: 'svc1', [LABELS.serviceName]: 'web', [LABELS.slot]: '2', [LABELS.nodeId]: 'node1' }, 'labels an agent finds its pods by');
});

t.test('main container config', async (t) => {
  const c = containerConfig(task, task.spec.template.main, 'main', 'node1', { id: 'node1', hostname: 'worker-1' });
  const env = Object.fromEntries(c.envs.map((e: { key: string; value: string }) => [e.key, e.value]));
  t.equal(env.SHOAL_TASK_NAME, 'web.2');
  t.equal(env.SHOAL_NODE_HOSTNAME, 'worker-1');
  t.equal(env.SHOAL_SERVICE_NAME, 'web');
  t.equal(env.SHOAL_TASK_LABELS, JSON.stringify({ tier: 'front' }));
  t.equal(env.A, '1');
  t.equal(env.SHOAL_TASK_SLOT, 'overridden', "the service's own env wins over the downward API");
  t.same(c.command, ['/app']);
  t.same(c.args, ['--port', '80']);
  t.equal(c.working_dir, '/srv');
  t.same(c.linux.security_context, { run_as_username: 'app', run_as_group: { value: 1000 } });
  t.same(c.linux.resources, { cpu_period: 100000, cpu_quota: 150000, cpu_shares: 256, memory_limit_in_bytes: 64 << 20 }, 'limits and the CPU weight from the reservation');
  t.equal(c.annotations['io.shoal.stop-signal'], 'SIGQUIT');
  t.equal(c.log_path, 'main.log');
  t.equal(c.labels[LABELS.container], 'main');
  const side = containerConfig(task, task.spec.template.sidecars[0]!, 'sidecar', 'node1', { id: 'node1', hostname: 'worker-1' });
  t.same(side.linux.resources, {}, 'a sidecar gets no limits of the main container');
  t.same(containerConfig(task, { name: 'x', image: 'i', user: '1000' }, 'init', 'n', { id: 'n', hostname: 'h' }).linux.security_context, { run_as_user: { value: 1000 } }, 'a numeric user');
});

t.test('pull policy: latest (or no tag) always, anything else when absent', async (t) => {
  t.equal(alwaysPull('busybox'), true);
  t.equal(alwaysPull('reg:5000/busybox'), true, 'a registry port is not a tag');
  t.equal(alwaysPull('reg:5000/busybox:latest'), true);
  t.equal(alwaysPull('reg:5000/busybox:1'), false);
  t.equal(alwaysPull('busybox@sha256:' + 'a'.repeat(64)), false);
});
