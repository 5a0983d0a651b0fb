// Service specs as the control API receives them: every bad input gets one clear error naming
// the field and what to write instead; good input gets the defaults (DESIGN.md §7) and
// survives the trip back to the wire unchanged.
import t from 'tap';
import { DEFAULT_RESTART, DEFAULT_STOP_GRACE_MS } from './model.js';
import { SpecError, checkImage, checkServiceName, specFromWire, specToWire, type WireSpec } from './validate.js';

const base = (over: Partial<WireSpec> = {}): WireSpec => ({ main: { image: 'busybox' }, ...over });
const MiB = 1024 * 1024;

t.test('service names: DNS labels only', async (t) => {
  for (const ok of ['web', 'a', 'web-1', '0x', 'a'.repeat(63)]) t.equal(checkServiceName(ok), ok, ok);
  for (const bad of ['', 'Web', 'web_1', '-web', 'web-', 'a'.repeat(64), 'we.b', 'web 1', undefined, 5]) {
    t.throws(() => checkServiceName(bad), { name: 'SpecError' }, String(bad));
    try {
      checkServiceName(bad);
    } catch (e) {
      t.match((e as Error).message, /service name .* is not valid: use 1-63 lower-case letters, digits and '-'/);
    }
  }
});

t.test('image references: the distribution grammar', async (t) => {
  const good = [
    'busybox',
    'busybox:1.36',
    'library/busybox:latest',
    'registry.example:5000/team/app:1.2',
    'localhost/app',
    'localhost:5000/app',
    '127.0.0.1:5000/busybox:test',
    'app@sha256:' + 'a'.repeat(64),
    'reg.example/a/b/c:v1@sha256:' + 'b'.repeat(64),
    'My.Registry/app',
    'docker-archive:/tmp/x.tar',
    'oci-archive:/tmp/x.tar',
  ];
  for (const g of good) t.equal(checkImage(g), g, g);
  const bad = ['', 'BusyBox', 'Team/app', 'busybox:', 'busybox:-x', 'app@sha256:abc', 'a//b', '/abs', 'busy box', 'app:' + 't'.repeat(129), 'docker-archive:relative.tar', 'x'.repeat(256)];
  for (const b of bad) {
    t.throws(() => checkImage(b), { name: 'SpecError' }, JSON.stringify(b));
  }
  t.throws(() => checkImage('docker-archive:relative.tar'), /an archive needs an absolute path/);
  t.throws(() => checkImage(undefined, 'main.image'), /main\.image is missing: give an image reference/);
  t.throws(() => checkImage('Team/app'), /"Team\/app" is not a valid image reference: write \[REGISTRY\[:PORT\]\/\]NAME\[:TAG\]\[@sha256:DIGEST\] with a lower-case name/);
});

t.test('every bad spec is refused with its own error', async (t) => {
  const rows: [string, WireSpec | null, RegExp][] = [
    ['no spec', null, /^spec is missing$/],
    ['no main container', { main: null }, /^main is missing$/],
    ['no image', { main: {} }, /main\.image is missing/],
    ['bad image', base({ main: { image: 'Bad Image' } }), /main\.image "Bad Image" is not a valid image reference/],
    ['sidecar image', base({ sidecars: [{ name: 'log', image: 'x@y' }] }), /sidecars\[0\]\.image "x@y" is not a valid image reference/],
    ['replicas < 0', base({ replicas: -1 }), /^replicas must be a whole number of at least 0, got -1$/],
    ['replicas not whole', base({ replicas: 1.5 }), /replicas must be a whole number/],
    ['unknown mode', base({ mode: 'daemonset' }), /^mode "daemonset" is not known: use one of replicated, global, replicated-job, global-job$/],
    ['replicas for global', base({ mode: 'global', replicas: 3 }), /^replicas does not apply to mode global$/],
    ['completions for replicated', base({ completions: 3 }), /^completions does not apply to mode replicated$/],
    ['max concurrent 0', base({ mode: 'replicated-job', completions: 3, max_concurrent: 0 }), /max-concurrent must be a whole number of at least 1, got 0/],
    ['completions < 0', base({ mode: 'replicated-job', completions: -2 }), /completions must be a whole number of at least 0, got -2/],
    ['unparsable constraint', base({ constraints: ['node.labels.zone=eu'] }), /constraint "node\.labels\.zone=eu" does not parse: write KEY==VALUE or KEY!=VALUE/],
    ['bad role in a constraint', base({ constraints: ['node.role==boss'] }), /node\.role is manager or worker/],
    ['constraints not strings', base({ constraints: [5 as unknown as string] }), /^constraints must be a list of strings$/],
    ['spread not on a label', base({ spread: ['node.hostname'] }), /spread preference "node\.hostname" must be node\.labels\.KEY/],
    ['duplicate container names', base({ sidecars: [{ name: 'log', image: 'busybox' }], init: [{ name: 'log', image: 'busybox' }] }), /container name "log" is used twice in the pod; each container needs its own/],
    ['a sidecar named main', base({ sidecars: [{ name: 'main', image: 'busybox' }] }), /container name "main" is used twice/],
    ['a sidecar without a name', base({ sidecars: [{ image: 'busybox' }] }), /sidecars\[0\]\.name "" is not valid: use lower-case letters, digits and '-'/],
    ['an init container with a bad name', base({ init: [{ name: 'Setup', image: 'busybox' }] }), /init\[0\]\.name "Setup" is not valid/],
    ['env without =', base({ main: { image: 'busybox', env: ['FOO'] } }), /main\.env entry "FOO" must be KEY=VALUE/],
    ['env key starting with a digit', base({ main: { image: 'busybox', env: ['1A=x'] } }), /main\.env entry "1A=x" must be KEY=VALUE/],
    ['env with an empty key', base({ main: { image: 'busybox', env: ['=x'] } }), /main\.env entry "=x"/],
    ['command not strings', base({ main: { image: 'busybox', command: [1 as unknown as string] } }), /main\.command must be a list of strings/],
    ['relative workdir', base({ main: { image: 'busybox', workdir: 'app' } }), /main\.workdir "app" must be an absolute path/],
    ['bad user', base({ main: { image: 'busybox', user: 'me:staff' } }), /main\.user "me:staff" must be USER or USER:GID/],
    ['memory reservation above the limit', base({ reservations: { memory_bytes: 512 * MiB }, limits: { memory_bytes: 256 * MiB } }), /reservations\.memory \(536870912\) is above limits\.memory \(268435456\)/],
    ['CPU reservation above the limit', base({ reservations: { cpu_millis: 2000 }, limits: { cpu_millis: 500 } }), /reservations\.cpu \(2000m\) is above limits\.cpu \(500m\)/],
    ['memory limit below runc minimum', base({ limits: { memory_bytes: 1024 } }), /limits\.memory must be at least 6 MiB, got 1024 bytes/],
    ['negative CPU', base({ reservations: { cpu_millis: -1 } }), /reservations\.cpu must be a whole number of at least 0, got -1/],
    ['unknown restart condition', base({ restart: { condition: 'always' } }), /restart condition "always" is not known: use none, on-failure or any/],
    ['negative restart delay', base({ restart: { delay_ms: -5 } }), /restart delay must be a whole number of at least 0, got -5/],
    ['negative max attempts', base({ restart: { max_attempts: -1 } }), /restart max attempts must be a whole number/],
    ['negative stop grace', base({ stop_grace_period_ms: -1 }), /stop grace period must be a whole number/],
    ['bad stop signal', base({ stop_signal: 'SIGFOO' }), /stop signal "SIGFOO" is not one of SIGHUP, .* \(a name, with or without SIG, or its number\)/],
    ['a signal number that is not allowed', base({ stop_signal: '11' }), /stop signal "11" is not one of/],
  ];
  for (const [name, w, re] of rows) {
    let err: unknown;
    try {
      specFromWire(w);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof SpecError, `${name}: a SpecError`);
    t.match((err as Error)?.message, re, name);
  }
});

t.test('stop signals: a name in any case, with or without SIG, or its number', async (t) => {
  const rows: [string | undefined, string][] = [
    [undefined, 'SIGTERM'],
    ['', 'SIGTERM'],
    ['SIGINT', 'SIGINT'],
    ['quit', 'SIGQUIT'],
    ['sigusr1', 'SIGUSR1'],
    ['Hup', 'SIGHUP'],
    ['15', 'SIGTERM'],
    ['9', 'SIGKILL'],
  ];
  for (const [given, want] of rows) t.equal(specFromWire(base({ stop_signal: given })).task.stopSignal, want, String(given));
});

t.test('defaults, and a full spec survives the wire both ways', async (t) => {
  const d = specFromWire(base());
  t.same(d.mode, { type: 'replicated', replicas: 1 });
  t.same(d.task.restart, DEFAULT_RESTART);
  t.equal(d.task.stopGracePeriodMs, DEFAULT_STOP_GRACE_MS);
  t.equal(d.task.main.name, 'main');
  t.same(specFromWire(base({ mode: 'replicated-job', completions: 4 })).mode, { type: 'replicated-job', completions: 4, maxConcurrent: 4 }, 'max concurrent defaults to completions');
  t.same(specFromWire(base({ mode: 'global' })).mode, { type: 'global' });
  t.same(specFromWire(base({ replicas: 0 })).mode, { type: 'replicated', replicas: 0 }, 'zero replicas is allowed');
  const full: WireSpec = {
    mode: 'replicated',
    replicas: 6,
    main: { name: 'main', image: 'registry.example:5000/web:2', command: ['/bin/sh'], args: ['-c', 'sleep 1'], env: ['A=1', 'B_C.d=x=y'], workdir: '/srv', user: 'www:33' },
    sidecars: [{ name: 'log', image: 'busybox', command: [], args: [], env: [], workdir: '', user: '' }],
    init: [{ name: 'setup', image: 'busybox', command: ['true'], args: [], env: [], workdir: '', user: '' }],
    reservations: { cpu_millis: 250, memory_bytes: 64 * MiB },
    limits: { cpu_millis: 1000, memory_bytes: 128 * MiB },
    constraints: ['node.labels.zone==eu', 'node.role!=manager'],
    spread: ['node.labels.rack'],
    restart: { condition: 'on-failure', delay_ms: 100, max_attempts: 3, window_ms: 60_000 },
    stop_grace_period_ms: 2000,
    stop_signal: 'SIGQUIT',
  };
  const spec = specFromWire(full);
  t.same(specFromWire(specToWire(spec)), spec, 'wire -> spec -> wire -> spec is stable');
  t.same(spec.task.placement.preferences, [{ spread: 'rack' }]);
  t.same(spec.task.resources, { reservations: { cpuMillis: 250, memoryBytes: 64 * MiB }, limits: { cpuMillis: 1000, memoryBytes: 128 * MiB } });
});
