// The manifest reader without a cluster: each malformed manifest in a table gets its
// file:line: field: message (and only that), every problem of a file is reported at once, a good
// manifest becomes the control API's spec field by field, -f DIR and multi-document files, and the
// unified diff.
import t from 'tap';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadManifest } from './load.js';
import { formatProblem } from './walk.js';
import { unifiedDiff } from './diff.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-manifest-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(text: string, name = `m${++n}.yaml`): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
const problems = (paths: string[]) => loadManifest(paths).problems.map(formatProblem);

const WEB = `stack: shop
services:
  web:
    image: registry.example:5000/web:1
`;

t.test('malformed manifests: one problem each, at its line and field', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['a count that is not a number', `${WEB}    replicas: three\n`, /:5: services\.web\.replicas: expected a non-negative integer, got "three"$/],
    ['a negative count', `${WEB}    replicas: -1\n`, /:5: services\.web\.replicas: expected a non-negative integer, got -1$/],
    ['a misspelt field', `${WEB}    replcas: 3\n`, /:5: services\.web\.replcas: unknown field \(did you mean replicas\?\)$/],
    ['an unknown top-level key', `${WEB}volumez: {}\n`, /:5: volumez: unknown field; known here: stack, services, secrets, configs$/],
    ['no image', 'services:\n  web:\n    replicas: 2\n', /:2: services\.web\.image: required: the container image/],
    ['a service with no fields', 'services:\n  web:\n', /:2: services\.web: expected a mapping of the service's fields/],
    ['a duration without a unit', `${WEB}    stopGracePeriod: 10\n`, /:5: services\.web\.stopGracePeriod: expected a duration like 500ms, 5s, 2m or 1h, got 10$/],
    ['a size that does not parse', `${WEB}    limit: {memory: lots}\n`, /:5: services\.web\.limit\.memory: expected a size like 64M, 1G or 512Mi/],
    ['CPUs that do not parse', `${WEB}    reserve: {cpu: half}\n`, /:5: services\.web\.reserve\.cpu: expected a number of CPUs like 0\.5, or millicores like 500m, got "half"$/],
    ['an unknown mode', `${WEB}    mode: sometimes\n`, /:5: services\.web\.mode: expected one of replicated, global, replicated-job, global-job, got "sometimes"$/],
    ['an unknown update order', `${WEB}    update:\n      order: last-first\n`, /:6: services\.web\.update\.order: expected one of stop-first, start-first, got "last-first"/],
    ['a ratio above 1', `${WEB}    update: {maxFailureRatio: 2}\n`, /:5: services\.web\.update\.maxFailureRatio: expected a number between 0 and 1, got 2$/],
    ['a probe with two kinds', `${WEB}    liveness:\n      exec: [true]\n      tcp: {port: 80}\n`, /:5: services\.web\.liveness: a probe has one of exec, http or tcp, not exec and tcp$/],
    ['a probe port out of range', `${WEB}    readiness:\n      http: {port: 70000}\n`, /:6: services\.web\.readiness\.http\.port: expected a port between 1 and 65535, got 70000$/],
    ['replicas on a job', `${WEB}    mode: replicated-job\n    replicas: 2\n`, /:6: services\.web\.replicas: applies to mode replicated only \(this service is replicated-job\)$/],
    ['a schedule on a replicated service', `${WEB}    schedule: "* * * * *"\n`, /:5: services\.web\.schedule: applies to mode replicated-job or global-job only/],
    ['an unknown concurrency policy', `${WEB}    mode: replicated-job\n    schedule: {cron: "* * * * *", concurrency: sometimes}\n`, /:6: services\.web\.schedule\.concurrency: expected one of allow, forbid, replace, got "sometimes"$/],
    ['a deadline in milliseconds', `${WEB}    mode: replicated-job\n    schedule: {cron: "* * * * *", startingDeadline: 1500ms}\n`, /:6: services\.web\.schedule\.startingDeadline: expected whole seconds, got 1500 ms$/],
    ['env not KEY=VALUE', `${WEB}    env: [NOEQUALS]\n`, /:5: services\.web\.env\[0\]: expected KEY=VALUE/],
    ['a command that is a mapping', `${WEB}    command: {run: x}\n`, /:5: services\.web\.command: expected a list of words, or a command line as one string, got a mapping$/],
    ['an unterminated quote in a command line', `${WEB}    command: "sh -c 'echo"\n`, /:5: services\.web\.command: unterminated ' quote/],
    ['a sidecar without a name', `${WEB}    sidecars:\n      - image: x:1\n`, /:6: services\.web\.sidecars\[0\]\.name: required: the container's name/],
    ['an invalid service name', 'services:\n  Web_1:\n    image: x:1\n', /:2: services\.Web_1: service name "Web_1" is not valid/],
    ['an invalid stack name', 'stack: My Shop\nservices: {}\n', /:1: stack: stack name "My Shop" is not valid/],
    ['services as a list', 'services:\n  - web\n', /:2: services: expected a mapping of service names to their fields, got a list$/],
    // The parser notices an unclosed list where the input ends.
    ['YAML that does not parse', `${WEB}    env: [A=1\n`, /:6: not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a \]$/],
    ['a key written twice', `${WEB}    replicas: 1\n    replicas: 2\n`, /:6: not valid YAML: Map keys must be unique/],
    ['a document that is a list', '- a\n- b\n', /:1: expected a mapping with stack and services, got a list$/],
    ['labels that are a list', `${WEB}    labels: [a]\n`, /:5: services\.web\.labels: expected a mapping of label: value, got a list$/],
    ['a file mode written as a bare number', `${WEB}    secrets: [{name: db-password, mode: 0400}]\n`, /:5: services\.web\.secrets\[0\]\.mode: expected permission bits in octal as a string, like "0400" \(a bare 0400 is the number 400 in YAML 1\.2\), got 400$/],
    ['a secret reference without a name', `${WEB}    secrets:\n      - target: /etc/key\n`, /:6: services\.web\.secrets\[0\]\.name: required: the secret's name/],
    ['configs that are a mapping', `${WEB}    configs: {app: x}\n`, /:5: services\.web\.configs: expected a list of config names, or of mappings with name, target, uid, gid, mode, got a mapping$/],
    ['a published port without its target', `${WEB}    ports: ["8080"]\n`, /:5: services\.web\.ports\[0\]: expected PUBLISHED:TARGET\[\/tcp\|udp\]\[,mode=ingress\|host\], like "8080:80", got "8080"$/],
    ['a port mapping without a target', `${WEB}    ports:\n      - published: 8080\n`, /:6: services\.web\.ports\[0\]\.target: required: the port in the service's tasks/],
    ['an unknown endpoint mode', `${WEB}    endpointMode: round-robin\n`, /:5: services\.web\.endpointMode: expected one of vip, dnsrr, got "round-robin"$/],
    ['a mount without a target', `${WEB}    mounts:\n      - source: data\n`, /:6: services\.web\.mounts\[0\]\.target: required: the absolute path in the container/],
    ['a mount size that is not a size', `${WEB}    mounts: [{class: fast, size: big, target: /data}]\n`, /:5: services\.web\.mounts\[0\]\.size: expected a size like 64M, 1G or 512Mi \(or a number of bytes\), got "big"$/],
    ['suspend that is not a boolean', `${WEB}    mode: global-job\n    schedule: {cron: "@daily", suspend: "no"}\n`, /:6: services\.web\.schedule\.suspend: expected true or false, got "no"$/],
  ];
  for (const [what, text, want] of cases) {
    const p = file(text);
    const got = problems([p]);
    t.equal(got.length, 1, `${what}: one problem (${got.join(' | ')})`);
    t.match(got[0] ?? '', new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}${want.source}`), what);
  }
});

t.test('every problem of a file at once, in line order', async (t) => {
  const p = file(`stack: shop
services:
  web:
    image: x:1
    replicas: three
    restrat: {}
  db:
    image: y:1
    mode: global
    replicas: 2
`);
  const got = problems([p]);
  t.same(got.map((l) => l.slice(p.length)), [
    ':5: services.web.replicas: expected a non-negative integer, got "three"',
    ':6: services.web.restrat: unknown field (did you mean restart?)',
    ':10: services.db.replicas: applies to mode replicated only (this service is global)',
  ]);
});

t.test('one apply is one stack; each service declared once', async (t) => {
  const a = file('stack: shop\nservices:\n  web: {image: "x:1"}\n', 'a.yaml');
  const b = file('stack: blog\nservices:\n  web: {image: "x:2"}\n', 'b.yaml');
  const got = problems([a, b]);
  t.match(got[0], /b\.yaml:1: stack: stack "blog" differs from "shop" \(.*a\.yaml:1\): one apply is one stack/);
  t.match(got[1], /b\.yaml:3: services\.web: declared twice \(first at .*a\.yaml:3\)/);
  const multi = file('stack: shop\nservices:\n  a: {image: "x:1"}\n---\nservices:\n  b: {image: "x:2"}\n---\n# only a comment\n');
  const m = loadManifest([multi]);
  t.same(m.problems, [], 'documents of one file are one apply');
  t.same(m.services.map((s) => s.name), ['a', 'b']);
  t.equal(m.stack, 'shop');
});

t.test('-f DIR reads its .yaml and .yml files in name order', async (t) => {
  const d = join(dir, 'stack');
  mkdirSync(d);
  writeFileSync(join(d, '20-db.yml'), 'services:\n  db: {image: "db:1"}\n');
  writeFileSync(join(d, '10-web.yaml'), 'stack: shop\nservices:\n  web: {image: "web:1"}\n');
  writeFileSync(join(d, 'README.md'), 'not a manifest');
  const m = loadManifest([d]);
  t.same(m.problems, []);
  t.same(m.services.map((s) => s.name), ['web', 'db']);
  t.same(m.files.map((f) => f.slice(d.length + 1)), ['10-web.yaml', '20-db.yml']);
  t.throws(() => loadManifest([join(dir, 'nope.yaml')]), /cannot read .*nope\.yaml: no such file/);
  const s = loadManifest(['-'], () => 'services:\n  web: {image: "x:1", replicas: x}\n');
  t.match(formatProblem(s.problems[0]!), /^<stdin>:2: services\.web\.replicas: expected a non-negative integer, got "x"$/, 'standard input is named <stdin>');
});

t.test('a full service becomes the control API spec', async (t) => {
  const p = file(`stack: shop
services:
  web:
    image: reg:5000/web:1
    entrypoint: /bin/sh
    command: ["-c", "exec httpd -p 8080", 42]
    env: {A: 1, B: "two", C: }
    workdir: /www
    user: "1000:1000"
    labels: {tier: front}
    replicas: 3
    constraints: [node.role==worker]
    spread: [node.labels.zone]
    reserve: {cpu: 0.25, memory: 64M}
    limit: {cpu: 500m, memory: 134217728}
    restart: {condition: on-failure, delay: 2s, maxAttempts: 3, window: 1m}
    stopGracePeriod: 1.5s
    stopSignal: SIGINT
    readiness: {http: {port: 8080, path: /ok}, period: 2s, successes: 2}
    liveness: {exec: "cat /tmp/alive", failures: 5}
    update: {parallelism: 2, delay: 1s, order: start-first, failureAction: rollback, monitor: 10s, maxFailureRatio: 0.5}
    init: [{name: setup, image: "busybox:1", command: [sh, -c, "echo hi"]}]
    sidecars: [{name: proxy, image: "proxy:2", env: [X=1]}]
  nightly:
    image: job:1
    mode: replicated-job
    completions: 4
    maxConcurrent: 2
    schedule: {cron: "0 3 * * *", timezone: Europe/Berlin, concurrency: replace, startingDeadline: 2m, keepSucceeded: 5, keepFailed: 2, suspend: true}
  each:
    image: job:1
    mode: global-job
    schedule: "@hourly"
`);
  const m = loadManifest([p]);
  t.same(m.problems, []);
  const [web, nightly, each] = m.services;
  t.same(web!.labels, { tier: 'front' });
  t.same(web!.spec.main, { name: 'main', image: 'reg:5000/web:1', command: ['/bin/sh'], args: ['-c', 'exec httpd -p 8080', '42'], env: ['A=1', 'B=two', 'C='], workdir: '/www', user: '1000:1000' });
  t.match(web!.spec, {
    mode: 'replicated', replicas: 3, constraints: ['node.role==worker'], spread: ['node.labels.zone'],
    reservations: { cpu_millis: 250, memory_bytes: 64 * 1024 * 1024 }, limits: { cpu_millis: 500, memory_bytes: 134217728 },
    restart: { condition: 'on-failure', delay_ms: 2000, max_attempts: 3, window_ms: 60000 },
    stop_grace_period_ms: 1500, stop_signal: 'SIGINT',
    update: { parallelism: 2, delay_ms: 1000, order: 'start-first', failure_action: 'rollback', monitor_ms: 10000, max_failure_ratio: 0.5 },
    rollback: null,
  });
  t.same(web!.spec.probes, [
    { kind: 'liveness', type: 'exec', command: ['cat', '/tmp/alive'], path: '', port: 0, initial_delay_ms: null, period_ms: null, timeout_ms: null, success_threshold: null, failure_threshold: 5 },
    { kind: 'readiness', type: 'http', command: [], path: '/ok', port: 8080, initial_delay_ms: null, period_ms: 2000, timeout_ms: null, success_threshold: 2, failure_threshold: null },
  ]);
  t.same(web!.spec.init, [{ name: 'setup', image: 'busybox:1', command: [], args: ['sh', '-c', 'echo hi'], env: [], workdir: '', user: '' }]);
  t.same(web!.spec.sidecars[0].env, ['X=1']);
  t.same(nightly!.spec.schedule, { cron: '0 3 * * *', time_zone: 'Europe/Berlin', concurrency_policy: 'replace', starting_deadline_seconds: 120, successful_runs_history_limit: 5, failed_runs_history_limit: 2, suspend: true });
  t.match(nightly!.spec, { mode: 'replicated-job', completions: 4, max_concurrent: 2, replicas: null });
  t.match(each!.spec.schedule, { cron: '@hourly', time_zone: '' });
  t.equal(web!.lines.get('replicas'), 11, 'where each field was written is kept (to place the cluster\'s answers)');
});

t.test('unified diff', async (t) => {
  t.equal(unifiedDiff('a\nb\nc\n', 'a\nb\nc\n', 'x', 'y'), '', 'no difference: nothing');
  t.equal(unifiedDiff('a\nb\nc\n', 'a\nB\nc\n', 'x', 'y'), '--- x\n+++ y\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n');
  const long = Array.from({ length: 20 }, (_, i) => `l${i}`);
  const changed = [...long];
  changed[1] = 'X';
  changed[18] = 'Y';
  const d = unifiedDiff(long.join('\n'), changed.join('\n'), 'x', 'y');
  t.equal(d.split('\n').filter((l) => l.startsWith('@@')).length, 2, 'changes far apart: two hunks');
  t.equal(unifiedDiff('', 'a\n', 'x', 'y'), '--- x\n+++ y\n@@ -1,0 +1,1 @@\n+a\n');
});

t.test('secrets and configs: malformed declarations, each at its line and field', async (t) => {
  writeFileSync(join(dir, 'pw.txt'), 'hunter2\n');
  writeFileSync(join(dir, 'empty.txt'), '');
  writeFileSync(join(dir, 'big.bin'), Buffer.alloc(500 * 1024 + 1, 1));
  const cases: [string, string, RegExp][] = [
    ['a file that does not exist', `${WEB}secrets:\n  db-password:\n    file: ./nope.txt\n`, /:7: secrets\.db-password\.file: cannot read \.\/nope\.txt \(.*\/nope\.txt\): no such file \(a relative path starts from the manifest's folder\)$/],
    ['a folder given as the file', `${WEB}configs:\n  conf:\n    file: .\n`, /:7: configs\.conf\.file: \. \(.*\) is not a regular file$/],
    ['an empty file', `${WEB}secrets:\n  db-password:\n    file: empty.txt\n`, /:7: secrets\.db-password\.file: empty\.txt \(.*\) is empty: a secret needs content$/],
    ['a file over the size limit', `${WEB}secrets:\n  db-password: {file: big.bin}\n`, /:6: secrets\.db-password\.file: big\.bin \(.*\) is 512001 bytes: a secret holds at most 512000 bytes \(500 KiB\)$/],
    ['a secret given inline', `${WEB}secrets:\n  db-password:\n    data: hunter2\n`, /:7: secrets\.db-password\.data: a secret comes from a file \(file: PATH\), never inline/],
    ['a config with file and data', `${WEB}configs:\n  conf:\n    file: pw.txt\n    data: x\n`, /:8: configs\.conf\.data: give file or data, not both$/],
    ['a config with neither', `${WEB}configs:\n  conf:\n    labels: {a: b}\n`, /:6: configs\.conf: required: file \(a path\) or data \(the content\)$/],
    ['a secret with no fields', `${WEB}secrets:\n  db-password:\n`, /:6: secrets\.db-password: expected a mapping with file \(and labels\), got nothing \(null\)$/],
    ['a misspelt field', `${WEB}secrets:\n  db-password:\n    file: pw.txt\n    lables: {a: b}\n`, /:8: secrets\.db-password\.lables: unknown field \(did you mean labels\?\)$/],
    ['an invalid name', `${WEB}secrets:\n  "db password":\n    file: pw.txt\n`, /:6: secrets\.db password: secret name "db password" is not valid/],
    ['inline data that is not a string', `${WEB}configs:\n  conf:\n    data: {a: 1}\n`, /:7: configs\.conf\.data: expected the config's content as a string \(a block: data: \|\), got a mapping$/],
    ['the stack label set by hand', `${WEB}configs:\n  conf:\n    data: x\n    labels: {io.shoal.stack: other}\n`, /:8: configs\.conf\.labels\.io\.shoal\.stack: io\.shoal\.stack is set by apply/],
    ['secrets as a list', `${WEB}secrets:\n  - db-password\n`, /:6: secrets: expected a mapping of secret names to their file, got a list$/],
    ['a file path that is a number', `${WEB}secrets:\n  db-password: {file: 42}\n`, /:6: secrets\.db-password\.file: expected a path, got 42$/],
  ];
  for (const [what, text, want] of cases) {
    const p = file(text);
    const got = problems([p]);
    t.equal(got.length, 1, `${what}: one problem (${got.join(' | ')})`);
    t.match(got[0] ?? '', new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}${want.source}`), what);
  }
  const twice = problems([file(`${WEB}secrets:\n  db-password: {file: pw.txt}\n`), file('secrets:\n  db-password: {file: pw.txt}\n')]);
  t.match(twice, [/:2: secrets\.db-password: declared twice \(first at .*:6\)$/], 'the same secret in two files');
  t.ok(twice.every((l) => !l.includes('hunter2')), "no message quotes a secret's content");
});

t.test('secrets and configs: files relative to the manifest, the content read, sent with labels', async (t) => {
  const d = join(dir, 'app');
  mkdirSync(join(d, 'conf'), { recursive: true });
  writeFileSync(join(d, 'db-password.txt'), 's3cret\n');
  writeFileSync(join(d, 'conf', 'nginx.conf'), 'server {}\n');
  const abs = join(dir, 'absolute.txt');
  writeFileSync(abs, 'abs');
  const p = join(d, 'stack.yaml');
  writeFileSync(p, `stack: shop
secrets:
  db-password:
    file: ./db-password.txt
    labels: {team: shop}
  abs-secret:
    file: ${abs}
configs:
  nginx-conf:
    file: conf/nginx.conf
  motd:
    data: |
      hello
services:
  web:
    image: x:1
    secrets: [db-password]
    configs: [{name: nginx-conf, target: /etc/nginx/nginx.conf}]
`);
  // From another working folder: the paths still start from the manifest's.
  const cwd = process.cwd();
  process.chdir(dir);
  t.teardown(() => process.chdir(cwd));
  const m = loadManifest([p]);
  t.same(m.problems, []);
  t.same(m.secrets.map((s) => [s.name, s.data.toString(), s.labels, s.source, s.line]), [
    ['db-password', 's3cret\n', { team: 'shop' }, './db-password.txt', 3],
    ['abs-secret', 'abs', {}, abs, 6],
  ]);
  t.same(m.configs.map((s) => [s.name, s.data.toString(), s.source]), [['nginx-conf', 'server {}\n', 'conf/nginx.conf'], ['motd', 'hello\n', '']]);
  t.equal(m.secrets[0]!.lines.get('file'), 4, 'where the file was named is kept (to place the cluster\'s answers)');
  t.same(m.services[0]!.spec.secrets, [{ name: 'db-password', target: '', uid: '', gid: '', mode: null }], 'services refer to them by name');
  // Standard input: relative to the current folder.
  writeFileSync(join(dir, 'here.txt'), 'from cwd');
  const s = loadManifest(['-'], () => 'secrets:\n  here: {file: here.txt}\n');
  t.same(s.problems, []);
  t.equal(s.secrets[0]!.data.toString(), 'from cwd');
  // More data than one apply carries.
  const big = join(dir, 'big');
  mkdirSync(big);
  let text = 'configs:\n';
  for (let i = 0; i < 4; i++) {
    writeFileSync(join(big, `c${i}`), Buffer.alloc(900 * 1024, 65));
    text += `  c${i}: {file: c${i}}\n`;
  }
  writeFileSync(join(big, 'm.yaml'), text);
  t.match(problems([join(big, 'm.yaml')]), [/m\.yaml:2: the secrets and configs hold 3686400 bytes together: one apply carries at most 3145728 bytes/]);
});
