// A manifest's secrets and configs from the CLI's reading to the cluster's store, without a lab:
// the CLI reads the manifest and its files (cli/manifest/load.ts) and builds Control.Apply's
// request (cli/apply.ts); a real manager (raft on disk, one voter, a real data key) runs the Apply
// handler. Checked: created with the stack in one write, secrets sealed (the raft files hold no
// clear text), the service bound to the secret created with it; a second apply writes nothing; a
// changed file is refused, placed by the CLI at its file:line, nothing written; the roll to a new
// name with --prune keeps the old secret while a rollback needs it; a dry run writes nothing; no
// answer and no log line carries a secret's content. Spans the CLI and the manager, hence here.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { applyRequest, placeRefusal } from '../cli/apply.js';
import { loadManifest } from '../cli/manifest/load.js';
import { formatProblem } from '../cli/manifest/walk.js';
import { createKeyAndCSR, createRootCA, issueNodeCertificate } from '../manager/ca/pki.js';
import { Manager } from '../manager/control/manager.js';
import { DataKey, saveDataKey } from '../manager/secrets/datakey.js';
import { DataKeyKeeper } from '../manager/secrets/keeper.js';
import { secretAad, type SecretObject } from '../manager/secrets/model.js';
import { applyTable } from '../manager/services/apply.js';
import type { ServiceObject } from '../manager/services/model.js';
import { freePort } from '../node/ports.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

const dir = mkdtempSync(join(tmpdir(), `shoal-mfsec-${process.pid}-`));
const stateDir = join(dir, 'state');
const ca = await createRootCA('cl');
const { keyPem, csrPem } = await createKeyAndCSR();
const certPem = (await issueNodeCertificate({ ca, csrPem, nodeId: 'm1', role: 'manager', clusterId: 'cl' })).certPem;
const logs: string[] = [];
const log = (m: string) => {
  logs.push(m);
  if (process.env.SHOAL_TEST_LOG) process.stderr.write(m + '\n');
};
const port = await freePort('127.0.0.1');
const mgr = new Manager({ stateDir, nodeId: 'm1', clusterId: 'cl', raftListen: `127.0.0.1:${port}`, raftAdvertise: `127.0.0.1:${port}`, apiAddr: '', tls: () => ({ caPem: ca.certPem, certPem, keyPem }), gossip: () => undefined, bootstrap: true, log });
await mgr.start();
await mgr.waitLeader(15_000);
while (!mgr.isLeader()) await new Promise((r) => setTimeout(r, 20));
mkdirSync(stateDir, { recursive: true });
saveDataKey(stateDir, DataKey.generate());
const keeper = new DataKeyKeeper({ stateDir, managers: () => [], tls: () => ({ caPem: ca.certPem, certPem, keyPem }), log });
keeper.start();
t.teardown(async () => {
  keeper.stop();
  await mgr.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ctx = { identity: { nodeId: 'm1', role: 'manager' as const, clusterId: 'cl', local: true }, metadata: new grpc.Metadata(), peer: 'test' };
const Apply = applyTable(mgr, keeper, log).Apply!;
const store = mgr.raft.store;

// Markers: if a secret's content reaches a raft file, an answer or a log line in clear, a search finds it.
const PW1 = `pw-one-${process.pid}-${Math.random().toString(36).slice(2)}`;
const PW2 = `pw-two-${process.pid}-${Math.random().toString(36).slice(2)}`;
const app = join(dir, 'app');
mkdirSync(app);
const manifest = join(app, 'stack.yaml');
const stack = (secret: string) => `stack: shop
secrets:
  ${secret}:
    file: ./${secret}.txt
    labels: {team: shop}
configs:
  motd:
    data: hello
services:
  web:
    image: reg.example:5000/web:1
    replicas: 0
    secrets: [{name: ${secret}, target: db-password, mode: "0400"}]
    configs: [{name: motd, target: /etc/motd}]
`;
writeFileSync(manifest, stack('db-password'));

/** What `shoal apply -f stack.yaml [--prune] [--dry-run]` sends, answered by the real handler (or its refusal as the CLI places it). */
async function apply(o: { prune?: boolean; dryRun?: boolean } = {}): Promise<any> {
  const m = loadManifest([manifest]);
  if (m.problems.length) throw new Error(m.problems.map(formatProblem).join('\n'));
  try {
    return await Apply.unary!(applyRequest(m, !!o.prune, !!o.dryRun), ctx);
  } catch (e) {
    throw placeRefusal(e as Error, m);
  }
}
const actions = (r: any) => r.changes.map((c: any) => `${c.kind}/${c.name}:${c.action}`);

function raftFilesContaining(marker: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && readFileSync(p).includes(marker)) found.push(p);
    }
  };
  walk(join(stateDir, 'raft'));
  return found;
}

t.test('apply creates the stack\'s secret and config with its services; a second apply writes nothing', async (t) => {
  writeFileSync(join(app, 'db-password.txt'), PW1);
  const r = await apply();
  t.same(actions(r), ['secret/db-password:create', 'config/motd:create', 'service/web:create'], 'secrets and configs first, in one apply');
  const sec = store.getByName('secret', 'db-password') as SecretObject;
  t.same(sec.labels, { team: 'shop', 'io.shoal.stack': 'shop' }, 'labelled with the stack');
  t.equal(keeper.key().open(sec.spec.sealed, secretAad(sec.id)).toString(), PW1, 'the sealed data opens to the file\'s content');
  t.notOk(Buffer.from(sec.spec.sealed).includes(PW1), 'the store holds it sealed');
  t.equal(Buffer.from((store.getByName('config', 'motd') as any).spec.data).toString(), 'hello', 'inline config data as written');
  const web = store.getByName('service', 'web') as ServiceObject;
  t.same(web.spec.task.secrets, [{ id: sec.id, name: 'db-password', target: '/run/secrets/db-password', uid: 0, gid: 0, mode: 0o400 }], 'the service is bound to the secret created with it');
  t.equal(web.spec.task.configs![0]!.id, store.getByName('config', 'motd')!.id);
  t.same(raftFilesContaining(PW1), [], 'no raft file (log, snapshot) holds the secret in clear');

  const version = store.applied;
  const again = await apply();
  t.same(actions(again), ['secret/db-password:unchanged', 'config/motd:unchanged', 'service/web:unchanged'], 'the same content again: no change');
  t.equal(store.applied, version, 'nothing was written');
});

t.test('a changed secret file is refused at its line; nothing is written', async (t) => {
  writeFileSync(join(app, 'db-password.txt'), PW2);
  const version = store.applied;
  const err = await apply().then(() => undefined, (e: Error) => e);
  t.ok(err, 'refused');
  t.match(err!.message, /^the cluster refused the manifest; nothing was applied:\n/);
  t.match(err!.message, new RegExp(`${manifest.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4: secrets\\.db-password\\.file: exists already with other content, and secrets cannot change: to roll it, declare the new content under a new name \\(e\\.g\\. db-password-v2\\) and point the services at it`), 'at the line that names the file');
  t.equal(store.applied, version, 'nothing was written');
  const dry = await apply({ dryRun: true }).then(() => undefined, (e: Error) => e);
  t.match(dry?.message ?? '', /secrets\.db-password\.file: exists already with other content/, 'diff says the same');
});

t.test('the roll: a new name, the service moved to it; --prune keeps the old one while a rollback needs it', async (t) => {
  writeFileSync(join(app, 'db-password-v2.txt'), PW2);
  writeFileSync(manifest, stack('db-password-v2'));
  const version = store.applied;
  const dry = await apply({ prune: true, dryRun: true });
  t.same(actions(dry), ['secret/db-password-v2:create', 'config/motd:unchanged', 'service/web:update', 'secret/db-password:kept'], 'diff: what would happen');
  t.equal(store.applied, version, 'the dry run wrote nothing');
  t.notOk(store.getByName('secret', 'db-password-v2'), 'no secret created by the dry run');

  const r = await apply({ prune: true });
  t.same(actions(r), ['secret/db-password-v2:create', 'config/motd:unchanged', 'service/web:update', 'secret/db-password:kept']);
  t.match(r.changes[3].detail, /kept: the previous revision of service web \(a rollback returns to it\) uses it/);
  t.equal(r.changes[2].rolls, true, 'the service rolls to the new secret');
  const web = store.getByName('service', 'web') as ServiceObject;
  t.equal(web.spec.task.secrets![0]!.id, store.getByName('secret', 'db-password-v2')!.id, 'bound to the new secret');
  t.equal(web.spec.task.secrets![0]!.target, '/run/secrets/db-password', 'at the same path in the container');
  t.ok(store.getByName('secret', 'db-password'), 'the old one is still there');
  t.same(raftFilesContaining(PW2), [], 'the new secret is not in clear in raft either');

  // Once no kept revision uses it (another change of the service), --prune removes it.
  writeFileSync(manifest, stack('db-password-v2').replace('replicas: 0', 'replicas: 1'));
  const later = await apply({ prune: true });
  t.same(actions(later), ['secret/db-password-v2:unchanged', 'config/motd:unchanged', 'service/web:update', 'secret/db-password:prune']);
  t.notOk(store.getByName('secret', 'db-password'), 'pruned');
});

t.test('no answer and no log line carries a secret\'s content', async (t) => {
  t.ok(logs.some((l) => /applied stack shop: .*secret db-password create/.test(l)), 'the log names what was applied');
  t.same(logs.filter((l) => l.includes(PW1) || l.includes(PW2)), [], 'and never the content');
  writeFileSync(manifest, stack('db-password-v2'));
  const r = await apply({ dryRun: true });
  t.notOk(JSON.stringify(r).includes(PW2), 'the answer holds names, actions and sizes only');
});
