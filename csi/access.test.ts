// Which volume capabilities the driver accepts. Pure functions, no driver.
import t from 'tap';
import { AccessMode } from '../proto/csi/v1/csi.js';
import { mountFlags, unsupported } from './access.js';

const mountCap = (mode: number, fs = '', flags: string[] = []) => ({ mount: { fs_type: fs, mount_flags: flags, volume_mount_group: '' }, access_mode: { mode } });

t.test('supported capabilities', async (t) => {
  for (const m of ['SINGLE_NODE_WRITER', 'SINGLE_NODE_READER_ONLY', 'MULTI_NODE_READER_ONLY'] as const) {
    t.equal(unsupported(mountCap(AccessMode[m])), undefined, m);
  }
  t.equal(unsupported(mountCap(AccessMode.SINGLE_NODE_WRITER, 'ext4', ['noatime', 'nodev,nosuid'])), undefined, 'ext4 with safe flags');
});

t.test('refused capabilities say why', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['missing', undefined, /missing/],
    ['no access mode', { mount: {} }, /access_mode/],
    ['multi-node writer', mountCap(AccessMode.MULTI_NODE_MULTI_WRITER), /MULTI_NODE_MULTI_WRITER is not supported/],
    ['multi-node single writer', mountCap(AccessMode.MULTI_NODE_SINGLE_WRITER), /not supported/],
    ['alpha single-node single writer', mountCap(AccessMode.SINGLE_NODE_SINGLE_WRITER), /not supported/],
    ['block access', { block: {}, access_mode: { mode: AccessMode.SINGLE_NODE_WRITER } }, /block is not supported/],
    ['no access type', { access_mode: { mode: AccessMode.SINGLE_NODE_WRITER } }, /access_type is missing/],
    ['xfs', mountCap(AccessMode.SINGLE_NODE_WRITER, 'xfs'), /fs_type "xfs"/],
    ['a loop option smuggled in', mountCap(AccessMode.SINGLE_NODE_WRITER, '', ['loop']), /mount flag "loop" is not allowed/],
    ['an option list with a bad one', mountCap(AccessMode.SINGLE_NODE_WRITER, '', ['noatime,remount']), /"remount"/],
    ['mount group', { mount: { volume_mount_group: '1000' }, access_mode: { mode: 1 } }, /volume_mount_group/],
  ];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  for (const [name, cap, why] of cases) t.match(unsupported(cap as any), why, name);
});

t.test('mountFlags drops ro/rw (the driver decides those)', async (t) => {
  t.same(mountFlags(mountCap(1, '', ['ro', 'noatime,rw', 'nodev'])), ['noatime', 'nodev']);
});
