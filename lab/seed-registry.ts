// Pushes the lab image to the lab's registry over the distribution API. Run by `lab up` inside
// the registry's namespace (`ip netns exec`): the root namespace has no route into the lab.
//   node seed-registry.js HOST:PORT
import { labImage } from './image.js';
import { pushImage } from '../runtime/testing/registry.js';

async function main(): Promise<void> {
  const host = process.argv[2];
  if (!host) throw new Error('usage: seed-registry HOST:PORT');
  // The registry may still be binding: wait for its API root.
  const end = Date.now() + 20_000;
  for (;;) {
    try {
      const r = await fetch(`http://${host}/v2/`);
      await r.body?.cancel();
      if (r.status === 200) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > end) throw new Error(`the registry at ${host} did not answer within 20 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const img = labImage(1);
  await pushImage(host, 'busybox', '1', img);
  await pushImage(host, 'busybox', 'latest', img);
  await pushImage(host, 'busybox', '2', labImage(2));
}

main().catch((e) => {
  process.stderr.write(`seed-registry: ${(e as Error).message}\n`);
  process.exit(1);
});
