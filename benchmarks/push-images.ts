// Run inside the benchmark's network namespace (nsenter): pushes the busybox test image and a
// pause image (one static binary, `pause`, for containerd's pod sandboxes) to the registry
// there, on that namespace's 127.0.0.1.
//   node dist/benchmarks/push-images.js HOST:PORT /path/to/static/pause
import { readFileSync } from 'node:fs';
import { pushImage } from '../runtime/testing/registry.js';
import { buildImage, busyboxImage } from '../runtime/testing/test-image.js';

const [host, pauseBin] = process.argv.slice(2);
if (!host || !pauseBin) { process.stderr.write('usage: push-images.js HOST:PORT PAUSE_BINARY\n'); process.exit(2); }
const pause = buildImage([[{ name: 'pause', data: readFileSync(pauseBin), mode: 0o755 }]], { cmd: ['/pause'], env: [] });
await pushImage(host, 'shoal/busybox', '1', busyboxImage());
await pushImage(host, 'shoal/pause', '1', pause);
