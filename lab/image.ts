// The lab's image: the runtime's busybox test image (Debian's busybox-static in layers), with a
// layer more that links the applets a demo service and a student's experiments want.
import { buildImage, busyboxLayers, type BuiltImage } from '../runtime/testing/test-image.js';
import type { WriteEntry } from '../runtime/testing/tar-writer.js';

const EXTRA = ['httpd', 'nc', 'wget', 'nslookup', 'ip', 'ifconfig', 'ping', 'sed', 'date', 'uptime', 'free', 'top', 'vi', 'less', 'find', 'xargs', 'md5sum', 'sha256sum', 'du', 'cp', 'mv', 'ln', 'chmod', 'uname', 'whoami', 'basename', 'dirname', 'sort', 'uniq', 'expr', 'timeout'];

/** Version 1 (busybox:1, :latest), or version 2 (busybox:2: the same with another page), so a
 * rolling update in the lab has a real new image to roll out. */
export function labImage(version: 1 | 2 = 1): BuiltImage {
  const extra: WriteEntry[] = [
    ...EXTRA.map((a): WriteEntry => ({ name: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
    { name: 'www/', type: 'dir' },
    { name: 'www/index.html', data: '<h1>hello from a shoal task</h1>\n' },
  ];
  const layers = [...busyboxLayers(), extra];
  if (version === 2) layers.push([{ name: 'www/index.html', data: '<h1>hello from version 2</h1>\n' }, { name: 'VERSION', data: '2\n' }]);
  return buildImage(layers, { cmd: ['sh'] });
}
