// The agent's session keeps going through a slow heartbeat answer, and ends when the manager no
// longer knows it. The manager here is a stand-in Dispatcher (the real gRPC service definition,
// over real mTLS) whose Heartbeat the test controls: it stands for a manager too busy to answer
// in time, which the real dispatcher cannot be made to be on demand.
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { createKeyAndCSR, createRootCA, issueNodeCertificate } from '../../manager/ca/pki.js';
import { ServerTls, type TlsIdentity } from '../../manager/security/credentials.js';
import { dispatcherDef } from '../../proto/services.js';
import { Agent } from './agent.js';

const ca = await createRootCA('cl');
async function ident(nodeId: string, role: 'manager' | 'worker'): Promise<TlsIdentity> {
  const { keyPem, csrPem } = await createKeyAndCSR();
  return { caPem: ca.certPem, certPem: (await issueNodeCertificate({ ca, csrPem, nodeId, role, clusterId: 'cl' })).certPem, keyPem };
}
const mgrId = await ident('m1', 'manager');
// The heartbeat period the stand-in asks for (each heartbeat's deadline too): short for a quick
// test, long enough that timers a loaded machine runs late (300 ms was not) still fit in the
// manager's grace of 3 periods.
const PERIOD_MS = 1000;
const workerId = await ident('w1', 'worker');

interface Stand {
  sessions: number;
  beats: number;
  /** What the next heartbeats do, in order ('ok' once the list is empty). */
  plan: ('ok' | 'silent' | 'unknown')[];
  addr: string;
  server: grpc.Server;
}

async function standIn(): Promise<Stand> {
  const st: Stand = { sessions: 0, beats: 0, plan: [], addr: '', server: new grpc.Server() };
  const open = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  st.server.addService(dispatcherDef(), {
    Session: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      st.sessions++;
      open.add(call);
      call.on('cancelled', () => open.delete(call));
      call.write({ session_id: `s${st.sessions}`, node_id: 'w1', role: 'worker', availability: 'active', managers: [], gossip_key: Buffer.alloc(0), heartbeat_period_ms: PERIOD_MS });
    },
    Heartbeat: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      st.beats++;
      const what = st.plan.shift() ?? 'ok';
      if (what === 'silent') return; // never answered: the agent's deadline passes
      if (what === 'unknown') return cb({ code: grpc.status.NOT_FOUND, details: 'session unknown' } as grpc.ServiceError, null);
      cb(null, { period_ms: PERIOD_MS });
    },
    Assignments: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      call.write({ type: 'complete', applies_to: '', results_in: '1', changes: [] });
    },
    UpdateTaskStatus: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {}),
    LogSubscriptions: (call: grpc.ServerWritableStream<unknown, unknown>) => call.end(),
    PublishLogs: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { cancelled: true }),
  });
  const port = await new Promise<number>((res, rej) => st.server.bindAsync('127.0.0.1:0', new ServerTls(mgrId), (e, p) => (e ? rej(e) : res(p))));
  st.addr = `127.0.0.1:${port}`;
  return st;
}

async function until(what: string, f: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function agentFor(st: Stand): Agent {
  return new Agent({ tls: () => workerId, hostname: 'w1', addr: '', gossipAddr: () => '', managers: () => [st.addr], onSession: () => {}, log: () => {} });
}

t.test('a heartbeat answered too late is tried again: the session goes on', async (t) => {
  const st = await standIn();
  t.teardown(() => st.server.forceShutdown());
  const a = agentFor(st);
  t.teardown(() => a.stop());
  a.start();
  await until('a session', () => a.connected);
  st.plan.push('silent');
  const beats = st.beats;
  await until('the heartbeat after the unanswered one, answered', () => st.beats >= beats + 3);
  t.equal(st.sessions, 1, 'still the first session');
  t.ok(a.connected);
});

t.test('a manager that no longer knows the session: the agent opens a new one', async (t) => {
  const st = await standIn();
  t.teardown(() => st.server.forceShutdown());
  const a = agentFor(st);
  t.teardown(() => a.stop());
  a.start();
  await until('a session', () => a.connected);
  st.plan.push('unknown');
  await until('a second session', () => st.sessions >= 2);
  t.pass('reconnected');
});

t.test('heartbeats unanswered for the manager\'s whole grace period end the session', async (t) => {
  const st = await standIn();
  t.teardown(() => st.server.forceShutdown());
  const a = agentFor(st);
  t.teardown(() => a.stop());
  a.start();
  await until('a session', () => a.connected);
  st.plan.push('silent', 'silent', 'silent', 'silent', 'silent', 'silent');
  await until('a second session', () => st.sessions >= 2);
  t.ok(st.beats >= 2, `tried ${st.beats} times (a retry) before giving up`);
});
