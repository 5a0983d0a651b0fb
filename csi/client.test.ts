// The CSI client helpers against drivers that misbehave or lack parts: the retry policy (what
// is retried, within which deadline), waiting for a driver that is still starting, and calls a
// plugin's capabilities make unnecessary. The drivers here are small gRPC servers made in the
// test, standing for third-party CSI drivers (a flaky one, one without attach or staging).
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { csiServices } from '../proto/csi/v1/csi.js';
import { CsiCallError, CsiClient, grpcAddress, mountCapability, volumePaths } from './client.js';
import { sweep, testDir } from './testing/leaks.js';

const dir = testDir('client');
t.teardown(() => sweep(dir));

type Impl = Record<string, (req: any) => unknown>; // eslint-disable-line @typescript-eslint/no-explicit-any
let n = 0;
/** Serves csi.v1 with the given methods; a method may throw { code } to fail. Records calls. */
async function fakeDriver(impl: { identity?: Impl; controller?: Impl; node?: Impl }, socket = join(dir, `d${++n}.sock`)) {
  const calls: string[] = [];
  const wrap = (m: Impl) => Object.fromEntries(Object.entries(m).map(([k, f]) => [k, (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    calls.push(k);
    try { const r = f(call.request); if (r !== undefined) cb(null, r); } catch (e) { const err = e as { code: number; msg?: string }; cb({ code: err.code, details: err.msg ?? 'fake failure' } as grpc.ServiceError); }
  }]));
  const s = csiServices();
  const server = new grpc.Server();
  server.addService(s.Identity.service, wrap({ GetPluginInfo: () => ({ name: 'fake.csi.example.org', vendor_version: '1' }), Probe: () => ({}), GetPluginCapabilities: () => ({ capabilities: [{ service: { type: 1 } }] }), ...impl.identity }));
  server.addService(s.Controller.service, wrap({ ControllerGetCapabilities: () => ({ capabilities: [] }), ...impl.controller }));
  server.addService(s.Node.service, wrap({ NodeGetCapabilities: () => ({ capabilities: [] }), ...impl.node }));
  await new Promise<void>((res, rej) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
  t.teardown(() => new Promise<void>((r) => server.tryShutdown(() => r())));
  return { socket, calls, server };
}

t.test('ABORTED, UNAVAILABLE and DEADLINE_EXCEEDED are retried; the rest is not', async (t) => {
  let left = 2;
  const d = await fakeDriver({ controller: {
    DeleteVolume: () => { if (left-- > 0) throw { code: grpc.status.ABORTED, msg: 'operation pending' }; return {}; },
    ControllerExpandVolume: () => { throw { code: grpc.status.FAILED_PRECONDITION, msg: 'in use' }; },
    CreateVolume: () => undefined, // never answers
  } });
  const c = new CsiClient(d.socket, { timeoutMs: 3000 });
  await c.deleteVolume('v1');
  t.equal(d.calls.filter((x) => x === 'DeleteVolume').length, 3, 'ABORTED twice, then done: three attempts');
  const e1 = await c.controllerExpand('v1', 1 << 30).catch((e) => e);
  t.ok(e1 instanceof CsiCallError && e1.codeName === 'FAILED_PRECONDITION' && e1.attempts === 1, 'FAILED_PRECONDITION: returned at once, with its code');
  t.equal(d.calls.filter((x) => x === 'ControllerExpandVolume').length, 1);
  const t0 = Date.now();
  const e2 = await c.createVolume({ name: 'x', capabilities: [mountCapability('SINGLE_NODE_WRITER')] }, { timeoutMs: 1200, attemptTimeoutMs: 300 }).catch((e) => e);
  t.ok(e2 instanceof CsiCallError && e2.codeName === 'DEADLINE_EXCEEDED', `a driver that does not answer: DEADLINE_EXCEEDED (${e2.message})`);
  t.ok(e2.attempts > 1, `retried within the overall deadline (${e2.attempts} attempts)`);
  t.ok(Date.now() - t0 < 3000, 'and gave up at it');
  left = 1;
  const e3 = await c.deleteVolume('v2', {}, { retry: false }).catch((e) => e);
  t.equal(e3.codeName, 'ABORTED', 'retry: false: one attempt');
  c.close();
});

t.test('a driver that is still starting is waited for within the deadline', async (t) => {
  const socket = join(dir, 'late.sock');
  const c = new CsiClient(socket, { timeoutMs: 5000 });
  const probing = c.probe();
  await new Promise((r) => setTimeout(r, 400));
  await fakeDriver({}, socket);
  t.equal(await probing, true, 'Probe answered once the driver came up');
  c.close();
});

t.test('a plugin without attach or staging: the helpers skip those calls', async (t) => {
  const d = await fakeDriver({ node: { NodePublishVolume: (r) => { t.equal(r.staging_target_path, '', 'publish without a staging path'); return {}; }, NodeUnpublishVolume: () => ({}) } });
  const c = new CsiClient(d.socket);
  const caps = await c.capabilities();
  t.notOk(caps.controller.has('PUBLISH_UNPUBLISH_VOLUME'));
  t.same(await c.controllerPublish({ volumeId: 'v', nodeId: 'n', capability: mountCapability('SINGLE_NODE_WRITER') }), {}, 'controllerPublish: {} without a call');
  await c.controllerUnpublish('v', 'n');
  await c.mountVolume({ volumeId: 'v', staging: '/s', target: '/t', capability: mountCapability('SINGLE_NODE_WRITER') });
  await c.unmountVolume({ volumeId: 'v', staging: '/s', target: '/t' });
  t.notOk(d.calls.some((x) => /ControllerPublish|ControllerUnpublish|NodeStage|NodeUnstage/.test(x)), `no attach or stage calls (${d.calls.join(', ')})`);
  c.close();
});

t.test('paths and addresses', async (t) => {
  const p = volumePaths('/var/lib/shoal', 'block.csi.shoal.io', 'vol-1', 'task 7');
  t.match(p.staging, /^\/var\/lib\/shoal\/csi\/block.csi.shoal.io\/staging\/[0-9a-f]{24}$/, 'one staging path per volume');
  t.match(p.target, /^\/var\/lib\/shoal\/csi\/block.csi.shoal.io\/publish\/[0-9a-f]{24}\/task_7$/, 'one target per consumer');
  t.not(volumePaths('/s', 'd', 'vol-2', 'x').staging, volumePaths('/s', 'd', 'vol-1', 'x').staging);
  t.equal(grpcAddress('/run/csi.sock'), 'unix:///run/csi.sock');
  t.equal(grpcAddress('unix:///run/csi.sock'), 'unix:///run/csi.sock');
  t.throws(() => grpcAddress('tcp://10.0.0.1:9000'), /must be a Unix socket/);
});
