// The node's plugin registry with real plugins: the built-in CSI driver registers through its
// socket; a second driver process under another name registers too; removing a socket or
// killing its process deregisters it; sockets that answer garbage, never answer, or offer the
// wrong type are refused with a clear message while the others keep working. The misbehaving
// plugins are small servers made here: they stand for broken or foreign third-party plugins.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { createServer, type Server } from 'node:net';
import { existsSync, mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { registrationService, type RegistrationStatus } from '../../proto/pluginregistration/v1/registration.js';
import { startDriverProc, type DriverProc } from '../../csi/testing/driver-proc.js';
import { leftovers, sweep, testDir } from '../../csi/testing/leaks.js';
import { PluginRegistry } from './registry.js';

const dir = testDir('registry');
const reg = join(dir, 'plugins_registry');
const pool = join(dir, 'pool');
const node = `r-${process.pid}`;
const cleanups: (() => Promise<void> | void)[] = [];
let registry: PluginRegistry;

t.teardown(async () => {
  await registry?.stop();
  for (const c of cleanups.reverse()) await c();
  const left = leftovers(dir);
  sweep(dir);
  if (left.loops.length + left.mounts.length > 0) throw new Error(`left behind: ${JSON.stringify(left)}`);
});

const until = async (f: () => unknown, what: string, ms = 30_000) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; the registry said: ${logs.slice(-8).join(' | ')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};
const logs: string[] = [];
const driver = async (name?: string): Promise<DriverProc> => {
  const p = await startDriverProc({ socket: join(dir, `${name ?? 'builtin'}.sock`), pool, nodeId: node, registryDir: reg, name });
  cleanups.push(() => p.kill());
  return p;
};

/** A Registration server answering GetInfo with `info`; records what it is told. */
async function fakePlugin(file: string, info: object): Promise<{ told: RegistrationStatus[]; stop: () => Promise<void> }> {
  const told: RegistrationStatus[] = [];
  const server = new grpc.Server();
  server.addService(registrationService().service, {
    GetInfo: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, info),
    NotifyRegistrationStatus: (c: grpc.ServerUnaryCall<RegistrationStatus, unknown>, cb: grpc.sendUnaryData<unknown>) => { told.push(c.request); cb(null, {}); },
  });
  await new Promise<void>((res, rej) => server.bindAsync(`unix://${join(reg, file)}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
  const stop = () => new Promise<void>((res) => server.tryShutdown(() => res()));
  cleanups.push(stop);
  return { told, stop };
}

/** A raw Unix socket server: `garbage` writes junk and hangs up; `silent` accepts and says nothing. */
async function rawSocket(file: string, mode: 'garbage' | 'silent'): Promise<Server> {
  const conns = new Set<import('node:net').Socket>();
  const s = createServer((c) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
    c.on('error', () => {});
    if (mode === 'garbage') c.end(Buffer.from('HTTP/1.0 418 I am a teapot\r\n\r\n\u0000\u0001 not grpc at all'));
  });
  await new Promise<void>((r) => s.listen(join(reg, file), r));
  cleanups.push(() => new Promise<void>((r) => { for (const c of conns) c.destroy(); s.close(() => r()); }));
  return s;
}

t.test('the built-in driver registers by its socket', async (t) => {
  mkdirSync(reg, { recursive: true });
  const builtin = await driver();
  registry = new PluginRegistry({ dir: reg, timeoutMs: 5000, rescanMs: 300, retryMs: 60_000, log: (m) => logs.push(m) });
  const events: string[] = [];
  registry.on('registered', (p) => events.push(`+${p.name}`));
  registry.on('deregistered', (p, why) => events.push(`-${p.name}: ${why}`));
  await registry.start();
  const [p] = registry.list();
  t.match(p, {
    kind: 'CSIPlugin', name: 'block.csi.shoal.io', endpoint: join(dir, 'builtin.sock'), versions: ['1.0.0'], version: '1.0.0',
    socket: join(reg, 'block.csi.shoal.io-reg.sock'),
    csi: { nodeId: node, topology: { 'topology.shoal.io/pool': /^pool-/ }, maxVolumesPerNode: 0, stages: true },
  }, 'listed with kind, name, endpoint, versions and the CSI node id and topology');
  await until(() => /registered with the node/.test(builtin.stderr()), 'the driver to be told');
  t.pass('the driver was told it is registered (NotifyRegistrationStatus)');
  t.same(events, ['+block.csi.shoal.io']);
});

t.test('a second driver under another name registers too; removing its socket deregisters it', async (t) => {
  const second = await driver('second.csi.example.org');
  await until(() => registry.get('CSIPlugin', 'second.csi.example.org'), 'the second driver to register');
  t.same(registry.list().map((p) => p.name), ['block.csi.shoal.io', 'second.csi.example.org'], 'both listed');
  const gone = new Promise((r) => registry.once('deregistered', (p, why) => r(`${p.name}: ${why}`)));
  unlinkSync(join(reg, 'second.csi.example.org-reg.sock'));
  t.equal(await gone, 'second.csi.example.org: its socket was removed', 'its socket removed: deregistered');
  t.same(registry.list().map((p) => p.name), ['block.csi.shoal.io'], 'the other stays');
  await second.kill();
});

t.test('a plugin whose process died (socket left behind) is deregistered, and its stale socket refused', async (t) => {
  const third = await driver('third.csi.example.org');
  await until(() => registry.get('CSIPlugin', 'third.csi.example.org'), 'the third driver to register');
  const gone = new Promise((r) => registry.once('deregistered', (_p, why) => r(why)));
  await third.kill('SIGKILL');
  t.ok(existsSync(join(reg, 'third.csi.example.org-reg.sock')), 'SIGKILL left its socket file');
  t.match(await gone, /nothing listens on|closed the connection/, 'deregistered: its socket no longer takes connections');
  t.notOk(registry.get('CSIPlugin', 'third.csi.example.org'));
  const stale = join(reg, 'third.csi.example.org-reg.sock');
  await until(() => registry.refused().some((r) => r.socket === stale), 'the stale socket to be refused');
  t.match(registry.refused().find((r) => r.socket === stale)!.reason, /nothing listens on it \(a stale socket of a plugin that is gone\?\)/, 'its stale socket: refused, saying so');
  unlinkSync(stale);
});

t.test('garbage, silence and the wrong type are refused; nothing else breaks', async (t) => {
  const refusals = new Map<string, string>();
  registry.on('refused', (r) => refusals.set(r.socket.split('/').pop()!, r.reason));
  await rawSocket('garbage.sock', 'garbage');
  await rawSocket('silent.sock', 'silent');
  const device = await fakePlugin('device.sock', { type: 'DevicePlugin', name: 'gpu.example.com', endpoint: '', supported_versions: ['v1beta1'] });
  const foo = await fakePlugin('foo.sock', { type: 'FooPlugin', name: 'foo', endpoint: '', supported_versions: ['1.0.0'] });
  const newer = await fakePlugin('v2.sock', { type: 'CSIPlugin', name: 'future.csi.example.org', endpoint: join(dir, 'builtin.sock'), supported_versions: ['2.0.0'] });
  const liar = await fakePlugin('liar.sock', { type: 'CSIPlugin', name: 'liar.csi.example.org', endpoint: join(dir, 'builtin.sock'), supported_versions: ['1.0.0'] });
  const dup = await fakePlugin('dup.sock', { type: 'CSIPlugin', name: 'block.csi.shoal.io', endpoint: join(dir, 'builtin.sock'), supported_versions: ['1.0.0'] });
  const noEndpoint = await fakePlugin('noend.sock', { type: 'CSIPlugin', name: 'gone.csi.example.org', endpoint: join(dir, 'no-such.sock'), supported_versions: ['1.0.0'] });
  writeFileSync(join(reg, 'notes.txt'), 'not a socket');
  await until(() => refusals.size >= 8, 'eight refusals', 40_000);
  t.match(refusals.get('garbage.sock'), /does not speak gRPC plugin registration|INTERNAL|UNAVAILABLE/, `garbage: ${refusals.get('garbage.sock')}`);
  t.match(refusals.get('silent.sock'), /did not answer within 5000 ms|does not speak/, `silence: ${refusals.get('silent.sock')}`);
  t.match(refusals.get('device.sock'), /DevicePlugin is a kubelet plugin type shoal does not take/, 'a device plugin');
  t.match(refusals.get('foo.sock'), /unknown plugin type "FooPlugin"/, 'an unknown type');
  t.match(refusals.get('v2.sock'), /has none shoal speaks for CSIPlugin/, 'a CSI version shoal does not speak');
  t.match(refusals.get('liar.sock'), /calls itself "block.csi.shoal.io", but registered as "liar.csi.example.org"/, 'a name that is not the driver\'s');
  t.match(refusals.get('dup.sock'), /CSIPlugin block.csi.shoal.io is already registered by .*block.csi.shoal.io-reg.sock/, 'a name taken by another socket');
  t.match(refusals.get('noend.sock'), /no-such.sock does not exist/, 'an endpoint that is not there');
  t.notOk(refusals.has('notes.txt'), 'a regular file is not a plugin');
  t.same(device.told, [{ plugin_registered: false, error: refusals.get('device.sock') }], 'a refused plugin is told why (NotifyRegistrationStatus)');
  t.equal(foo.told[0]?.plugin_registered, false);
  t.same(registry.list().map((p) => p.name), ['block.csi.shoal.io'], 'the registered plugin stays registered');
  t.same(registry.refused().map((r) => r.socket.split('/').pop()).sort(), [...refusals.keys()].sort(), 'refused() lists them with their reasons');

  // Still working: a good plugin arriving now is registered.
  await driver('fourth.csi.example.org');
  await until(() => registry.get('CSIPlugin', 'fourth.csi.example.org'), 'a good plugin after the bad ones');
  t.pass('a good plugin after them registers');
  for (const p of [newer, liar, dup, noEndpoint]) await p.stop();
});

t.test('a refused socket replaced by a working plugin is registered', async (t) => {
  const file = join(reg, 'net-reg.sock');
  const bad = await fakePlugin('net-reg.sock', { type: 'ShoalNetworkPlugin', name: 'overlay.shoal.io', endpoint: join(dir, 'net.sock'), supported_versions: ['v1'] });
  await until(() => registry.refused().some((r) => r.socket === file), 'the network plugin to be refused (its endpoint is not up)');
  t.match(registry.refused().find((r) => r.socket === file)!.reason, /net.sock does not exist/);
  await bad.stop();
  try { unlinkSync(file); } catch { /* removed by the server */ }
  // The plugin's own endpoint comes up, and it registers again (a new socket).
  const endpoint = createServer(() => {});
  await new Promise<void>((r) => endpoint.listen(join(dir, 'net.sock'), r));
  cleanups.push(() => new Promise<void>((r) => endpoint.close(() => r())));
  await fakePlugin('net-reg.sock', { type: 'ShoalNetworkPlugin', name: 'overlay.shoal.io', endpoint: join(dir, 'net.sock'), supported_versions: ['v1'] });
  await until(() => registry.get('ShoalNetworkPlugin', 'overlay.shoal.io'), 'the network plugin to register');
  t.match(registry.get('ShoalNetworkPlugin', 'overlay.shoal.io'), { kind: 'ShoalNetworkPlugin', endpoint: join(dir, 'net.sock'), version: 'v1' }, 'registered');
});
