// The managers' volume logic, pure: a service's mounts as received (every refusal names what was
// wrong), mounts against the volumes and classes that exist, the volume controller's decisions
// (provision, attach, detach from a released or dead node, delete only once nothing uses it), the
// scheduler's volume filter (driver registered, topology, single-node attachments, one task at a
// time), and what the dispatcher tells an agent (TaskVolumes) and records (UpdateVolumeStatus).
import t from 'tap';
import type { NodeObject } from '../control/model.js';
import { node, replicated, service, task } from '../orchestrator/fixtures.js';
import { decidePass } from '../leader/pipeline.js';
import { schedule } from '../scheduler/scheduler.js';
import type { ServiceObject, TaskObject } from '../services/model.js';
import { decideVolumes } from './decide.js';
import { heldChanges, taskVolumes } from './dispatch.js';
import type { AccessName, Attachment, Mount, VolumeObject } from './model.js';
import { VolumeSpecError, checkServiceVolumes, mountsFromWire } from './validate.js';

const DRIVER = 'block.csi.shoal.io';
const MiB = 1024 * 1024;

/** A ready node with the driver registered (topology pool=p1 unless said). */
function csiNode(id: string, o: { state?: 'ready' | 'down'; pool?: string; driver?: string | null } = {}): NodeObject {
  const n = node(id, { state: o.state ?? 'ready', cpu: 4000, mem: 4096 * MiB });
  if (o.driver !== null) {
    n.status.description!.plugins = [{ kind: 'CSIPlugin', name: o.driver ?? DRIVER, endpoint: '/x.sock', versions: ['1.0.0'], version: '1.0.0', registeredAt: '', csi: { nodeId: `csi-${id}`, topology: { 'topology.shoal.io/pool': o.pool ?? 'p1' }, maxVolumes: 0, vendorVersion: '1' } }];
  }
  return n;
}

function volume(name: string, o: { state?: 'pending' | 'created' | 'failed'; access?: AccessName; attachments?: Partial<Attachment>[]; removing?: boolean; pool?: string } = {}): VolumeObject {
  return {
    kind: 'volume', id: `id-${name}`, name, labels: {}, version: 5, createdVersion: 1,
    spec: { driver: DRIVER, sizeBytes: 64 * MiB, access: o.access ?? 'single-node-writer', params: {}, ...(o.removing ? { removing: true } : {}) },
    status: {
      state: o.state ?? 'created', message: '', createdAt: 0, csiId: `csi-${name}`, capacityBytes: 64 * MiB, context: {},
      topology: [{ 'topology.shoal.io/pool': o.pool ?? 'p1' }],
      attachments: (o.attachments ?? []).map((a) => ({ nodeId: 'n1', csiNodeId: `csi-${a.nodeId ?? 'n1'}`, state: 'in-use', context: { g: '1' }, readonly: false, since: 0, ...a })),
    },
  };
}

function withMounts(name: string, mounts: Mount[], replicas = 1): ServiceObject {
  const s = service(name, replicated(replicas));
  s.spec.task = { ...s.spec.task, mounts };
  return s;
}

const dataMount: Mount = { type: 'volume', source: 'data', target: '/data', readonly: false };

t.test('mounts as received: each bad one refused with what to write instead', async (t) => {
  const bad: [string, unknown[], RegExp][] = [
    ['another type', [{ type: 'bind', source: '/etc', target: '/x' }], /type "bind" is not supported: use type=volume/],
    ['a relative target', [{ source: 'data', target: 'data' }], /target "data" must be an absolute, normalized path/],
    ['target /', [{ source: 'data', target: '/' }], /must be an absolute, normalized path other than \//],
    ['a target with ..', [{ source: 'data', target: '/a/../b' }], /normalized/],
    ['no source nor class', [{ target: '/data' }], /give source=VOLUME .* or class=CLASS,size=SIZE/],
    ['a bad volume name', [{ source: 'Data!', target: '/data' }], /source "Data!" is not valid/],
    ['size on a named volume', [{ source: 'data', target: '/data', size_bytes: 1024 * MiB }], /size= applies to class mounts only/],
    ['a class without size', [{ class: 'fast', target: '/data' }], /needs its size/],
    ['a class size below 1 MiB', [{ class: 'fast', target: '/data', size_bytes: 10 }], /at least 1 MiB/],
    ['two mounts at one target', [{ source: 'a', target: '/d' }, { source: 'b', target: '/d' }], /mounted twice/],
    ['two claims named alike', [{ class: 'fast', target: '/x/data', size_bytes: MiB }, { class: 'fast', target: '/y/data', size_bytes: MiB }], /both name their volumes SERVICE.SLOT-data/],
  ];
  for (const [what, list, re] of bad) t.throws(() => mountsFromWire(list as never), re, what);
  t.same(mountsFromWire([{ source: 'data', target: '/data', readonly: true }]), [{ type: 'volume', target: '/data', readonly: true, source: 'data' }], 'a named volume, read-only');
  t.same(mountsFromWire([{ class: 'fast', target: '/var/lib/DB', size_bytes: 2 * MiB }]), [{ type: 'volume', target: '/var/lib/DB', readonly: false, class: 'fast', sizeBytes: 2 * MiB, name: 'db' }], "a class mount: its claims are named after the target's last element");
  t.same(mountsFromWire(undefined), [], 'no mounts');
});

t.test('mounts against what exists', async (t) => {
  const s = withMounts('web', [dataMount]);
  const l = (v?: VolumeObject) => ({ volume: (n: string) => (v && v.name === n ? v : undefined), volumeClass: () => undefined });
  t.throws(() => checkServiceVolumes('web', s.spec, l()), /there is no volume "data" \("shoal volume create data --size SIZE" makes it\)/, 'a volume that does not exist');
  t.throws(() => checkServiceVolumes('web', s.spec, l(volume('data', { removing: true }))), /being removed/, 'a volume being removed');
  t.throws(() => checkServiceVolumes('web', s.spec, l(volume('data', { state: 'failed' }))), /could not be provisioned/, 'a volume that failed');
  t.doesNotThrow(() => checkServiceVolumes('web', s.spec, l(volume('data'))), 'an existing volume');
  const sf = withMounts('web', [dataMount]);
  sf.spec.update = { ...sf.spec.update, order: 'start-first' } as typeof sf.spec.update;
  t.throws(() => checkServiceVolumes('web', sf.spec, l(volume('data'))), /must update stop-first/, 'start-first with a one-task-at-a-time volume');
  const c = withMounts('web', [{ type: 'volume', class: 'fast', sizeBytes: MiB, name: 'data', target: '/data', readonly: false }]);
  t.throws(() => checkServiceVolumes('web', c.spec, l()), /there is no volume class "fast"/, 'a class that does not exist');
  t.ok(VolumeSpecError, 'refusals are VolumeSpecErrors (the API turns them into INVALID_ARGUMENT)');
});

t.test("the volume controller's decisions", async (t) => {
  const s = withMounts('web', [dataMount]);
  const placed = (nodeId: string, state: TaskObject['status']['state'] = 'running') => task(s, `t-${nodeId}`, { slot: 1, nodeId, state });
  const base = { now: 1000, classes: [], services: [s] };
  const types = (d: ReturnType<typeof decideVolumes>) => d.actions.map((a) => `${a.type}${'nodeId' in a ? `:${a.nodeId}` : 'attachment' in a ? `:${a.attachment.nodeId}` : ''}`);

  t.same(types(decideVolumes({ ...base, volumes: [volume('data', { state: 'pending' })], tasks: [], nodes: [csiNode('n1')] })), ['provision'], 'pending: CreateVolume');
  t.same(types(decideVolumes({ ...base, volumes: [volume('data')], tasks: [placed('n1', 'assigned')], nodes: [csiNode('n1')] })), ['publish:n1'], 'a task placed on n1: attach there');
  t.same(types(decideVolumes({ ...base, volumes: [volume('data', { attachments: [{ nodeId: 'n1' }] })], tasks: [placed('n1')], nodes: [csiNode('n1')] })), [], 'attached and in use: nothing to do');
  const moved = decideVolumes({ ...base, volumes: [volume('data', { attachments: [{ nodeId: 'n1' }] })], tasks: [placed('n2', 'assigned')], nodes: [csiNode('n1', { state: 'down' }), csiNode('n2')] });
  t.same(types(moved), ['unpublish:n1', 'publish:n2'], 'its node died: detached from it (the driver fences it), attached where the task went');
  const held = decideVolumes({ ...base, volumes: [volume('data', { attachments: [{ nodeId: 'n1' }] })], tasks: [placed('n2', 'assigned')], nodes: [csiNode('n1'), csiNode('n2')] });
  t.same(types(held), [], 'held in use on a live node: not taken from it');
  t.match(held.waiting.get('id-data'), [{ nodeId: 'n2', message: /waiting for node n1 to release it/ }], 'the wait says for whom');
  t.same(types(decideVolumes({ ...base, volumes: [volume('data', { attachments: [{ nodeId: 'n1', state: 'released' }] })], tasks: [], nodes: [csiNode('n1')] })), ['unpublish:n1'], 'released and needed nowhere: detached');
  t.same(types(decideVolumes({ ...base, volumes: [volume('data', { attachments: [{ nodeId: 'n1', state: 'released' }] })], tasks: [placed('n1', 'assigned')], nodes: [csiNode('n1')] })), ['reuse:n1'], 'released but a task there needs it again: used again');
  const stopping = task(s, 't-n1', { slot: 1, nodeId: 'n1', state: 'running', desired: 'shutdown' });
  t.same(types(decideVolumes({ ...base, volumes: [volume('data', { attachments: [{ nodeId: 'n1', state: 'released' }] })], tasks: [stopping], nodes: [csiNode('n1')] })), ['unpublish:n1'], 'released by the node while its task is being stopped: detached, not used again');
  t.same(types(decideVolumes({ ...base, volumes: [volume('data', { attachments: [{ nodeId: 'n1', state: 'in-use' }] })], tasks: [stopping], nodes: [csiNode('n1')] })), [], 'still in use by a task being stopped: kept');
  t.same(types(decideVolumes({ ...base, volumes: [volume('data', { removing: true, attachments: [{ nodeId: 'n1', state: 'in-use' }] })], tasks: [stopping], nodes: [csiNode('n1')] })), [], 'removed, but a stopping task still holds it: neither detached nor deleted');
  t.same(types(decideVolumes({ ...base, volumes: [volume('data', { attachments: [{ nodeId: 'n1', state: 'published' }] })], tasks: [], nodes: [csiNode('n1')] })), ['unpublish:n1'], 'attached but never taken, and no task wants it any more: detached');
  t.same(types(decideVolumes({ ...base, volumes: [volume('data', { removing: true, attachments: [{ nodeId: 'n1', state: 'released' }] })], tasks: [], nodes: [csiNode('n1')] })), ['unpublish:n1'], 'removed while attached: detached first, not deleted');
  t.same(types(decideVolumes({ ...base, volumes: [volume('data', { removing: true })], tasks: [], nodes: [csiNode('n1')] })), ['delete'], 'removed and detached: DeleteVolume');
  const nodrv = decideVolumes({ ...base, volumes: [volume('data')], tasks: [placed('n1', 'assigned')], nodes: [csiNode('n1', { driver: null })] });
  t.same(types(nodrv), [], 'the driver is not registered on the node: no attach');
  t.match(nodrv.waiting.get('id-data'), [{ message: /driver block.csi.shoal.io is not registered on the node/ }], 'and the wait says so');
  const later = decideVolumes({ ...base, volumes: [volume('data')], tasks: [placed('n1', 'assigned')], nodes: [csiNode('n1')], retryAt: new Map([['publish:id-data:n1', 5000]]) });
  t.same(types(later), [], 'an attach that failed waits for its back-off');
  t.equal(later.wakeAt, 5000, 'and the pass wakes up then');
});

t.test("the scheduler's volume filter", async (t) => {
  const s = withMounts('web', [dataMount], 2);
  const pend = (id: string, slot = 1) => task(s, id, { slot, state: 'pending' });
  const place = (volumes: VolumeObject[], nodes: NodeObject[], tasks: TaskObject[]) => schedule({ nodes, tasks, volumes });
  let r = place([volume('data')], [csiNode('n1', { driver: null }), csiNode('n2')], [pend('a')]);
  t.same(r.assign.map((a) => a.nodeId), ['n2'], 'only where the driver is registered');
  r = place([volume('data', { pool: 'p2' })], [csiNode('n1'), csiNode('n2', { pool: 'p2' })], [pend('a')]);
  t.same(r.assign.map((a) => a.nodeId), ['n2'], "only where the volume's topology is reachable");
  r = place([volume('data', { attachments: [{ nodeId: 'n1', state: 'released' }] })], [csiNode('n1'), csiNode('n2')], [pend('a')]);
  t.same(r.assign.map((a) => a.nodeId), ['n1'], 'a single-node volume goes where it is attached until detached there');
  r = place([volume('data', { attachments: [{ nodeId: 'n1' }] })], [csiNode('n1', { state: 'down' }), csiNode('n2')], [pend('a')]);
  t.same(r.assign.map((a) => a.nodeId), ['n2'], 'an attachment to a dead node does not hold it');
  r = place([volume('data')], [csiNode('n1'), csiNode('n2')], [pend('a', 1), pend('b', 2)]);
  t.equal(r.assign.length, 1, 'single-node-writer: two tasks in one pass, one placed');
  t.match(r.unplaceable[0]?.reason, /volume data is in use by task web.1 \(single-node-writer: one task at a time\)/, 'the other waits, saying for whom');
  r = place([volume('data', { state: 'pending' })], [csiNode('n1')], [pend('a')]);
  t.match(r.unplaceable[0]?.reason, /waiting for volume data to be provisioned/, 'not provisioned yet');
  r = place([], [csiNode('n1')], [pend('a')]);
  t.match(r.unplaceable[0]?.reason, /volume data does not exist/, 'a volume that is gone');
  r = place([volume('data', { access: 'multi-node-reader-only', attachments: [{ nodeId: 'n1' }] })], [csiNode('n1'), csiNode('n2')], [pend('a', 1), pend('b', 2)]);
  t.equal(r.assign.length, 2, 'multi-node-reader-only: both placed');
});

t.test("the leader's one pass (orchestrate, allocate, schedule) places a new task by its volumes", async (t) => {
  let n = 0;
  const pass = (volumes: VolumeObject[]) => decidePass({ now: 1000, nodes: [csiNode('n1'), csiNode('n2')], services: [withMounts('web', [dataMount])], tasks: [], volumes, newId: () => `t${++n}` });
  const created = (p: ReturnType<typeof pass>) => p.groups.flat().filter((op) => op.op === 'create').map((op) => (op as { object: { nodeId?: string; status: TaskObject['status'] } }).object);
  let c = created(pass([volume('data', { attachments: [{ nodeId: 'n2', state: 'released' }] })]));
  t.equal(c.length, 1, 'one task created');
  t.same([c[0]?.status.state, c[0]?.nodeId], ['assigned', 'n2'], 'created already assigned, on the node the single-node volume is attached to');
  c = created(pass([volume('data', { state: 'pending' })]));
  t.same([c[0]?.status.state, c[0]?.nodeId], ['pending', undefined], 'a volume not provisioned yet: created pending, on no node');
  t.match(c[0]?.status.message, /waiting for volume data to be provisioned/, 'saying what it waits for');
});

t.test('what the dispatcher tells an agent and records', async (t) => {
  const s = withMounts('web', [{ ...dataMount, readonly: true }]);
  const tk = task(s, 'a', { slot: 1, nodeId: 'n1', state: 'assigned' });
  const by = (v?: VolumeObject) => (n: string) => (v?.name === n ? v : undefined);
  t.match(taskVolumes(tk, 'n1', by(volume('data', { state: 'pending' }))), { ready: false, refused: false, waiting: /being provisioned/ }, 'not provisioned: wait');
  t.match(taskVolumes(tk, 'n1', by(volume('data'))), { ready: false, refused: false, waiting: /being attached to this node/ }, 'not attached here: wait');
  t.match(taskVolumes(tk, 'n1', by(volume('data', { attachments: [{ nodeId: 'n1', state: 'unpublishing' }] }))), { ready: false }, 'being detached here: wait');
  t.match(taskVolumes(tk, 'n1', by()), { refused: true, waiting: /does not exist/ }, 'gone: refused');
  t.match(taskVolumes(tk, 'n1', by(volume('data', { state: 'failed' }))), { refused: true }, 'failed: refused');
  const ok = taskVolumes(tk, 'n1', by(volume('data', { attachments: [{ nodeId: 'n1', state: 'published' }] })));
  t.match(ok, { ready: true, volumes: [{ name: 'data', csi_id: 'csi-data', target: '/data', readonly: true, publish_context: { g: '1' } }] }, 'attached here: ready, with what NodeStage/NodePublish need');
  const vols = [volume('a', { attachments: [{ nodeId: 'n1', state: 'published' }, { nodeId: 'n2', state: 'in-use' }] }), volume('b', { attachments: [{ nodeId: 'n1', state: 'in-use' }] }), volume('c', { attachments: [{ nodeId: 'n1', state: 'unpublishing' }] })];
  const ch = heldChanges(vols, 'n1', new Set(['id-a']));
  t.same(ch.map((c) => [c.volume.name, c.attachments.map((a) => `${a.nodeId}:${a.state}`)]), [['a', ['n1:in-use', 'n2:in-use']], ['b', ['n1:released']]], "held: in use; not held: released; another node's and an unpublishing attachment untouched");
});
