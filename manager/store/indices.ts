// The store's tables: objects by kind and id, plus the secondary indices the orchestrator's
// queries need (name unique per kind, by service, by node, by label). Kept in step by add/remove.
import type { Kind, StoreObject } from './types.js';

type Multi = Map<string, Set<string>>;

function addMulti(m: Multi, key: string, id: string): void {
  let s = m.get(key);
  if (!s) m.set(key, (s = new Set()));
  s.add(id);
}

function delMulti(m: Multi, key: string, id: string): void {
  const s = m.get(key);
  if (!s) return;
  s.delete(id);
  if (s.size === 0) m.delete(key);
}

const sep = '\u0000';

export class Tables {
  readonly byId = new Map<Kind, Map<string, StoreObject>>();
  private readonly byName = new Map<string, string>(); // kind\0name -> id
  private readonly byService: Multi = new Map(); // kind\0serviceId -> ids
  private readonly byNode: Multi = new Map(); // kind\0nodeId -> ids
  private readonly byLabel: Multi = new Map(); // kind\0k=v -> ids
  count = 0;

  get(kind: Kind, id: string): StoreObject | undefined {
    return this.byId.get(kind)?.get(id);
  }

  idByName(kind: Kind, name: string): string | undefined {
    return this.byName.get(kind + sep + name);
  }

  add(o: StoreObject): void {
    let t = this.byId.get(o.kind);
    if (!t) this.byId.set(o.kind, (t = new Map()));
    t.set(o.id, o);
    this.count++;
    this.byName.set(o.kind + sep + o.name, o.id);
    if (o.serviceId) addMulti(this.byService, o.kind + sep + o.serviceId, o.id);
    if (o.nodeId) addMulti(this.byNode, o.kind + sep + o.nodeId, o.id);
    for (const [k, v] of Object.entries(o.labels)) addMulti(this.byLabel, o.kind + sep + k + '=' + v, o.id);
  }

  /** Puts `o` in place of the object of the same kind and id, whose indexed fields it shares. */
  replace(o: StoreObject): void {
    this.byId.get(o.kind)!.set(o.id, o);
  }

  remove(o: StoreObject): void {
    const t = this.byId.get(o.kind);
    if (!t || !t.delete(o.id)) return;
    this.count--;
    if (this.byName.get(o.kind + sep + o.name) === o.id) this.byName.delete(o.kind + sep + o.name);
    if (o.serviceId) delMulti(this.byService, o.kind + sep + o.serviceId, o.id);
    if (o.nodeId) delMulti(this.byNode, o.kind + sep + o.nodeId, o.id);
    for (const [k, v] of Object.entries(o.labels)) delMulti(this.byLabel, o.kind + sep + k + '=' + v, o.id);
  }

  clear(): void {
    this.byId.clear();
    this.byName.clear();
    this.byService.clear();
    this.byNode.clear();
    this.byLabel.clear();
    this.count = 0;
  }

  /** Ids of `kind` matching every given criterion, using the smallest index first. */
  query(kind: Kind, q: { serviceId?: string; nodeId?: string; labels?: Record<string, string> }): StoreObject[] {
    const sets: Set<string>[] = [];
    const empty = new Set<string>();
    if (q.serviceId !== undefined) sets.push(this.byService.get(kind + sep + q.serviceId) ?? empty);
    if (q.nodeId !== undefined) sets.push(this.byNode.get(kind + sep + q.nodeId) ?? empty);
    for (const [k, v] of Object.entries(q.labels ?? {})) sets.push(this.byLabel.get(kind + sep + k + '=' + v) ?? empty);
    const table = this.byId.get(kind);
    if (!table) return [];
    if (sets.length === 0) return [...table.values()];
    sets.sort((a, b) => a.size - b.size);
    const out: StoreObject[] = [];
    outer: for (const id of sets[0]!) {
      for (let i = 1; i < sets.length; i++) if (!sets[i]!.has(id)) continue outer;
      out.push(table.get(id)!);
    }
    return out;
  }
}
