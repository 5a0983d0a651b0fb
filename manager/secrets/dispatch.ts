// What of the secrets and configs one node receives with its assignments: exactly those that a
// task sent to it uses, while that task has not ended. The dispatcher tells this tracker every task
// it sends or takes back; `changes()` then gives the secrets and configs to send (a secret
// decrypted here, with the data key) and the ones to take back, so a node never holds a secret no
// task of it needs. Nothing of a secret's data is logged.
import { isTerminal, type TaskObject } from '../services/model.js';
import type { ObjectStore } from '../store/store.js';
import type { DataKeyKeeper } from './keeper.js';
import { secretAad, type ConfigObject, type FileKind, type SecretObject } from './model.js';

export interface FileChange {
  action: 'update' | 'remove';
  task_id: string;
  task: Buffer;
  secret?: { id: string; name: string; data: Buffer };
  config?: { id: string; name: string; data: Buffer };
}

const KINDS: FileKind[] = ['secret', 'config'];
/** File data per assignments message: well under gRPC's default 4 MiB receive limit. */
export const MESSAGE_BUDGET = 2 * 1024 * 1024;

export class NodeFiles {
  /** Task id -> the secret and config ids it needs (only tasks that need some and have not ended). */
  private readonly needs = new Map<string, Record<FileKind, string[]>>();
  private readonly sent: Record<FileKind, Map<string, string>> = { secret: new Map(), config: new Map() };
  private readonly missing = new Set<string>();
  private left = false;

  constructor(
    private readonly store: ObjectStore,
    private readonly keeper: DataKeyKeeper,
    private readonly nodeId: string,
    private readonly log: (m: string) => void,
  ) {}

  /** A task as the node now has it; undefined once it is taken back from the node. */
  task(id: string, t: TaskObject | undefined): void {
    const tpl = t?.spec.template;
    if (!t || !tpl || isTerminal(t.status.state) || (!tpl.secrets?.length && !tpl.configs?.length)) {
      this.needs.delete(id);
      return;
    }
    this.needs.set(id, { secret: (tpl.secrets ?? []).map((r) => r.id), config: (tpl.configs ?? []).map((r) => r.id) });
  }

  /** Ids of what the node holds now (for tests and logs). */
  holding(kind: FileKind): string[] {
    return [...this.sent[kind].keys()];
  }

  /** True when the last changes() stopped at the message budget: call it again for the rest. */
  more(): boolean {
    return this.left;
  }

  /**
   * What to send so the node holds exactly what its tasks need: removals first, then data, at
   * most `budget` bytes of it (at least one file). Throws (UNAVAILABLE) if a secret the node
   * needs cannot be decrypted here (no data key yet).
   */
  changes(budget = MESSAGE_BUDGET): FileChange[] {
    const out: FileChange[] = [];
    let bytes = 0;
    this.left = false;
    for (const kind of KINDS) {
      const want = new Set<string>();
      for (const n of this.needs.values()) for (const id of n[kind]) want.add(id);
      const sent = this.sent[kind];
      for (const [id, name] of sent) {
        if (want.has(id)) continue;
        sent.delete(id);
        out.push({ action: 'remove', task_id: '', task: Buffer.alloc(0), [kind]: { id, name, data: Buffer.alloc(0) } });
      }
      for (const id of want) {
        if (sent.has(id)) continue;
        if (bytes > 0 && bytes >= budget) {
          this.left = true;
          continue;
        }
        const o = this.store.get(kind, id) as SecretObject | ConfigObject | undefined;
        if (!o) {
          // Removed after the task was written (only possible for tasks of an older spec): the
          // agent fails that task, saying the file never came.
          if (!this.missing.has(id)) this.log(`dispatcher: node ${this.nodeId} has a task that uses ${kind} ${id}, which no longer exists`);
          this.missing.add(id);
          continue;
        }
        const data = kind === 'secret' ? this.keeper.key().open((o as SecretObject).spec.sealed, secretAad(id)) : Buffer.from((o as ConfigObject).spec.data);
        sent.set(id, o.name);
        bytes += data.length;
        out.push({ action: 'update', task_id: '', task: Buffer.alloc(0), [kind]: { id, name: o.name, data } });
        this.log(`dispatcher: sending ${kind} ${o.name} (${id}) to node ${this.nodeId} with its assignments`);
      }
    }
    return out;
  }
}
