// Pushes the benchmark image to the Swarm side's registry over the distribution API, as busybox:1:
// the lab's image (what shoal runs), with its hardlink headers as Docker needs them
// (swarm-image.ts). Run inside the registry's namespace (nsenter --net): the root namespace has no
// route there.
//   node swarm-seed.js HOST:PORT
import { labImage } from '../lab/image.js';
import { dockerImage } from './swarm-image.js';
import { pushImage } from '../runtime/testing/registry.js';

async function main(): Promise<void> {
  const host = process.argv[2];
  if (!host) throw new Error('usage: swarm-seed HOST:PORT');
  const end = Date.now() + 20_000;
  for (;;) {
    try {
      const r = await fetch(`http://${host}/v2/`);
      await r.body?.cancel();
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > end) throw new Error(`the registry at ${host} did not answer within 20 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await pushImage(host, 'busybox', '1', dockerImage(labImage()));
}

main().catch((e) => {
  process.stderr.write(`swarm-seed: ${(e as Error).message}\n`);
  process.exit(1);
});
