// The dispatcher's volume calls (any manager, for its agents' sessions). TaskVolumes hands an
// agent what it needs to stage and publish a task's volumes once every one is attached to the
// node, waiting a while for that; UpdateVolumeStatus records which volumes the node holds, so each
// of its attachments reads in use or released (the volume controller detaches released ones that
// no task there needs). The agent reports what it holds before it asks for a task's volumes, so a
// released mark always predates its next use.
import type { Manager } from '../control/manager.js';
import { readLatest } from '../control/service.js';
import type { MethodSpec } from '../security/authz.js';
import { denied, invalid, notFound } from '../security/errors.js';
import { isTerminal, type TaskObject } from '../services/model.js';
import type { TxnOp } from '../store/types.js';
import { mountsOf, readOnlyAccess, volumeNameFor, type Attachment, type VolumeObject } from './model.js';
import { volumeInput } from './store.js';

/** Longest a TaskVolumes call waits for the attachments before answering "not yet". */
const MAX_WAIT_MS = 20_000;
const MAX_HELD = 4096;

export interface TaskVolumesAnswer {
  ready: boolean;
  waiting: string;
  refused: boolean;
  volumes: {
    volume_id: string;
    name: string;
    driver: string;
    csi_id: string;
    volume_context: Record<string, string>;
    publish_context: Record<string, string>;
    access: string;
    readonly: boolean;
    target: string;
    attach_readonly: boolean;
  }[];
}

/** Where a task's volumes stand on its node (pure over the store's objects). */
export function taskVolumes(t: TaskObject, nodeId: string, volume: (name: string) => VolumeObject | undefined): TaskVolumesAnswer {
  const out: TaskVolumesAnswer = { ready: false, waiting: '', refused: false, volumes: [] };
  if (t.spec.desiredState !== 'running' || isTerminal(t.status.state)) return { ...out, refused: true, waiting: `task ${t.id} is no longer wanted running` };
  for (const m of mountsOf(t.spec.template)) {
    const name = volumeNameFor(t, m);
    const v = volume(name);
    if (!v) {
      if (m.class) return { ...out, waiting: `volume ${name} is being provisioned` };
      return { ...out, refused: true, waiting: `volume ${name} does not exist (removed?)` };
    }
    if (v.status.state === 'failed') return { ...out, refused: true, waiting: `volume ${name} could not be provisioned: ${v.status.message}` };
    if (v.spec.removing) return { ...out, refused: true, waiting: `volume ${name} is being removed` };
    if (v.status.state !== 'created' || !v.status.csiId) return { ...out, waiting: `volume ${name} is being provisioned${v.status.message ? ` (${v.status.message})` : ''}` };
    const a = v.status.attachments.find((x) => x.nodeId === nodeId);
    if (!a || a.state === 'released' || a.state === 'unpublishing') {
      const w = v.status.waiting?.find((x) => x.nodeId === nodeId);
      return { ...out, waiting: `volume ${name} is being attached to this node${w ? ` (${w.message})` : ''}` };
    }
    out.volumes.push({
      volume_id: v.id,
      name,
      driver: v.spec.driver,
      csi_id: v.status.csiId,
      volume_context: v.status.context ?? {},
      publish_context: a.context,
      access: v.spec.access,
      readonly: m.readonly || readOnlyAccess(v.spec.access),
      target: m.target,
      attach_readonly: a.readonly,
    });
  }
  return { ...out, ready: true };
}

/** The attachment states a node's report of what it holds leads to (only the changed ones). */
export function heldChanges(volumes: VolumeObject[], nodeId: string, held: Set<string>): { volume: VolumeObject; attachments: Attachment[] }[] {
  const out: { volume: VolumeObject; attachments: Attachment[] }[] = [];
  for (const v of volumes) {
    let changed = false;
    const attachments = v.status.attachments.map((a) => {
      if (a.nodeId !== nodeId || a.state === 'unpublishing') return a;
      const want = held.has(v.id) ? 'in-use' : 'released';
      if (want === a.state) return a;
      changed = true;
      return { ...a, state: want, since: Date.now() } as Attachment;
    });
    if (changed) out.push({ volume: v, attachments });
  }
  return out;
}

export function volumeDispatchTable(mgr: Manager, session: (sessionId: string, nodeId: string) => void): Record<string, MethodSpec> {
  const both: ('manager' | 'worker')[] = ['manager', 'worker'];
  const store = () => mgr.raft.store;
  const byName = (name: string) => store().getByName('volume', name) as VolumeObject | undefined;
  return {
    TaskVolumes: {
      roles: both,
      unary: async (req: { session_id: string; task_id: string; wait_ms: number }, ctx) => {
        const nodeId = ctx.identity!.nodeId;
        session(req.session_id, nodeId);
        const waitMs = Math.min(Math.max(0, Number(req.wait_ms) || 0), MAX_WAIT_MS);
        // Every write committed before the call is seen (a follower may lag).
        await readLatest(mgr);
        const answer = (): TaskVolumesAnswer => {
          const t = store().get('task', String(req.task_id ?? '')) as TaskObject | undefined;
          if (!t) throw notFound(`task ${req.task_id} does not exist`);
          if (t.nodeId !== nodeId) throw denied(`task ${req.task_id} is not assigned to node ${nodeId}`);
          return taskVolumes(t, nodeId, byName);
        };
        let a = answer();
        if (a.ready || a.refused || waitMs === 0) return a;
        // Wait for a change of the volumes or the task, then look again.
        const end = Date.now() + waitMs;
        while (!a.ready && !a.refused && Date.now() < end) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, end - Date.now());
            const w = store().watch({ kinds: ['volume', 'task'] }, done, undefined, done);
            function done() {
              clearTimeout(timer);
              w?.cancel();
              resolve();
            }
          });
          a = answer();
        }
        return a;
      },
    },
    UpdateVolumeStatus: {
      roles: both,
      unary: async (req: { session_id: string; held: string[] }, ctx) => {
        const nodeId = ctx.identity!.nodeId;
        session(req.session_id, nodeId);
        const list = req.held ?? [];
        if (!Array.isArray(list) || list.length > MAX_HELD || list.some((x) => typeof x !== 'string' || x.length > 128)) throw invalid(`held must be at most ${MAX_HELD} volume ids`);
        const held = new Set(list);
        // Read-modify-write until it sticks: the agent waits for this before using a volume.
        for (let attempt = 0; ; attempt++) {
          const changes = heldChanges(store().list('volume') as VolumeObject[], nodeId, held);
          if (changes.length === 0) return {};
          const ops: TxnOp[] = changes.map((c) => ({ op: 'update', object: volumeInput(c.volume, { status: { attachments: c.attachments } }), expectVersion: c.volume.version }));
          try {
            await mgr.raft.propose(ops);
            return {};
          } catch (e) {
            const c = e as { name?: string; conflict?: { code?: string } };
            if (c.name !== 'ConflictError' || c.conflict?.code !== 'version-mismatch' || attempt >= 8) throw e;
            await new Promise((r) => setTimeout(r, 20 * (attempt + 1)));
          }
        }
      },
    },
  };
}
