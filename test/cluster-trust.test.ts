// Refusals, each with a clear error and nothing written: a wrong join secret, a token whose CA
// digest does not match (a second cluster's manager in between), a malformed token, a rotated
// token, a worker certificate calling a manager-only RPC, a worker forging a forwarded identity,
// a client with no certificate, and a removed node's certificate.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { controlDef, dispatcherDef, raftMembershipDef } from '../manager/control/service.js';
import { CHANNEL_OPTIONS, clientCredentials, pinnedCredentials } from '../manager/security/credentials.js';
import { TestCluster, waitFor } from './cluster-harness.js';

const c = new TestCluster();
t.teardown(() => c.destroy());

const ids = async (on: string) => (await c.json<{ id: string; hostname: string; version?: number; status: string }[]>(on, 'node', 'ls')).map((n) => n.hostname).sort();

function identity(name: string) {
  const d = join(c.state(name), 'identity');
  return { caPem: readFileSync(join(d, 'ca.crt'), 'utf8'), certPem: readFileSync(join(d, 'node.crt'), 'utf8'), keyPem: readFileSync(join(d, 'node.key'), 'utf8') };
}

function rpc(def: grpc.ServiceDefinition, addr: string, creds: grpc.ChannelCredentials, method: string, req: unknown, md = new grpc.Metadata()): Promise<{ err?: grpc.ServiceError; res?: any }> {
  const Ctor = grpc.makeGenericClientConstructor(def, 'x');
  const cl = new Ctor(addr, creds, CHANNEL_OPTIONS) as any;
  return new Promise((resolve) => {
    const done = (err: grpc.ServiceError | null, res?: unknown) => {
      cl.close();
      resolve(err ? { err } : { res });
    };
    if (def[method]!.responseStream) {
      const s = cl[method](req, md, { deadline: Date.now() + 10_000 });
      s.on('data', (m: unknown) => {
        s.cancel();
        done(null, m);
      });
      s.on('error', (e: grpc.ServiceError) => done(e));
    } else cl[method](req, md, { deadline: Date.now() + 10_000 }, done);
  });
}

let workerToken = '';

t.test('two clusters: A (manager a1, worker aw) and B (manager b1)', async (t) => {
  for (const n of ['a1', 'aw', 'b1', 'x1']) await c.start(n);
  t.equal((await c.cli('a1', 'init')).code, 0);
  t.equal((await c.cli('b1', 'init')).code, 0);
  workerToken = (await c.cli('a1', 'join-token', 'worker', '-q')).stdout.trim();
  const r = await c.cli('aw', 'join', '--token', workerToken, c.addr('a1'));
  t.equal(r.code, 0, r.stderr);
  await waitFor('aw ready', async () => (await c.json('a1', 'node', 'ls')).find((n: any) => n.hostname === 'aw')?.status === 'ready');
});

t.test('join with a wrong secret is refused; nothing written', async (t) => {
  const before = await ids('a1');
  const digest = workerToken.split('-')[2];
  const bad = `SHL-1-${digest}-${'0'.repeat(24)}1`;
  const r = await c.cli('x1', 'join', '--token', bad, c.addr('a1'));
  t.equal(r.code, 1);
  t.match(r.stderr, /refused the join: the join token's secret is not valid for this cluster/);
  t.same(await ids('a1'), before, 'no node object was created');
  t.notOk(existsSync(join(c.state('x1'), 'identity', 'node.json')), 'the joiner stored no identity');
});

t.test('a token whose CA digest does not match (a man in the middle) is refused naming both digests', async (t) => {
  const a = await c.json('a1', 'cluster', 'inspect');
  const b = await c.json('b1', 'cluster', 'inspect');
  const beforeA = await ids('a1');
  const beforeB = await ids('b1');
  // x1 holds A's token but the address it dials is B's manager.
  const r = await c.cli('x1', 'join', '--token', workerToken, c.addr('b1'));
  t.equal(r.code, 1);
  t.match(r.stderr, `its CA bundle has digest ${b.caDigest}, but the token expects ${a.caDigest}`);
  t.same(await ids('a1'), beforeA);
  t.same(await ids('b1'), beforeB, 'B wrote nothing: the CSR was never sent');
  t.notOk(existsSync(join(c.state('x1'), 'identity', 'node.json')));
});

t.test('malformed and rotated tokens are refused', async (t) => {
  const r = await c.cli('x1', 'join', '--token', 'SHL-1-abc-def', c.addr('a1'));
  t.equal(r.code, 1);
  t.match(r.stderr, /CA digest must be 50 characters, got 3: the token was cut or padded/);
  const rot = await c.cli('a1', 'join-token', 'worker', '--rotate', '-q');
  t.equal(rot.code, 0, rot.stderr);
  const fresh = rot.stdout.trim();
  t.not(fresh, workerToken, 'rotation changes the secret');
  t.equal(fresh.split('-')[2], workerToken.split('-')[2], 'and keeps the CA digest');
  const old = await c.cli('x1', 'join', '--token', workerToken, c.addr('a1'));
  t.equal(old.code, 1);
  t.match(old.stderr, /secret is not valid for this cluster \(wrong or rotated token\)/);
  t.same(await ids('a1'), ['a1', 'aw']);
});

t.test('a worker certificate cannot call a manager-only RPC; nothing written', async (t) => {
  const before = await c.json('a1', 'node', 'ls');
  const ls = await c.cliRaw(['--state-dir', c.state('aw'), '--host', c.addr('a1'), 'node', 'ls']);
  t.equal(ls.code, 1);
  t.match(ls.stderr, /Control\.ListNodes is allowed for manager nodes only; the caller \w+ is a worker/);
  const up = await c.cliRaw(['--state-dir', c.state('aw'), '--host', c.addr('a1'), 'node', 'update', '--availability', 'drain', 'a1']);
  t.equal(up.code, 1);
  t.match(up.stderr, /Control\.UpdateNode is allowed for manager nodes only/);
  const tok = await rpc(controlDef(), c.addr('a1'), clientCredentials(identity('aw')), 'GetJoinTokens', { rotate_manager: true });
  t.equal(tok.err?.code, grpc.status.PERMISSION_DENIED, 'a worker cannot read or rotate join tokens');
  // A worker pretending to forward a manager's call.
  const md = new grpc.Metadata();
  const a1 = before.find((n: any) => n.hostname === 'a1');
  md.set('shoal-fwd-node', a1.id);
  md.set('shoal-fwd-role', 'manager');
  md.set('shoal-fwd-cluster', 'x');
  const fwd = await rpc(controlDef(), c.addr('a1'), clientCredentials(identity('aw')), 'UpdateNode', { id: a1.id, availability: 'drain' }, md);
  t.equal(fwd.err?.code, grpc.status.PERMISSION_DENIED);
  t.match(fwd.err?.details, /a forwarded identity is only trusted from a manager certificate/);
  const after = await c.json('a1', 'node', 'ls');
  t.same(after, before, 'no node changed');
  // The same certificate may use worker RPCs.
  const sess = await rpc(dispatcherDef(), c.addr('a1'), clientCredentials(identity('aw')), 'Session', { hostname: 'aw' });
  t.ok(sess.res?.session_id, 'the worker certificate opens a dispatcher session');
});

t.test("a manager cannot overwrite a raft member's address, nor join again under another id", async (t) => {
  const a1 = identity('a1');
  const before = (await c.json('a1', 'cluster', 'inspect')).managers;
  const moved = await rpc(raftMembershipDef(), c.addr('a1'), clientCredentials(a1), 'Join', { raft_addr: '10.1.2.3:4243', raft_id: before[0].raftId });
  t.equal(moved.err?.code, grpc.status.PERMISSION_DENIED, 'an address that is not the caller\'s own is refused');
  t.match(moved.err?.details, /asks to be reached at 10\.1\.2\.3:4243 but connects from 127\.0\.0\.1/);
  const own = before[0].addr as string;
  const twice = await rpc(raftMembershipDef(), c.addr('a1'), clientCredentials(a1), 'Join', { raft_addr: own, raft_id: 12345 });
  t.equal(twice.err?.code, grpc.status.FAILED_PRECONDITION, 'a second membership of a current member is refused');
  t.match(twice.err?.details, /is already raft member \d+; it cannot join again as 12345/);
  const otherPort = `${own.split(':')[0]}:1`;
  const voterMove = await rpc(raftMembershipDef(), c.addr('a1'), clientCredentials(a1), 'Join', { raft_addr: otherPort, raft_id: before[0].raftId });
  t.equal(voterMove.err?.code, grpc.status.FAILED_PRECONDITION, "a voter's address is not changed by a join");
  t.match(voterMove.err?.details, /is a voter at .*its raft address cannot be changed/);
  t.same((await c.json('a1', 'cluster', 'inspect')).managers.map((m: any) => [m.raftId, m.addr]), before.map((m: any) => [m.raftId, m.addr]), 'nothing changed');
});

t.test('an unreachable manager: the CLI says what it could not reach and what to check', async (t) => {
  const r = await c.cliRaw(['--state-dir', c.state('a1'), '--host', '127.0.0.1:1', 'node', 'ls']);
  t.equal(r.code, 1);
  t.match(r.stderr, /cannot reach the manager at 127\.0\.0\.1:1 \(connection refused\): is shoald running there/);
  t.notMatch(r.stderr, /Resolution note/, 'no raw gRPC text');
});

t.test('a client with no certificate is refused', async (t) => {
  const ca = identity('a1').caPem;
  const r = await rpc(controlDef(), c.addr('a1'), pinnedCredentials(ca), 'ListNodes', {});
  t.equal(r.err?.code, grpc.status.UNAUTHENTICATED);
  t.match(r.err?.details, /needs a client certificate signed by this cluster's CA/);
  const s = await rpc(dispatcherDef(), c.addr('a1'), pinnedCredentials(ca), 'Session', {});
  t.equal(s.err?.code, grpc.status.UNAUTHENTICATED);
  // Another cluster's certificate is not verified by A's CA: the same as none.
  const bId = identity('b1');
  const other = await rpc(controlDef(), c.addr('a1'), clientCredentials({ ...bId, caPem: ca }), 'ListNodes', {});
  t.equal(other.err?.code, grpc.status.UNAUTHENTICATED, "cluster B's manager certificate is refused by A");
});

t.test("a removed node's certificate is refused from then on", async (t) => {
  const aw = identity('aw');
  const live = await c.cli('a1', 'node', 'rm', 'aw');
  t.equal(live.code, 1, 'a ready node is not removed without --force');
  t.match(live.stderr, /is ready, not down: stop it .* or use --force/);
  const mgr = await c.cli('a1', 'node', 'rm', 'a1');
  t.match(mgr.stderr, /is a manager: demote it first/);
  await c.kill('aw');
  await waitFor('aw down', async () => (await c.json('a1', 'node', 'ls')).find((n: any) => n.hostname === 'aw')?.status === 'down');
  const rm = await c.cli('a1', 'node', 'rm', 'aw');
  t.equal(rm.code, 0, rm.stderr);
  t.same(await ids('a1'), ['a1']);
  for (const method of ['Session', 'Heartbeat']) {
    const r = await rpc(dispatcherDef(), c.addr('a1'), clientCredentials(aw), method, { session_id: 'x' });
    t.equal(r.err?.code, grpc.status.PERMISSION_DENIED, `${method} refused`);
    t.match(r.err?.details, /is refused: the node was removed from the cluster/);
  }
  const renew = await rpc((await import('../manager/control/service.js')).caDef(), c.addr('a1'), clientCredentials(aw), 'RenewNodeCertificate', { csr: Buffer.from('x') });
  t.equal(renew.err?.code, grpc.status.PERMISSION_DENIED, 'a removed node cannot renew its certificate');
  // Restarted, the removed node cannot get back in.
  await c.start('aw');
  await new Promise((r) => setTimeout(r, 3000));
  t.same(await ids('a1'), ['a1'], 'the restarted removed node did not reappear');
});

t.test('shoal leave: a manager is refused without --force; a worker leaves and is marked down', async (t) => {
  const m = await c.cli('a1', 'leave');
  t.equal(m.code, 1);
  t.match(m.stderr, /this node is a manager: .*demote it first/);
  const tok = (await c.cli('a1', 'join-token', 'worker', '-q')).stdout.trim();
  const j = await c.cli('x1', 'join', '--token', tok, c.addr('a1'));
  t.equal(j.code, 0, `the current (rotated) token works: ${j.stderr}`);
  await waitFor('x1 ready', async () => (await c.json('a1', 'node', 'ls')).find((n: any) => n.hostname === 'x1')?.status === 'ready');
  const l = await c.cli('x1', 'leave');
  t.equal(l.code, 0, l.stderr);
  t.notOk(existsSync(join(c.state('x1'), 'identity', 'node.json')), 'the identity is gone');
  await waitFor('x1 down after its leave', async () => (await c.json('a1', 'node', 'ls')).find((n: any) => n.hostname === 'x1')?.status === 'down');
  t.equal((await c.cli('a1', 'node', 'rm', 'x1')).code, 0);
  t.same(await ids('a1'), ['a1']);
});

t.test('certificates renew themselves at 50-80 % of their life (a cluster with 20 s certificates)', async (t) => {
  await c.start('c1');
  await c.start('cw');
  const init = await c.cli('c1', 'init', '--cert-expiry', '20s');
  t.equal(init.code, 0, init.stderr);
  const tok = (await c.cli('c1', 'join-token', 'worker', '-q')).stdout.trim();
  t.equal((await c.cli('cw', 'join', '--token', tok, c.addr('c1'))).code, 0);
  const first = await waitFor('both nodes ready', async () => {
    const r = await c.json('c1', 'node', 'ls');
    return r.length === 2 && r.every((n: any) => n.status === 'ready') && r;
  });
  const serial = (rows: any[], h: string) => rows.find((n) => n.hostname === h).certSerial;
  const t0 = Date.now();
  const renewed = await waitFor('both certificates renewed', async () => {
    const r = await c.json('c1', 'node', 'ls');
    return r.every((n: any) => n.certSerial !== serial(first, n.hostname)) && r;
  }, 60_000, 500);
  t.comment(`both nodes renewed ${Date.now() - t0} ms after they were ready (validity 20 s)`);
  t.not(serial(renewed, 'cw'), serial(first, 'cw'), 'the worker has a new certificate');
  t.not(serial(renewed, 'c1'), serial(first, 'c1'), 'the manager has a new certificate');
  // Past the first certificates' expiry, everything still works on the renewed ones.
  await new Promise((r) => setTimeout(r, Math.max(0, 21_000 - (Date.now() - t0))));
  const later = await c.json('c1', 'node', 'ls');
  t.ok(later.every((n: any) => n.status === 'ready'), 'both nodes still ready after the first certificates expired');
  const tls = await c.cliRaw(['--state-dir', c.state('c1'), '--host', c.addr('c1'), 'node', 'ls', '--format', 'json']);
  t.equal(tls.code, 0, `a new mTLS connection (renewed client and server certificates) works: ${tls.stderr}`);
  const ci = await c.json('c1', 'cluster', 'inspect');
  t.equal(ci.certValiditySeconds, 20);
  const bad = await c.cli('x1', 'init', '--cert-expiry', '5s');
  t.match(bad.stderr, /certificate expiry must be at least 10 s/);
});
