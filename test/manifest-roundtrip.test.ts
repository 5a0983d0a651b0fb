// `shoal get service -o yaml` output applies unchanged: for varied manifests (and the example
// stack), the spec the cluster stores (the server's own validation, defaults filled) is written
// back as a manifest (cli/manifest/render.ts), read again by the CLI (cli/manifest/load.ts) and
// validated again by the server: the same spec, so Control.Apply's plan says "unchanged". Spans
// the CLI and the manager's validation, hence here.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadManifest } from '../cli/manifest/load.js';
import { MANIFEST_SPEC_FIELDS, manifestDocument } from '../cli/manifest/render.js';
import protobuf from 'protobufjs';
import { protoDir } from '../proto/load.js';
import { formatProblem } from '../cli/manifest/walk.js';
import { plan, STACK_LABEL } from '../manager/services/apply.js';
import { specFromWire, specToWire } from '../manager/services/validate.js';
import type { ServiceObject } from '../manager/services/model.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-roundtrip-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const examples = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples');

let n = 0;
function load(text: string) {
  const p = join(dir, `r${++n}.yaml`);
  writeFileSync(p, text);
  const m = loadManifest([p]);
  if (m.problems.length) throw new Error(m.problems.map(formatProblem).join('\n'));
  return m;
}

/** As the cluster holds it: the server's validation of what the CLI sent. */
function stored(m: ReturnType<typeof load>): ServiceObject[] {
  return m.services.map((s, i) => ({ kind: 'service', id: `id${i}`, name: s.name, labels: { ...s.labels, ...(m.stack ? { [STACK_LABEL]: m.stack } : {}) }, version: 1, createdVersion: 1, spec: specFromWire(s.spec), status: { createdAt: 0, updatedAt: 0 } }));
}

const cases: [string, string][] = [
  ['the smallest service', 'services:\n  a:\n    image: x:1\n'],
  ['everything a service has', `stack: full
services:
  web:
    image: reg:5000/web:1
    entrypoint: [/bin/sh]
    command: [-c, 'exec httpd -f -p 8080 -h /www', "8080", "true"]
    env: {A: "1", EMPTY: "", QUOTE: 'say "hi", then go: now'}
    workdir: /www
    user: "1000:1000"
    labels: {tier: front, "example.com/owner": team-a}
    replicas: 3
    constraints: [node.role==worker, node.labels.zone!=b]
    spread: [node.labels.zone]
    reserve: {cpu: 0.25, memory: 64M}
    limit: {cpu: 1500m, memory: 100000000}
    restart: {condition: on-failure, delay: 1500ms, maxAttempts: 3, window: 90s}
    stopGracePeriod: 1m
    stopSignal: INT
    startup: {exec: [cat, /tmp/started], period: 1s, failures: 30}
    readiness: {http: {port: 8080}, period: 2s, successes: 2, delay: 3s}
    liveness: {tcp: {port: 8080}, timeout: 5s}
    update: {parallelism: 0, delay: 1h, order: start-first, failureAction: continue, monitor: 0s, maxFailureRatio: 0.25}
    rollback: {parallelism: 4, failureAction: continue}
    init: [{name: setup, image: "busybox:1", command: "sh -c 'echo one; echo two'", env: [X=1, X=2]}]
    sidecars: [{name: proxy, image: "proxy:2", entrypoint: [/proxy], user: nobody, workdir: /}]
    secrets: [db-password, {name: tls-key, target: /etc/tls/key.pem, uid: 1000, gid: 1000, mode: "0400"}]
    configs: [{name: app-conf, target: app.conf, mode: 0o640}, nginx-conf]
    mounts: [{source: web-data, target: /srv/data}, {source: shared, target: /srv/shared, readonly: true}, {class: fast, size: 1G, target: /var/cache/web}]
`],
  ['jobs and schedules', `stack: jobs
services:
  batch:
    image: job:1
    mode: replicated-job
    completions: 10
    maxConcurrent: 3
  nightly:
    image: job:1
    mode: replicated-job
    schedule: {cron: "30 2 * * 1-5", timezone: America/New_York, concurrency: forbid, startingDeadline: 90s, keepSucceeded: 0, keepFailed: 5, suspend: true}
  hourly:
    image: job:1
    mode: global-job
    schedule: "@hourly"
  agent:
    image: agent:1
    mode: global
`],
  ['networks, endpoint modes and published ports', `stack: net
services:
  api:
    image: api:1
    networks: [backend, front]
    ports: ["8080:80", "53:5353/udp,mode=host", {published: 9090, target: 90}]
  db:
    image: db:1
    networks: [backend]
    endpointMode: dnsrr
`],
];

t.test('every ServiceSpec field of the API is a manifest field', async (t) => {
  const root = new protobuf.Root().loadSync(join(protoDir(), 'control', 'control.proto'), { keepCase: true });
  const fields = root.lookupType('shoal.control.v1.ServiceSpec').fieldsArray.map((f) => f.name);
  t.same(fields.filter((f) => !MANIFEST_SPEC_FIELDS.includes(f)), [], 'no API field the manifest would drop (add it to cli/manifest/schema.ts and render.ts)');
});

t.test('stored, written as a manifest, read again: the same spec, and apply says unchanged', async (t) => {
  const shop = (await import('node:fs')).readFileSync(join(examples, 'shop.yaml'), 'utf8');
  for (const [what, text] of [...cases, ['examples/shop.yaml', shop] as [string, string]]) {
    const first = load(text);
    const cluster = stored(first);
    // What `shoal get service -o yaml` prints: the API's spec (specToWire) and labels.
    const yaml = manifestDocument(cluster.map((s) => ({ name: s.name, labels: s.labels, spec: JSON.parse(JSON.stringify(specToWire(s.spec))) })));
    const again = load(yaml);
    t.equal(again.stack, first.stack, `${what}: the stack is written back`);
    const reStored = stored(again);
    t.same(reStored.map((s) => s.spec), cluster.map((s) => s.spec), `${what}: the same spec`);
    t.same(reStored.map((s) => s.labels), cluster.map((s) => s.labels), `${what}: the same labels`);
    const steps = plan({ stack: again.stack, prune: !!again.stack, dry_run: true, services: again.services.map((s) => ({ name: s.name, labels: s.labels, spec: s.spec })) }, cluster);
    t.same(steps.map((s) => s.action), cluster.map(() => 'unchanged'), `${what}: apply of the output changes nothing`);
    t.equal(manifestDocument(reStored.map((s) => ({ name: s.name, labels: s.labels, spec: JSON.parse(JSON.stringify(specToWire(s.spec))) }))), yaml, `${what}: writing it again gives the same text`);
  }
});
