// bench:volume's cluster side: a volume created, attached, staged and published through a shoal
// cluster in the one-box lab (1 manager, 1 worker; every host runs the built-in CSI driver on the
// lab's shared pool), driven through the control API as `shoal volume create` and `shoal service
// create --mount` send it (no CLI process per call). The clock runs from the CreateVolume call
// until the worker's mount table shows the volume bind-mounted at a task's publish target (the
// last step before the container is created), so it counts what the cluster adds: provisioning
// on the leader, scheduling, the dispatcher, ControllerPublish, NodeStage and NodePublish.
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { volumePaths } from '../csi/client.js';
import { readState } from '../lab/state.js';
import { specFromFlags, type Flags } from '../cli/service.js';
import { mountsForCreate } from '../cli/volume.js';
import { ShoalLab } from './shoal-lab-peer.js';

const DRIVER = 'block.csi.shoal.io';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The flags `shoal service create` would have parsed (the same spec builder). */
function flags(m: Record<string, string[]>): Flags {
  return { one: (k) => m[k]?.at(-1), all: (k) => m[k] ?? [], has: (k) => k in m };
}

export class ClusterVolumes {
  private n = 0;
  private constructor(private readonly lab: ShoalLab) {}

  static async up(log: (s: string) => void): Promise<ClusterVolumes> {
    return new ClusterVolumes(await ShoalLab.up({ managers: 1, workers: 1, log }));
  }

  private worker(): string {
    return readState(this.lab.dir)!.nodes.find((x) => x.name === 'worker-1')!.stateDir;
  }

  private async until<T>(what: string, ms: number, every: number, f: () => Promise<T | undefined> | T | undefined): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`shoal: ${what}: not within ${ms / 1000} s`);
      await sleep(every);
    }
  }

  /** One volume through the cluster: milliseconds from CreateVolume to the publish mount on the worker. */
  async round(sizeBytes: number): Promise<number> {
    const i = ++this.n;
    const name = `bench-${i}`;
    const t0 = process.hrtime.bigint();
    const created = await this.lab.api('CreateVolume', { name, labels: {}, driver: '', class: '', size_bytes: sizeBytes, access: '', params: {}, from_snapshot: '' });
    const v = await this.until(`volume ${name} provisioned`, 120_000, 10, async () => {
      const x = await this.lab.api('GetVolume', { id: created.id });
      if (x.state === 'failed') throw new Error(`shoal: volume ${name} failed: ${x.message}`);
      return x.state === 'created' ? x : undefined;
    });
    const spec = { ...specFromFlags(flags({ replicas: ['1'], constraint: ['node.role==worker'], 'stop-grace-period': ['1s'] }), this.lab.image, ['sleep', '1000000']), ...mountsForCreate(flags({ mount: [`type=volume,source=${name},target=/data`] })) };
    await this.lab.api('CreateService', { name, labels: {}, spec });
    const pub = dirname(volumePaths(this.worker(), DRIVER, v.csi_id, 'x').target) + '/';
    await this.until(`volume ${name} published on worker-1`, 120_000, 5, () => (readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => (l.split(' ')[4] ?? '').startsWith(pub)) ? true : undefined));
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    await this.lab.api('RemoveService', { id: name });
    await this.until(`volume ${name} detached`, 120_000, 50, async () => ((await this.lab.api('GetVolume', { id: created.id })).attachments ?? []).length === 0 || undefined);
    // The service's tasks are still being removed a moment after the detach: refused as in use until then.
    await this.until(`volume ${name} removable`, 120_000, 100, async () => {
      try {
        await this.lab.api('RemoveVolume', { id: created.id });
        return true;
      } catch (e) {
        if ((e as { grpcCode?: number }).grpcCode === 9) return undefined; // FAILED_PRECONDITION: in use
        throw e;
      }
    });
    await this.until(`volume ${name} deleted`, 120_000, 50, async () => ((await this.lab.api('ListVolumes', {})).volumes ?? []).some((x: { id: string }) => x.id === created.id) ? undefined : true);
    return ms;
  }

  down(): Promise<string[]> {
    return this.lab.down();
  }
}
