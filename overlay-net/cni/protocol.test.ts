// shoal-cni's protocol pieces: config parsing and its errors, CNI_ARGS, the result per version.
import t from 'tap';
import { CniError, formatResult, parseCniArgs, parseNetConf, versionJson } from './protocol.js';

const result = {
  cni_version: '1.0.0',
  interfaces: [{ name: 'shv-0123456789', mac: '02:55:00:00:00:01', sandbox: '', mtu: 1450 }, { name: 'eth0', mac: '02:54:0a:01:01:02', sandbox: '/run/netns/p', mtu: 1450 }],
  ips: [{ address: '10.1.1.2/24', gateway: '10.1.1.1', interface: 1 }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.1.1' }],
  dns: { nameservers: ['169.254.53.53'], domain: '', search: [], options: [] },
};

t.test('results per version', async (t) => {
  t.same(formatResult(result, '1.0.0'), {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'shv-0123456789', mac: '02:55:00:00:00:01' }, { name: 'eth0', mac: '02:54:0a:01:01:02', sandbox: '/run/netns/p' }],
    ips: [{ address: '10.1.1.2/24', gateway: '10.1.1.1', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.1.1.1' }],
    dns: { nameservers: ['169.254.53.53'] },
  }, '1.0.0');
  t.same((formatResult(result, '0.3.1').ips as unknown[])[0], { version: '4', address: '10.1.1.2/24', gateway: '10.1.1.1', interface: 1 }, '0.3.1 IPs carry version');
  t.same((formatResult(result, '1.1.0').interfaces as unknown[])[1], { name: 'eth0', mac: '02:54:0a:01:01:02', mtu: 1450, sandbox: '/run/netns/p' }, '1.1.0 interfaces carry mtu');
  t.same(versionJson('0.4.0'), { cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  t.equal(versionJson('0.1.0').cniVersion, '1.1.0', 'an unsupported version asked for: we answer in ours');
});

t.test('config and CNI_ARGS', async (t) => {
  const c = parseNetConf(JSON.stringify({ cniVersion: '1.0.0', name: 'shoal', type: 'shoal-cni', runtimeConfig: { 'io.kubernetes.cri.pod-annotations': { 'shoal.io/task-id': 't1', n: 5 } } }), 'ADD');
  t.equal(c.socket, '/var/lib/shoal/plugins/network.sock', 'default socket');
  t.same(c.podAnnotations, { 'shoal.io/task-id': 't1', n: '5' }, 'pod annotations from runtimeConfig');
  t.same(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=a=b;;K8S_POD_UID=u'), { IgnoreUnknown: '1', K8S_POD_NAME: 'a=b', K8S_POD_UID: 'u' }, 'CNI_ARGS (a value may hold =)');
  const bad: [string, string, number, RegExp][] = [
    ['[]', 'ADD', 6, /must be a JSON object/],
    ['{"cniVersion":"1.0.0","type":"shoal-cni"}', 'ADD', 7, /no name/],
    ['{"cniVersion":"1.0.0","name":"x"}', 'ADD', 7, /no type/],
    ['{"cniVersion":"1.0.0","name":"x","type":"t","runtimeConfig":[]}', 'ADD', 7, /runtimeConfig must be an object/],
    ['{"cniVersion":"1.0.0","name":"x","type":"t"}', 'GC', 1, /GC needs cniVersion 1\.1\.0/],
    ['{"cniVersion":"1.1.0","name":"x","type":"t","cni.dev/valid-attachments":[{"containerID":1}]}', 'GC', 7, /needs containerID and ifname/],
  ];
  for (const [conf, cmd, code, msg] of bad) {
    try {
      parseNetConf(conf, cmd);
      t.fail(`${conf}: accepted`);
    } catch (e) {
      t.equal((e as CniError).code, code, `${cmd} ${conf}: code ${code}`);
      t.match((e as Error).message, msg, `  "${(e as Error).message}"`);
    }
  }
  t.throws(() => parseCniArgs('=x'), /not KEY=VALUE/);
});
