// The Controller and Identity services of the built-in driver, call by call against the CSI
// spec: what each call must do, its idempotency, and its error codes. A real shoal-csi process
// (two, for attach) on a real pool directory; no call here needs a loop device.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { AccessMode } from '../proto/csi/v1/csi.js';
import { mountCapability } from './client.js';
import { GiB, MiB } from './capacity.js';
import { TOPOLOGY_KEY } from './pool.js';
import { startDriverProc, type DriverProc } from './testing/driver-proc.js';
import { expectCode } from './testing/expect.js';
import { leftovers, sweep, testDir } from './testing/leaks.js';

const dir = testDir('controller');
const pool = join(dir, 'pool');
const na = `na-${process.pid}`;
const nb = `nb-${process.pid}`;
const SNW = mountCapability('SINGLE_NODE_WRITER');
const SNRO = mountCapability('SINGLE_NODE_READER_ONLY');
const MNRO = mountCapability('MULTI_NODE_READER_ONLY');
let A: DriverProc;
let B: DriverProc;

t.before(async () => {
  A = await startDriverProc({ socket: join(dir, 'a.sock'), pool, nodeId: na, extra: ['--capacity', '8G'] });
  B = await startDriverProc({ socket: join(dir, 'b.sock'), pool, nodeId: nb, extra: ['--capacity', '8G'] });
});
t.teardown(async () => {
  await A?.kill();
  await B?.kill();
  const left = leftovers(dir);
  sweep(dir);
  if (left.loops.length + left.mounts.length > 0) throw new Error(`left behind: ${JSON.stringify(left)}`);
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const ctl = (method: string, req: object) => A.client.call<any>('controller', method, req, { retry: false });
const create = (name: string, extra: object = {}) => ctl('CreateVolume', { name: `${name}-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: GiB, limit_bytes: GiB }, ...extra });

t.test('Identity', async (t) => {
  const info = await A.client.pluginInfo();
  t.equal(info.name, 'block.csi.shoal.io');
  t.ok(info.vendor_version);
  t.equal(await A.client.probe(), true, 'Probe: ready');
  const caps = await A.client.capabilities();
  t.ok(caps.controllerService, 'CONTROLLER_SERVICE');
  t.ok(caps.accessibilityConstraints, 'VOLUME_ACCESSIBILITY_CONSTRAINTS');
  t.equal(caps.expansion, 'ONLINE');
  t.same([...caps.controller].sort(), ['CREATE_DELETE_SNAPSHOT', 'CREATE_DELETE_VOLUME', 'EXPAND_VOLUME', 'GET_CAPACITY', 'GET_VOLUME', 'LIST_SNAPSHOTS', 'LIST_VOLUMES', 'LIST_VOLUMES_PUBLISHED_NODES', 'PUBLISH_READONLY', 'PUBLISH_UNPUBLISH_VOLUME']);
  t.same([...caps.node].sort(), ['EXPAND_VOLUME', 'GET_VOLUME_STATS', 'STAGE_UNSTAGE_VOLUME', 'VOLUME_CONDITION']);
  const ni = await A.client.nodeInfo();
  t.equal(ni.nodeId, na);
  t.match(ni.topology[TOPOLOGY_KEY], /^pool-[0-9a-f]{12}$/, 'topology: the pool');
  t.same((await B.client.nodeInfo()).topology, ni.topology, 'two nodes on one pool share its topology');
});

t.test('CreateVolume', async (t) => {
  const v = (await create('cv')).volume;
  t.equal(v.capacity_bytes, GiB, 'the requested capacity');
  const image = join(pool, 'volumes', v.volume_id, 'image');
  t.equal(statSync(image).size, GiB, 'an image file of that size');
  t.ok(statSync(image).blocks * 512 < MiB, 'sparse: nothing allocated yet');
  t.same(v.accessible_topology, [{ segments: (await A.client.nodeInfo()).topology }], 'topology: the pool holding it');
  t.same((await create('cv')).volume, v, 'same name and size again: the same volume (idempotent)');
  t.same((await ctl('CreateVolume', { name: `cv-${process.pid}`, volume_capabilities: [SNW], capacity_range: { required_bytes: GiB / 2 } })).volume, v, 'a range the volume fits: the same volume');
  await expectCode(create('cv', { capacity_range: { required_bytes: 2 * GiB, limit_bytes: 2 * GiB } }), 'ALREADY_EXISTS', /already exists with 1073741824 bytes/);
  t.equal(JSON.parse(readFileSync(join(pool, 'volumes', v.volume_id, 'volume.json'), 'utf8')).name, `cv-${process.pid}`, 'its record names it');

  const ranges: [string, object, number][] = [
    ['required only', { required_bytes: 100 * MiB + 1 }, 101 * MiB],
    ['limit only', { limit_bytes: 64 * MiB }, 64 * MiB],
    ['nothing: the default', {}, GiB],
  ];
  for (const [name, range, want] of ranges) {
    t.equal((await ctl('CreateVolume', { name: `range-${name}-${process.pid}`, volume_capabilities: [SNW], capacity_range: range })).volume.capacity_bytes, want, `capacity range ${name}`);
  }

  const bad: [string, Promise<unknown>, keyof typeof import('@grpc/grpc-js').status, RegExp][] = [
    ['no name', ctl('CreateVolume', { volume_capabilities: [SNW] }), 'INVALID_ARGUMENT', /name is required/],
    ['a control character in the name', create('a\u0001b'), 'INVALID_ARGUMENT', /control character/],
    ['a name over 128 bytes', ctl('CreateVolume', { name: 'x'.repeat(129), volume_capabilities: [SNW] }), 'INVALID_ARGUMENT', /128 bytes/],
    ['no capabilities', ctl('CreateVolume', { name: `nocap-${process.pid}` }), 'INVALID_ARGUMENT', /volume_capabilities is required/],
    ['a multi-node writer', create('mnmw', { volume_capabilities: [mountCapability('MULTI_NODE_MULTI_WRITER')] }), 'INVALID_ARGUMENT', /MULTI_NODE_MULTI_WRITER is not supported/],
    ['block access', create('blk', { volume_capabilities: [{ block: {}, access_mode: { mode: AccessMode.SINGLE_NODE_WRITER } }] }), 'INVALID_ARGUMENT', /block is not supported/],
    ['xfs', create('xfs', { volume_capabilities: [mountCapability('SINGLE_NODE_WRITER', 'xfs')] }), 'INVALID_ARGUMENT', /fs_type/],
    ['an unknown parameter', create('param', { parameters: { speed: 'fast' } }), 'INVALID_ARGUMENT', /unknown parameters speed/],
    ['required above limit', create('rl', { capacity_range: { required_bytes: 2 * GiB, limit_bytes: GiB } }), 'INVALID_ARGUMENT', /larger than limit_bytes/],
    ['limit below the smallest volume', create('tiny', { capacity_range: { limit_bytes: MiB } }), 'OUT_OF_RANGE', /below the smallest volume/],
    ['more than the pool has', create('huge', { capacity_range: { required_bytes: 9 * GiB } }), 'RESOURCE_EXHAUSTED', /bytes left for new volumes/],
    ['a topology elsewhere', create('topo', { accessibility_requirements: { requisite: [{ segments: { [TOPOLOGY_KEY]: 'pool-elsewhere' } }] } }), 'RESOURCE_EXHAUSTED', /requested topology/],
    ['from a snapshot that does not exist', create('fromsnap', { volume_content_source: { snapshot: { snapshot_id: 'nope' } } }), 'NOT_FOUND', /snapshot nope does not exist/],
    ['a clone', create('clone', { volume_content_source: { volume: { volume_id: v.volume_id } } }), 'INVALID_ARGUMENT', /cloning/],
  ];
  for (const [name, p, code, msg] of bad) t.ok(await expectCode(p, code, msg), `${name}: ${code}`);
  const ours = { requisite: [{ segments: (await A.client.nodeInfo()).topology }], preferred: [] };
  t.ok((await create('topo-ok', { accessibility_requirements: ours })).volume.volume_id, 'a requisite topology of this pool: created');
  t.notOk(readdirSync(join(pool, 'volumes')).some((n) => n.startsWith('huge-')), 'a refused create leaves nothing');
  t.same(readdirSync(join(pool, '.tmp')).filter((n) => n.startsWith('create-')), [], 'and nothing half-built in .tmp');
});

t.test('DeleteVolume', async (t) => {
  const v = (await create('del')).volume;
  await ctl('DeleteVolume', { volume_id: v.volume_id });
  t.notOk(existsSync(join(pool, 'volumes', v.volume_id)), 'the volume and its image are gone');
  await ctl('DeleteVolume', { volume_id: v.volume_id });
  t.pass('deleting it again: OK (idempotent)');
  await ctl('DeleteVolume', { volume_id: 'never-was-1234' });
  t.pass('an id that never existed: OK');
  await expectCode(ctl('DeleteVolume', {}), 'INVALID_ARGUMENT', /volume_id is required/);
  const p = (await create('delpub')).volume;
  await ctl('ControllerPublishVolume', { volume_id: p.volume_id, node_id: na, volume_capability: SNW });
  await expectCode(ctl('DeleteVolume', { volume_id: p.volume_id }), 'FAILED_PRECONDITION', new RegExp(`published to node\\(s\\) ${na}`));
  t.ok(existsSync(join(pool, 'volumes', p.volume_id, 'image')), 'a published volume is kept');
  await ctl('ControllerUnpublishVolume', { volume_id: p.volume_id, node_id: na });
  await ctl('DeleteVolume', { volume_id: p.volume_id });
  t.notOk(existsSync(join(pool, 'volumes', p.volume_id)), 'deleted once unpublished');
});

t.test('ControllerPublishVolume / ControllerUnpublishVolume', async (t) => {
  const v = (await create('pub')).volume;
  const id = v.volume_id;
  const r1 = await ctl('ControllerPublishVolume', { volume_id: id, node_id: na, volume_capability: SNW });
  t.match(r1.publish_context, { 'shoal.io/generation': '1', 'shoal.io/readonly': 'false' }, 'attached: the node is told which attachment');
  t.same(await ctl('ControllerPublishVolume', { volume_id: id, node_id: na, volume_capability: SNW }), r1, 'again: the same attachment (idempotent)');
  const rec = JSON.parse(readFileSync(join(pool, 'volumes', id, 'publish.json'), 'utf8'));
  t.match(rec.attachments, [{ node_id: na, readonly: false, mode: AccessMode.SINGLE_NODE_WRITER, generation: 1 }], 'recorded in the pool');
  await expectCode(ctl('ControllerPublishVolume', { volume_id: id, node_id: na, volume_capability: SNW, readonly: true }), 'ALREADY_EXISTS', /incompatible/);
  await expectCode(ctl('ControllerPublishVolume', { volume_id: id, node_id: nb, volume_capability: SNW }), 'FAILED_PRECONDITION', new RegExp(`published to node ${na}`));
  await expectCode(ctl('ControllerPublishVolume', { volume_id: id, node_id: nb, volume_capability: SNRO }), 'FAILED_PRECONDITION', /published to node/);
  t.same((await A.client.listVolumes()).find((x) => x.volume.volume_id === id)?.publishedNodeIds, [na], 'ListVolumes shows where it is published');

  const bad: [string, object, keyof typeof import('@grpc/grpc-js').status, RegExp][] = [
    ['no volume id', { node_id: na, volume_capability: SNW }, 'INVALID_ARGUMENT', /volume_id is required/],
    ['no node id', { volume_id: id, volume_capability: SNW }, 'INVALID_ARGUMENT', /node_id is required/],
    ['no capability', { volume_id: id, node_id: na }, 'INVALID_ARGUMENT', /volume_capability/],
    ['a multi-node writer', { volume_id: id, node_id: na, volume_capability: mountCapability('MULTI_NODE_MULTI_WRITER') }, 'INVALID_ARGUMENT', /not supported/],
    ['an unknown volume', { volume_id: 'nope-123', node_id: na, volume_capability: SNW }, 'NOT_FOUND', /does not exist/],
    ['an unknown node', { volume_id: id, node_id: 'no-such-node', volume_capability: SNW }, 'NOT_FOUND', /node no-such-node does not exist/],
  ];
  for (const [name, req, code, msg] of bad) t.ok(await expectCode(ctl('ControllerPublishVolume', req), code, msg), `${name}: ${code}`);

  // Unpublishing: idempotent, and OK for what is not there.
  await ctl('ControllerUnpublishVolume', { volume_id: id, node_id: na });
  await ctl('ControllerUnpublishVolume', { volume_id: id, node_id: na });
  await ctl('ControllerUnpublishVolume', { volume_id: 'nope-123', node_id: na });
  await ctl('ControllerUnpublishVolume', { volume_id: id, node_id: 'no-such-node' });
  await expectCode(ctl('ControllerUnpublishVolume', { node_id: na }), 'INVALID_ARGUMENT', /volume_id is required/);
  t.same(JSON.parse(readFileSync(join(pool, 'volumes', id, 'publish.json'), 'utf8')).attachments, [], 'unpublished');
  const r2 = await ctl('ControllerPublishVolume', { volume_id: id, node_id: nb, volume_capability: SNW });
  t.equal(r2.publish_context['shoal.io/generation'], '2', 'a node that never staged it released nothing: attachable elsewhere at once, as a new attachment');
  await ctl('ControllerUnpublishVolume', { volume_id: id, node_id: '' });
  t.same(JSON.parse(readFileSync(join(pool, 'volumes', id, 'publish.json'), 'utf8')).attachments, [], 'an empty node id unpublishes from every node');

  // Read-only on many nodes; never a writer beside them.
  const ro = (await create('ro')).volume.volume_id;
  await ctl('ControllerPublishVolume', { volume_id: ro, node_id: na, volume_capability: MNRO, readonly: true });
  const r3 = await ctl('ControllerPublishVolume', { volume_id: ro, node_id: nb, volume_capability: MNRO, readonly: true });
  t.equal(r3.publish_context['shoal.io/readonly'], 'true', 'MULTI_NODE_READER_ONLY: published read-only to a second node');
  await expectCode(ctl('ControllerPublishVolume', { volume_id: ro, node_id: nb, volume_capability: SNW }), 'ALREADY_EXISTS', /incompatible/);
  await ctl('ControllerUnpublishVolume', { volume_id: ro, node_id: nb });
  await expectCode(ctl('ControllerPublishVolume', { volume_id: ro, node_id: nb, volume_capability: SNW }), 'FAILED_PRECONDITION', /published to node/);
  await ctl('ControllerUnpublishVolume', { volume_id: ro, node_id: '' });
});

t.test('ValidateVolumeCapabilities', async (t) => {
  const id = (await create('val')).volume.volume_id;
  const ok = await ctl('ValidateVolumeCapabilities', { volume_id: id, volume_capabilities: [SNW, MNRO] });
  t.equal(ok.confirmed.volume_capabilities.length, 2, 'supported: confirmed');
  const no = await ctl('ValidateVolumeCapabilities', { volume_id: id, volume_capabilities: [SNW, mountCapability('MULTI_NODE_MULTI_WRITER')] });
  t.equal(no.confirmed, null, 'one unsupported: not confirmed');
  t.match(no.message, /MULTI_NODE_MULTI_WRITER/, 'and says why');
  await expectCode(ctl('ValidateVolumeCapabilities', { volume_id: 'nope-1', volume_capabilities: [SNW] }), 'NOT_FOUND');
  await expectCode(ctl('ValidateVolumeCapabilities', { volume_id: id }), 'INVALID_ARGUMENT', /volume_capabilities is required/);
  await expectCode(ctl('ValidateVolumeCapabilities', { volume_capabilities: [SNW] }), 'INVALID_ARGUMENT', /volume_id is required/);
});

t.test('ListVolumes and ControllerGetVolume', async (t) => {
  const all = (await ctl('ListVolumes', {})).entries.map((e: { volume: { volume_id: string } }) => e.volume.volume_id);
  t.ok(all.length >= 3, `lists every volume (${all.length})`);
  const seen: string[] = [];
  let token = '';
  let pages = 0;
  do {
    const r = await ctl('ListVolumes', { max_entries: 2, starting_token: token });
    t.ok(r.entries.length <= 2, 'never more than max_entries');
    seen.push(...r.entries.map((e: { volume: { volume_id: string } }) => e.volume.volume_id));
    token = r.next_token;
    pages++;
  } while (token && pages < 100);
  t.same(seen, all, 'paging by 2 yields the same list');
  await expectCode(ctl('ListVolumes', { starting_token: '../etc' }), 'ABORTED', /starting_token/);
  await expectCode(ctl('ListVolumes', { max_entries: -1 }), 'INVALID_ARGUMENT', /max_entries/);
  const one = await ctl('ControllerGetVolume', { volume_id: all[0] });
  t.equal(one.volume.volume_id, all[0], 'ControllerGetVolume');
  await expectCode(ctl('ControllerGetVolume', { volume_id: 'nope-1' }), 'NOT_FOUND');
});

t.test('GetCapacity', async (t) => {
  const before = await A.client.capacity({ capabilities: [SNW] });
  t.ok(before.available > 0 && before.available <= 8 * GiB, `available within --capacity (${before.available})`);
  t.equal(before.minimumVolumeSize, 16 * MiB, 'minimum volume size');
  t.equal(before.maximumVolumeSize, before.available, 'largest volume: what is available');
  await create('cap-one');
  const after = await A.client.capacity({ capabilities: [SNW] });
  t.equal(before.available - after.available, GiB, 'a 1 GiB volume takes 1 GiB of it');
  t.equal((await A.client.capacity({ topology: { segments: { [TOPOLOGY_KEY]: 'pool-elsewhere' } } })).available, 0, 'another topology: nothing');
  t.equal((await A.client.capacity({ capabilities: [mountCapability('MULTI_NODE_MULTI_WRITER')] })).available, 0, 'an unsupported capability: nothing');
});
