// Building volume and volume class objects for the store, and the read-modify-write loop used
// where a write must land whatever else changed the object meanwhile (the volume controller's
// record of a CSI call that already happened: the driver's state is the truth to record).
import type { ReplicatedNode } from '../raftnode/node.js';
import type { ObjectInput } from '../store/types.js';
import type { VolumeObject, VolumeSpec, VolumeStatus } from './model.js';

export function volumeInput(v: VolumeObject, patch: { spec?: Partial<VolumeSpec>; status?: Partial<VolumeStatus> }): ObjectInput {
  return {
    kind: 'volume',
    id: v.id,
    name: v.name,
    labels: v.labels,
    spec: patch.spec ? { ...v.spec, ...patch.spec } : v.spec,
    status: patch.status ? { ...v.status, ...patch.status } : v.status,
  };
}

type Raft = Pick<ReplicatedNode, 'store' | 'propose'>;

/**
 * Applies `change` to the volume's latest version until it commits: undefined from `change`
 * means nothing to write; 'delete' removes the object. Returns the object written (or undefined).
 */
export async function updateVolume(raft: Raft, id: string, change: (v: VolumeObject) => ObjectInput | 'delete' | undefined, attempts = 10): Promise<VolumeObject | undefined> {
  for (let i = 0; ; i++) {
    const v = raft.store.get('volume', id) as VolumeObject | undefined;
    if (!v) return undefined;
    const inp = change(v);
    if (!inp) return v;
    try {
      if (inp === 'delete') {
        await raft.propose([{ op: 'delete', kind: 'volume', id, expectVersion: v.version }]);
        return undefined;
      }
      const r = await raft.propose([{ op: 'update', object: inp, expectVersion: v.version }]);
      return r.objects[0] as VolumeObject;
    } catch (e) {
      const c = e as { name?: string; conflict?: { code?: string } };
      if (c.name !== 'ConflictError' || c.conflict?.code !== 'version-mismatch' || i >= attempts) throw e;
      await new Promise((r) => setTimeout(r, 20 * (i + 1)));
    }
  }
}
