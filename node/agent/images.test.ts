// The agent's image step: the tasks of one batch share one ImageStatus per image, and one pull.
// The CRI ImageService here is a stand-in that counts calls (what the puller asks of it is all
// this checks); the real runtime's answers are covered by the runtime's own tests.
import t from 'tap';
import type { CriClient } from '../cri/client.js';
import { ImagePuller } from './images.js';

function fakeCri(present: Set<string>) {
  const calls = { status: 0, pull: 0 };
  const tick = () => new Promise((r) => setTimeout(r, 5));
  const image = {
    ImageStatus: async (req: { image: { image: string } }) => {
      calls.status++;
      await tick();
      return present.has(req.image.image) ? { image: { id: `sha256:${req.image.image}` } } : {};
    },
    PullImage: async (req: { image: { image: string } }) => {
      calls.pull++;
      await tick();
      present.add(req.image.image);
      return { image_ref: `sha256:${req.image.image}` };
    },
  };
  return { cri: { image } as unknown as CriClient, calls };
}

t.test('concurrent tasks of a present image share one ImageStatus; a later batch asks again', async (t) => {
  const { cri, calls } = fakeCri(new Set(['reg/busybox:1']));
  const p = new ImagePuller(cri);
  const ids = await Promise.all(Array.from({ length: 17 }, () => p.ensure('reg/busybox:1')));
  t.same(new Set(ids), new Set(['sha256:reg/busybox:1']));
  t.equal(calls.status, 1, 'one status check for 17 tasks');
  await p.ensure('reg/busybox:1');
  t.equal(calls.status, 2, 'not cached past the batch: the image may have been removed since');
  t.equal(calls.pull, 0);
});

t.test('an absent image is pulled once for all the tasks that wait for it', async (t) => {
  const { cri, calls } = fakeCri(new Set());
  const p = new ImagePuller(cri);
  let told = 0;
  const ids = await Promise.all(Array.from({ length: 5 }, () => p.ensure('reg/app:2', () => void told++)));
  t.same(new Set(ids), new Set(['sha256:reg/app:2']));
  t.equal(calls.pull, 1, 'one pull');
  t.equal(told, 5, 'each waiting task is told it is pulling');
  await p.ensure('reg/app:latest');
  await p.ensure('reg/app:latest');
  t.equal(calls.pull, 3, ':latest is pulled each time (as Kubernetes\' default policy)');
});
