// The lab's naming and planning rules (pure): names derive from the directory, never claim
// another lab's namespaces, fit the kernel's interface-name limit, and bad plans are refused.
import t from 'tap';
import { bridgeNetns, bridgePort, hostAddress, hostNetns, isLabNetns, labName } from '../lab/names.js';
import { findNode, planLab } from '../lab/plan.js';

t.test('lab names', async (t) => {
  t.equal(labName('/var/lib/shoal-lab'), 'default', 'the default directory is lab "default"');
  t.equal(labName('/var/lib/shoal-lab/'), 'default', 'trailing slash ignored');
  t.match(labName('/tmp/mylab'), /^mylab-[0-9a-f]{6}$/, 'base name plus a hash of the path');
  t.not(labName('/tmp/a/mylab'), labName('/tmp/b/mylab'), 'same base name, different paths: different labs');
  t.match(labName('/tmp/My Lab!!'), /^my-lab-[0-9a-f]{6}$/, 'unsafe characters replaced');
  t.match(labName('/tmp/!!!'), /^lab-[0-9a-f]{6}$/, 'nothing usable left: "lab"');
  t.ok(labName('/tmp/' + 'x'.repeat(100)).length <= 23, 'long names shortened');
});

t.test('namespace ownership never crosses labs', async (t) => {
  const a = 'default';
  const b = labName('/tmp/default'); // "default-xxxxxx": shares lab a's prefix
  t.ok(isLabNetns(a, bridgeNetns(a)), 'own bridge');
  t.ok(isLabNetns(a, hostNetns(a, 'manager-1')), 'own host');
  t.ok(isLabNetns(a, hostNetns(a, 'worker-12')), 'own worker');
  t.notOk(isLabNetns(a, hostNetns(b, 'manager-1')), `lab ${a} does not claim ${hostNetns(b, 'manager-1')}`);
  t.notOk(isLabNetns(a, bridgeNetns(b)), `nor ${bridgeNetns(b)}`);
  t.notOk(isLabNetns(a, 'sc123m1'), 'nor anything else');
});

t.test('interface names and addresses', async (t) => {
  t.equal(bridgePort('manager-1'), 'v-manager-1');
  t.ok(bridgePort('worker-199').length <= 15, 'fits IFNAMSIZ');
  t.throws(() => bridgePort('a-very-long-node-name'), /too long for an interface name/);
  t.equal(hostAddress(0), '10.99.0.11');
  t.equal(hostAddress(199), '10.99.0.210');
  t.throws(() => hostAddress(200), /out of range/);
});

t.test('plans', async (t) => {
  const s = planLab('/tmp/p', 3, 2);
  t.same(s.nodes.map((n) => `${n.name}/${n.role}/${n.address}`), [
    'manager-1/manager/10.99.0.11', 'manager-2/manager/10.99.0.12', 'manager-3/manager/10.99.0.13',
    'worker-1/worker/10.99.0.14', 'worker-2/worker/10.99.0.15',
  ]);
  t.ok(s.nodes.every((n) => n.stateDir.startsWith('/tmp/p/nodes/') && n.logFile.startsWith('/tmp/p/logs/')), 'everything under the lab dir');
  t.equal(new Set(s.nodes.map((n) => n.netns)).size, 5, 'distinct namespaces');
  t.throws(() => planLab('/tmp/p', 0, 1), /--managers must be a whole number of at least 1/);
  t.throws(() => planLab('/tmp/p', 1, -1), /--workers must be a whole number of at least 0/);
  t.throws(() => planLab('/tmp/p', 1.5, 1), /--managers/);
  t.throws(() => planLab('/tmp/p', 100, 101), /at most 200 nodes/);
  t.throws(() => findNode(s, 'worker-3'), /no lab node named "worker-3".*manager-1, manager-2, manager-3, worker-1, worker-2/);
});
