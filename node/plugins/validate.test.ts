// A plugin's GetInfo answer: what the registry takes and what it refuses, and why. Pure.
import t from 'tap';
import { parseVersion, validateInfo } from './validate.js';

const sock = '/var/lib/shoal/plugins_registry/x-reg.sock';
const good = { type: 'CSIPlugin', name: 'block.csi.shoal.io', endpoint: '/run/csi.sock', supported_versions: ['1.0.0'] };

t.test('taken', async (t) => {
  t.same(validateInfo(good, sock), { kind: 'CSIPlugin', name: 'block.csi.shoal.io', endpoint: '/run/csi.sock', versions: ['1.0.0'], version: '1.0.0' });
  t.equal(validateInfo({ ...good, endpoint: 'unix:///run/csi.sock' }, sock).endpoint, '/run/csi.sock', 'unix:// endpoints');
  t.equal(validateInfo({ ...good, endpoint: '' }, sock).endpoint, sock, 'no endpoint: the registration socket itself (as the kubelet does)');
  t.equal(validateInfo({ ...good, supported_versions: ['0.3.0', '1.2.0', 'v1.10', '2.0.0'] }, sock).version, 'v1.10', 'the highest version shoal speaks');
  t.equal(validateInfo({ ...good, type: 'ShoalNetworkPlugin', supported_versions: ['v1'] }, sock).kind, 'ShoalNetworkPlugin');
  t.equal(validateInfo({ ...good, type: 'ShoalRuntimePlugin', supported_versions: ['v1'] }, sock).kind, 'ShoalRuntimePlugin');
});

t.test('refused, saying why', async (t) => {
  const cases: [string, object, RegExp][] = [
    ['a device plugin', { type: 'DevicePlugin' }, /DevicePlugin is a kubelet plugin type shoal does not take/],
    ['an unknown type', { type: 'FooPlugin' }, /unknown plugin type "FooPlugin" \(shoal takes CSIPlugin, ShoalNetworkPlugin, ShoalRuntimePlugin\)/],
    ['no type', { type: '' }, /unknown plugin type ""/],
    ['no name', { name: '' }, /plugin name "" is not valid/],
    ['a name with a slash', { name: 'a/b' }, /not valid/],
    ['a 64-character name', { name: 'a'.repeat(64) }, /not valid/],
    ['a relative endpoint', { endpoint: 'csi.sock' }, /must be an absolute path/],
    ['a TCP endpoint', { endpoint: 'tcp://1.2.3.4:5' }, /must be an absolute path/],
    ['no versions', { supported_versions: [] }, /supported_versions is empty/],
    ['only versions shoal does not speak', { supported_versions: ['0.3.0', '2.0.0', 'latest'] }, /has none shoal speaks for CSIPlugin \(major version 1\)/],
  ];
  for (const [name, patch, msg] of cases) t.throws(() => validateInfo({ ...good, ...patch }, sock), msg, name);
  t.throws(() => validateInfo(good, sock, ['ShoalNetworkPlugin']), /unknown plugin type "CSIPlugin" \(shoal takes ShoalNetworkPlugin\)/, 'a type this registry was not given');
});

t.test('parseVersion', async (t) => {
  t.same(parseVersion('1'), [1, 0, 0]);
  t.same(parseVersion('v1.2'), [1, 2, 0]);
  t.same(parseVersion('1.2.3'), [1, 2, 3]);
  t.equal(parseVersion('1.2.3-rc1'), undefined);
  t.equal(parseVersion('one'), undefined);
});
