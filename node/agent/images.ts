// Images for the node's tasks, through the CRI ImageService: each image is pulled once however
// many tasks want it at the same moment (they wait on the same pull). As Kubernetes' default
// pull policy: an image already present is used as it is, unless its tag is `latest` (or none),
// which is pulled again each time a task needs it.
import type { CriClient } from '../cri/client.js';
import { imagePullBytes, imagePulls } from '../../manager/metrics.js';

export function alwaysPull(image: string): boolean {
  if (image.includes('@')) return false;
  const last = image.slice(image.lastIndexOf('/') + 1);
  return !last.includes(':') || last.endsWith(':latest');
}

export class ImagePuller {
  private readonly inflight = new Map<string, Promise<string>>();
  /** ImageStatus calls in flight: the tasks of one assignment batch share one per image. */
  private readonly checking = new Map<string, Promise<string | undefined>>();

  constructor(private readonly cri: CriClient) {}

  /** Resolves with the image's reference in the runtime once it is present; `pulling` is
   * called if it has to be pulled (the caller shows progress then). */
  async ensure(image: string, pulling: () => void = () => {}): Promise<string> {
    if (!alwaysPull(image) && !this.inflight.has(image)) {
      let c = this.checking.get(image);
      if (!c) {
        c = this.cri.image.ImageStatus({ image: { image } }).then((st) => st.image?.id as string | undefined).finally(() => this.checking.delete(image));
        this.checking.set(image, c);
      }
      const id = await c;
      if (id) return id;
    }
    pulling();
    let p = this.inflight.get(image);
    if (!p) {
      const done = imagePulls.startTimer();
      p = this.cri.image.PullImage({ image: { image } }, 10 * 60_000)
        .then(async (r) => {
          done();
          // The size the runtime now reports for it: what this pull brought (at most).
          const st = await this.cri.image.ImageStatus({ image: { image } }).catch(() => undefined);
          if (st?.image?.size) imagePullBytes.inc(Number(st.image.size));
          return r.image_ref as string;
        })
        .finally(() => this.inflight.delete(image));
      this.inflight.set(image, p);
    }
    return p;
  }
}
