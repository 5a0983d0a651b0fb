// For the secrets lab test: run on a lab host (`shoal lab exec NODE -- node secrets-probe.js`),
// opens a dispatcher session with that node's own identity (its state dir) and prints, as one JSON
// line, what the manager sends the node in the first (complete) assignments message: the task ids
// and, for each secret and config, its id, name and the SHA-256 of its data (never the data). So
// the test sees exactly what the dispatcher sends a node, not only what the node kept.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, clientCredentials } from '../manager/security/credentials.js';
import { dispatcherDef } from '../proto/services.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

const arg = (k: string) => {
  const i = process.argv.indexOf(`--${k}`);
  if (i < 0 || !process.argv[i + 1]) throw new Error(`usage: secrets-probe --state-dir DIR --manager HOST:PORT --hostname NAME --addr HOST:PORT`);
  return process.argv[i + 1]!;
};
const dir = join(arg('state-dir'), 'identity');
const id = { caPem: readFileSync(join(dir, 'ca.crt'), 'utf8'), certPem: readFileSync(join(dir, 'node.crt'), 'utf8'), keyPem: readFileSync(join(dir, 'node.key'), 'utf8') };
const Ctor = grpc.makeGenericClientConstructor(dispatcherDef(), 'Dispatcher');
const c = new Ctor(arg('manager'), clientCredentials(id), CHANNEL_OPTIONS) as any;
const timer = setTimeout(() => {
  process.stderr.write('secrets-probe: no assignments within 30 s\n');
  process.exit(1);
}, 30_000);
// The node's own hostname and address, so the session records nothing new about it.
const session = c.Session({ hostname: arg('hostname'), addr: arg('addr'), gossip_addr: '', description: null });
session.on('error', (e: grpc.ServiceError) => {
  if (e.code !== grpc.status.CANCELLED) {
    process.stderr.write(`secrets-probe: session: ${e.details ?? e.message}\n`);
    process.exit(1);
  }
});
session.once('data', (m: { session_id: string }) => {
  const a = c.Assignments({ session_id: m.session_id });
  a.on('error', () => {});
  a.once('data', (msg: { type: string; changes: any[] }) => {
    const sum = (d: Buffer) => createHash('sha256').update(d).digest('hex');
    const files = (k: 'secret' | 'config') => msg.changes.filter((ch) => ch[k]).map((ch) => ({ action: ch.action, id: ch[k].id, name: ch[k].name, sha256: sum(ch[k].data) }));
    process.stdout.write(JSON.stringify({ type: msg.type, tasks: msg.changes.filter((ch) => ch.task_id).map((ch) => ch.task_id), secrets: files('secret'), configs: files('config') }) + '\n');
    clearTimeout(timer);
    a.cancel();
    session.cancel();
    c.close();
    setTimeout(() => process.exit(0), 100);
  });
});
