// The CLI's calls on shoald's local socket: a connection closed before it spoke (the socket's
// guard closed it to make room for a flood of local connections) is tried again; a socket nobody
// serves fails with a clear message.
import t from 'tap';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { localDef } from '../proto/services.js';
import { call, CliError, localClient } from './client.js';

const dir = mkdtempSync(join(tmpdir(), `shoal-cli-client-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** A real gRPC server answering Local.Info on its own socket. */
async function infoServer(): Promise<{ socket: string; server: grpc.Server }> {
  const server = new grpc.Server();
  server.addService(localDef(), { Info: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { node_id: 'n1', state: 'member' }) });
  const socket = join(dir, 'real.sock');
  await new Promise<void>((res, rej) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
  return { socket, server };
}

/** shoald.sock: closes its first `drop` connections as they are accepted, then forwards to `to`. */
async function front(stateDir: string, to: string, drop: number): Promise<{ accepted: () => number; close: () => void }> {
  let n = 0;
  const open = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    if (++n <= drop) return void s.destroy();
    const up = net.connect(to);
    open.add(s).add(up);
    s.pipe(up).pipe(s);
    const end = () => { s.destroy(); up.destroy(); };
    s.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => srv.listen(join(stateDir, 'shoald.sock'), r));
  return { accepted: () => n, close: () => { for (const s of open) s.destroy(); srv.close(); } };
}

t.test('a connection closed before it spoke is tried again, and the call answers', async (t) => {
  const real = await infoServer();
  const stateDir = mkdtempSync(join(dir, 'a-'));
  const f = await front(stateDir, real.socket, 2);
  const c = localClient({ stateDir });
  try {
    const r = await call<{ node_id: string }>(c, 'Info', {}, 20_000);
    t.equal(r.node_id, 'n1', 'Info answered');
    t.ok(f.accepted() >= 3, `after ${f.accepted() - 1} connections closed by the socket`);
  } finally {
    c.close();
    f.close();
    real.server.forceShutdown();
  }
});

t.test('a socket that keeps closing connections: the call gives up with the reason', async (t) => {
  const stateDir = mkdtempSync(join(dir, 'b-'));
  const f = await front(stateDir, '/nonexistent', 1_000_000);
  const c = localClient({ stateDir });
  try {
    const e = await call(c, 'Info', {}, 20_000).then(() => undefined, (x: unknown) => x);
    t.ok(e instanceof CliError, 'a CliError');
    t.match((e as CliError).message, /cannot reach shoald on .*shoald\.sock \(no connection\)/, (e as CliError).message);
    t.ok(f.accepted() >= 2 && f.accepted() <= 10, `tried a bounded number of times (${f.accepted()} connections)`);
  } finally {
    c.close();
    f.close();
  }
});

t.test('a socket file nobody listens on: connection refused, said as such', async (t) => {
  const stateDir = mkdtempSync(join(dir, 'c-'));
  writeFileSync(join(stateDir, 'shoald.sock'), ''); // connect() to a plain file: ECONNREFUSED
  const c = localClient({ stateDir });
  try {
    const e = await call(c, 'Info', {}, 20_000).then(() => undefined, (x: unknown) => x);
    t.match((e as CliError).message, /cannot reach shoald on .*shoald\.sock \(connection refused\): is it running with that --state-dir\?/, (e as CliError).message);
  } finally {
    c.close();
  }
});
