// resolveUser reads the image's /etc/passwd and /etc/group from the container's root; a symlink
// anywhere on that path (an image's `etc -> /host/dir` or `passwd -> /outside`) must not make it
// read files outside the root.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveUser } from './container.js';

const base = mkdtempSync(join(tmpdir(), `shoal-user-${process.pid}-`));
t.teardown(() => rmSync(base, { recursive: true, force: true }));
// Stands for the host's /etc: what a hostile image would point at.
const outside = join(base, 'host-etc');
mkdirSync(outside);
writeFileSync(join(outside, 'passwd'), 'root:x:0:0::/:/bin/sh\nhostuser:x:4242:4343::/:/bin/sh\n');
writeFileSync(join(outside, 'group'), 'root:x:0:\nhostgroup:x:4343:hostuser\nextra:x:777:root\n');

const rootfs = (name: string) => { const r = join(base, name); mkdirSync(r); return r; };

t.test('a plain /etc is read', async (t) => {
  const r = rootfs('plain');
  mkdirSync(join(r, 'etc'));
  writeFileSync(join(r, 'etc', 'passwd'), 'root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n');
  writeFileSync(join(r, 'etc', 'group'), 'root:x:0:\napp:x:1001:\nwheel:x:10:app\n');
  t.same(resolveUser(r, 'app'), { uid: 1000, gid: 1001, groups: [10] });
  t.same(resolveUser(r, '1000:wheel'), { uid: 1000, gid: 10, groups: [] });
});

t.test('etc as an absolute symlink out of the root is not followed', async (t) => {
  const r = rootfs('etc-link');
  symlinkSync(outside, join(r, 'etc'));
  t.throws(() => resolveUser(r, 'hostuser'), /not in the image's \/etc\/passwd/, 'a user only the outside file has is unknown');
  t.same(resolveUser(r, '0'), { uid: 0, gid: 0, groups: [] }, 'numeric ids still work, with nothing taken from outside');
  t.throws(() => resolveUser(r, '0:hostgroup'), /not in the image's \/etc\/group/);
});

t.test('passwd and group as symlinks out of the root are not followed', async (t) => {
  const r = rootfs('file-link');
  mkdirSync(join(r, 'etc'));
  symlinkSync(join(outside, 'passwd'), join(r, 'etc', 'passwd'));
  symlinkSync('../../host-etc/group', join(r, 'etc', 'group'));
  t.throws(() => resolveUser(r, 'hostuser'), /not in the image's \/etc\/passwd/);
  t.same(resolveUser(r, '0'), { uid: 0, gid: 0, groups: [] }, 'no supplementary groups read from outside');
});

t.test('a directory or FIFO where passwd should be is treated as missing', async (t) => {
  const r = rootfs('odd');
  mkdirSync(join(r, 'etc', 'passwd'), { recursive: true });
  t.throws(() => resolveUser(r, 'app'), /not in the image's \/etc\/passwd/);
});
