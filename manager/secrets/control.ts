// The control API for secrets and configs (proto/control/control.proto): create, list, inspect,
// remove. Manager-only; writes run on the leader. A secret's data is sealed with the data key
// before it is proposed and is never answered back or logged; a config's data is kept and shown.
// Bad input (a name, empty or oversized data, a duplicate) is refused before anything is proposed.
import { randomBytes } from 'node:crypto';
import type { Manager } from '../control/manager.js';
import { readLatest } from '../control/service.js';
import type { MethodSpec } from '../security/authz.js';
import { alreadyExists, invalid, notFound, precondition } from '../security/errors.js';
import type { ServiceObject } from '../services/model.js';
import type { StoreObject } from '../store/types.js';
import type { DataKeyKeeper } from './keeper.js';
import { MAX_SIZE, nameError, secretAad, type ConfigObject, type FileKind, type FileStatus } from './model.js';
import { usedBy } from './refs.js';

const M: 'manager'[] = ['manager'];
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._\/-]{0,252}$/;

function randId(): string {
  return BigInt('0x' + randomBytes(16).toString('hex')).toString(36).padStart(25, '0');
}

function kib(n: number): string {
  return `${Math.round(n / 1024)} KiB`;
}

export function resolveFile(mgr: Manager, kind: FileKind, ref: string): StoreObject {
  if (!ref) throw invalid(`give a ${kind} id, a unique id prefix or a name`);
  const store = mgr.raft.store;
  const exact = store.get(kind, ref) ?? store.getByName(kind, ref);
  if (exact) return exact;
  const byPrefix = store.list(kind).filter((o) => o.id.startsWith(ref));
  if (byPrefix.length === 1) return byPrefix[0]!;
  if (byPrefix.length > 1) throw invalid(`${JSON.stringify(ref)} matches several ${kind}s (${byPrefix.map((o) => o.name).join(', ')}); use the name`);
  throw notFound(`no ${kind} ${JSON.stringify(ref)}: "shoal ${kind} ls" lists them`);
}

function checkLabels(labels: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (!LABEL_KEY.test(k)) throw invalid(`label key ${JSON.stringify(k)} is not valid (letters, digits, . _ / -, at most 253 characters)`);
    out[k] = String(v);
  }
  return out;
}

function toWire(o: StoreObject, services: ServiceObject[]) {
  const base = {
    id: o.id,
    name: o.name,
    labels: o.labels,
    created_at_ms: (o.status as FileStatus | null)?.createdAt ?? 0,
    version: o.version,
    created_version: o.createdVersion,
    services: usedBy(services, o.kind as FileKind, o.id).map((u) => u.name),
  };
  if (o.kind === 'secret') return base;
  const data = Buffer.from((o as ConfigObject).spec.data);
  return { ...base, data, size: data.length };
}

export function secretsTable(mgr: Manager, keeper: DataKeyKeeper, log: (m: string) => void): Record<string, MethodSpec> {
  const services = () => mgr.raft.store.list('service') as ServiceObject[];
  const table: Record<string, MethodSpec> = {};
  for (const kind of ['secret', 'config'] as const) {
    const K = kind === 'secret' ? 'Secret' : 'Config';
    table[`Create${K}`] = {
      roles: M,
      leader: true,
      unary: async (req: { name: string; labels: Record<string, string>; data: Buffer }) => {
        const bad = nameError(kind, req.name);
        if (bad) throw invalid(bad);
        const data = Buffer.from(req.data ?? []);
        if (data.length === 0) throw invalid(`${kind} ${req.name}: the data is empty; give a file with content (or - to read standard input)`);
        if (data.length > MAX_SIZE[kind]) throw invalid(`${kind} ${req.name}: the data is ${data.length} bytes (${kib(data.length)}), over the limit of ${MAX_SIZE[kind]} bytes (${kib(MAX_SIZE[kind])})`);
        const labels = checkLabels(req.labels);
        const taken = () => alreadyExists(`a ${kind} named ${JSON.stringify(req.name)} exists already: ${kind}s cannot change; create one with another name and move the services to it ("shoal service update --${kind}-rm OLD --${kind}-add NEW SERVICE")`);
        if (mgr.raft.store.getByName(kind, req.name)) throw taken();
        const id = randId();
        // Sealed here, on the leader: the raft log, the WAL and the snapshots only see ciphertext.
        const spec = kind === 'secret' ? { sealed: keeper.key().seal(data, secretAad(id)) } : { data };
        const status: FileStatus = { createdAt: Date.now() };
        try {
          const r = await mgr.raft.propose([{ op: 'create', object: { kind, id, name: req.name, labels, spec, status } }]);
          const o = r.objects[0]!;
          log(`control: created ${kind} ${o.name} (${o.id})${kind === 'secret' ? `, sealed with data key ${keeper.key().id}` : ''}`);
          return toWire(o, []);
        } catch (e) {
          if ((e as { conflict?: { code?: string } }).conflict?.code === 'name-taken') throw taken();
          throw e;
        }
      },
    };
    table[`List${K}s`] = {
      roles: M,
      unary: async () => {
        await readLatest(mgr);
        const svcs = services();
        return { [`${kind}s`]: mgr.raft.store.list(kind).sort((a, b) => (a.name < b.name ? -1 : 1)).map((o) => toWire(o, svcs)) };
      },
    };
    table[`Get${K}`] = {
      roles: M,
      unary: async (req: { id: string }) => {
        await readLatest(mgr);
        return toWire(resolveFile(mgr, kind, req.id), services());
      },
    };
    table[`Remove${K}`] = {
      roles: M,
      leader: true,
      unary: async (req: { id: string }) => {
        for (let attempt = 0; ; attempt++) {
          const o = resolveFile(mgr, kind, req.id);
          const users = usedBy(services(), kind, o.id);
          if (users.length > 0) {
            const say = users.map((u) => (u.by === 'spec' ? u.name : `${u.name} (the previous revision, which a rollback returns to)`));
            const fix = users.some((u) => u.by === 'spec') ? `"shoal service update --${kind}-rm ${o.name} SERVICE"` : '';
            const fix2 = users.some((u) => u.by === 'rollback') ? `another update of ${users.filter((u) => u.by === 'rollback').map((u) => u.name).join(', ')} (e.g. "shoal service update --force SERVICE") so its previous revision no longer uses it` : '';
            throw precondition(`${kind} ${o.name} is in use by service${users.length > 1 ? 's' : ''} ${say.join(', ')}: free it first with ${[fix, fix2].filter(Boolean).join(', and ')}`);
          }
          try {
            // At the version the check saw: a service that took it up meanwhile moved the version.
            await mgr.raft.propose([{ op: 'delete', kind, id: o.id, expectVersion: o.version }]);
            log(`control: removed ${kind} ${o.name} (${o.id})`);
            return {};
          } catch (e) {
            if ((e as { conflict?: { code?: string } }).conflict?.code !== 'version-mismatch' || attempt >= 5) throw e;
          }
        }
      },
    };
  }
  return table;
}
