// Placement constraints: what parses (Swarm's forms), what does not and why, and how each key
// and operator holds on a node (a missing label never equals a value and always differs).
import t from 'tap';
import { ConstraintError, constraintHolds, constraintText, parseConstraint, type ConstraintNode } from './constraints.js';

t.test('parses every key with == and !=, spaces around the operator allowed', async (t) => {
  const rows: [string, object, string][] = [
    ['node.id==abc', { key: 'node.id', op: '==', value: 'abc' }, 'node.id==abc'],
    ['node.hostname != web-1', { key: 'node.hostname', op: '!=', value: 'web-1' }, 'node.hostname!=web-1'],
    ['node.role==manager', { key: 'node.role', op: '==', value: 'manager' }, 'node.role==manager'],
    ['  node.role != worker  ', { key: 'node.role', op: '!=', value: 'worker' }, 'node.role!=worker'],
    ['node.labels.zone==eu-west', { key: 'node.label', label: 'zone', op: '==', value: 'eu-west' }, 'node.labels.zone==eu-west'],
    ['node.labels.io.shoal/disk!=hdd', { key: 'node.label', label: 'io.shoal/disk', op: '!=', value: 'hdd' }, 'node.labels.io.shoal/disk!=hdd'],
    ['node.labels.note==two words', { key: 'node.label', label: 'note', op: '==', value: 'two words' }, 'node.labels.note==two words'],
  ];
  for (const [src, want, text] of rows) {
    const c = parseConstraint(src);
    t.same(c, want, src);
    t.equal(constraintText(c), text, `${src} prints back`);
  }
});

t.test('what does not parse says what to write', async (t) => {
  const rows: [string, RegExp][] = [
    ['node.labels.zone=eu', /does not parse: write KEY==VALUE or KEY!=VALUE/],
    ['node.labels.zone==', /does not parse/],
    ['==eu', /does not parse/],
    ['node.name==x', /does not parse.*KEY one of node\.id, node\.hostname, node\.role, node\.labels\.NAME/],
    ['node.labels.==x', /does not parse/],
    ['engine.labels.os==linux', /does not parse/],
    ['node.labels.zone<>eu', /does not parse/],
    ['node.labels.zone===eu', /does not parse/],
    ['node.labels.zone==eu!=us', /does not parse/],
    ['', /does not parse/],
    ['node.role==boss', /node\.role is manager or worker, not "boss"/],
  ];
  for (const [src, re] of rows) {
    t.throws(() => parseConstraint(src), { name: 'ConstraintError' }, src);
    try {
      parseConstraint(src);
    } catch (e) {
      t.match((e as Error).message, re, src);
    }
  }
});

t.test('holds: each key and operator on a node, a missing label differs from every value', async (t) => {
  const n: ConstraintNode = { id: 'n1', hostname: 'h1', role: 'worker', labels: { zone: 'eu' } };
  const rows: [string, boolean][] = [
    ['node.id==n1', true],
    ['node.id!=n1', false],
    ['node.hostname==h1', true],
    ['node.hostname==h2', false],
    ['node.role==worker', true],
    ['node.role==manager', false],
    ['node.role!=manager', true],
    ['node.labels.zone==eu', true],
    ['node.labels.zone==us', false],
    ['node.labels.zone!=us', true],
    ['node.labels.rack==1', false],
    ['node.labels.rack!=1', true],
    ['node.labels.ZONE==eu', false],
  ];
  for (const [src, want] of rows) t.equal(constraintHolds(parseConstraint(src), n), want, src);
});
