// `shoal volume ...` (create NAME, ls, inspect, rm, snapshot, expand) and `shoal volume-class ...`
// through the control API, and the `--mount` of `service create` / `update`
// (`type=volume,source=NAME,target=/data[,readonly]`, or `class=CLASS,size=1G` for a volume per
// slot: Docker's long --mount syntax). `volume create` waits until the volume is provisioned (or
// its driver refused it), showing what it waits for.
import { CliError, call, controlClient, type Target } from './client.js';
import { table } from './format.js';
import type { Flags } from './service.js';
import { bytes, duration } from './units.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

export const VOLUME_FLAGS = ['size', 'driver', 'class', 'access', 'param', 'reclaim', 'from-snapshot', 'mount', 'mount-add', 'mount-rm', 'timeout', 'label'];

export interface WireMount {
  type: string;
  source: string;
  target: string;
  readonly: boolean;
  class: string;
  size_bytes: number;
}

/** `type=volume,source=NAME,target=/data[,readonly]` or `type=volume,class=C,size=1G,target=/data[,source=SUFFIX]`. */
export function parseMount(s: string): WireMount {
  const m: WireMount = { type: 'volume', source: '', target: '', readonly: false, class: '', size_bytes: 0 };
  const bad = (why: string) => new CliError(`--mount ${JSON.stringify(s)}: ${why}; use type=volume,source=VOLUME,target=/PATH[,readonly] or type=volume,class=CLASS,size=SIZE,target=/PATH`, 2);
  for (const p of s.split(',')) {
    const eq = p.indexOf('=');
    const k = eq < 0 ? p : p.slice(0, eq);
    const v = eq < 0 ? undefined : p.slice(eq + 1);
    switch (k) {
      case 'type':
        m.type = v ?? '';
        break;
      case 'source':
      case 'src':
        m.source = v ?? '';
        break;
      case 'target':
      case 'dst':
      case 'destination':
        m.target = v ?? '';
        break;
      case 'readonly':
      case 'ro':
        if (v !== undefined && v !== 'true' && v !== 'false' && v !== '1' && v !== '0') throw bad(`${k} takes no value (or true/false)`);
        m.readonly = v === undefined || v === 'true' || v === '1';
        break;
      case 'class':
        m.class = v ?? '';
        break;
      case 'size':
        if (!v) throw bad('size needs a value (size=1G)');
        m.size_bytes = bytes(v, '--mount size');
        break;
      default:
        throw bad(`unknown option ${JSON.stringify(k)}`);
    }
  }
  if (m.type !== 'volume') throw bad(`type ${JSON.stringify(m.type)} is not supported`);
  if (!m.target) throw bad('give target=/PATH');
  if (!m.source && !m.class) throw bad('give source=VOLUME, or class=CLASS,size=SIZE');
  return m;
}

export function mountsForCreate(f: Flags): { mounts: WireMount[] } {
  return { mounts: f.all('mount').map(parseMount) };
}

/** `service update`: --mount-rm TARGET first, then --mount-add, over the current mounts. */
export function updateMounts(f: Flags, spec: any): void {
  let list: any[] = spec.mounts ?? [];
  for (const rm of f.all('mount-rm')) {
    const left = list.filter((m) => m.target !== rm);
    if (left.length === list.length) throw new CliError(`--mount-rm ${rm}: the service mounts nothing at ${JSON.stringify(rm)} (give the target path)`, 2);
    list = left;
  }
  for (const add of f.all('mount-add')) list.push(parseMount(add));
  spec.mounts = list;
}

function params(f: Flags): Record<string, string> {
  const out: Record<string, string> = {};
  for (const x of f.all('param')) {
    const i = x.indexOf('=');
    if (i <= 0) throw new CliError(`--param needs KEY=VALUE, got ${JSON.stringify(x)}`, 2);
    out[x.slice(0, i)] = x.slice(i + 1);
  }
  return out;
}

function labels(f: Flags): Record<string, string> {
  const out: Record<string, string> = {};
  for (const x of f.all('label')) {
    const i = x.indexOf('=');
    if (i <= 0) throw new CliError(`--label needs KEY=VALUE, got ${JSON.stringify(x)}`, 2);
    out[x.slice(0, i)] = x.slice(i + 1);
  }
  return out;
}

const iso = (ms: unknown) => (Number(ms) ? new Date(Number(ms)).toISOString() : null);

export function volumeJson(v: any) {
  return {
    id: v.id,
    name: v.name,
    labels: v.labels ?? {},
    driver: v.driver,
    class: v.class || null,
    sizeBytes: Number(v.size_bytes),
    capacityBytes: Number(v.capacity_bytes) || null,
    access: v.access,
    params: v.params ?? {},
    state: v.state,
    message: v.message,
    csiId: v.csi_id || null,
    claim: v.claim ? { service: v.claim.service_name, slot: Number(v.claim.slot), mount: v.claim.mount, reclaim: v.reclaim } : null,
    fromSnapshot: v.from_snapshot || null,
    topology: (v.topology ?? []).map((t: any) => t.segments ?? {}),
    attachments: (v.attachments ?? []).map((a: any) => ({ node: a.node_hostname || a.node_id, nodeId: a.node_id, state: a.state, readonly: a.readonly, since: iso(a.since_ms), tasks: a.tasks ?? [], taskIds: a.task_ids ?? [] })),
    waiting: (v.waiting ?? []).map((w: any) => ({ node: w.node_hostname || w.node_id, message: w.message, since: iso(w.since_ms) })),
    snapshots: (v.snapshots ?? []).map((s: any) => ({ name: s.name, id: s.id, sizeBytes: Number(s.size_bytes), createdAt: iso(s.created_at_ms), ready: s.ready })),
    services: v.services ?? [],
    createdAt: iso(v.created_at_ms),
    version: Number(v.version),
  };
}

function human(n: number): string {
  if (!n) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < u.length - 1) {
    x /= 1024;
    i++;
  }
  return `${Number.isInteger(x) ? x : x.toFixed(1)} ${u[i]}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function volumeCommand(t: Target, sub: string | undefined, rest: string[], f: Flags, asJson: boolean): Promise<string> {
  const out = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  const c = controlClient(t);
  switch (sub) {
    case 'create': {
      if (rest.length !== 1) throw new CliError('usage: shoal volume create NAME [--size 1G] [--driver NAME | --class NAME] [--access single-node-writer|single-node-reader-only|multi-node-reader-only] [--param k=v]... [--from-snapshot VOLUME@SNAPSHOT] [--detach]', 2);
      const req = {
        name: rest[0],
        labels: labels(f),
        driver: f.one('driver') ?? '',
        class: f.one('class') ?? '',
        size_bytes: f.has('size') ? bytes(f.one('size')!, '--size') : 0,
        access: f.one('access') ?? '',
        params: params(f),
        from_snapshot: f.one('from-snapshot') ?? '',
      };
      let v = await call(c, 'CreateVolume', req);
      if (!f.has('detach')) {
        // Until the driver created it (or refused it for good).
        const end = Date.now() + (f.has('timeout') ? duration(f.one('timeout')!, '--timeout') : 120_000);
        let said = '';
        while (v.state === 'pending') {
          if (Date.now() > end) throw new CliError(`volume ${v.name} is not provisioned yet${v.message ? ` (${v.message})` : ''}; "shoal volume inspect ${v.name}" follows it`);
          if (v.message && v.message !== said && !asJson) process.stderr.write(`volume ${v.name}: ${v.message}\n`);
          said = v.message;
          await sleep(300);
          v = await call(c, 'GetVolume', { id: v.id });
        }
        if (v.state === 'failed') throw new CliError(`volume ${v.name} could not be provisioned: ${v.message} (remove it with "shoal volume rm ${v.name}")`);
      }
      return asJson ? out(volumeJson(v)) : `${v.name}\n`;
    }
    case 'ls': {
      const r = await call(c, 'ListVolumes', {});
      const list = (r.volumes ?? []).map(volumeJson);
      if (asJson) return out(list);
      if (f.has('quiet')) return list.map((v: any) => `${v.name}\n`).join('');
      return table(['NAME', 'DRIVER', 'SIZE', 'ACCESS', 'STATE', 'ATTACHED TO', 'USED BY'], list.map((v: any) => [
        v.name, v.driver, human(v.capacityBytes ?? v.sizeBytes), v.access, v.state,
        v.attachments.map((a: any) => `${a.node} (${a.state})`).join(', '),
        v.attachments.flatMap((a: any) => a.tasks).join(', '),
      ]));
    }
    case 'inspect': {
      if (rest.length === 0) throw new CliError('usage: shoal volume inspect VOLUME...', 2);
      const list = [];
      for (const id of rest) list.push(volumeJson(await call(c, 'GetVolume', { id })));
      return out(list.length === 1 && !asJson ? list[0] : list);
    }
    case 'rm': {
      if (rest.length === 0) throw new CliError('usage: shoal volume rm VOLUME...', 2);
      for (const id of rest) await call(c, 'RemoveVolume', { id });
      return asJson ? out({ removed: rest }) : rest.map((x) => `${x}\n`).join('');
    }
    case 'snapshot': {
      if (rest.length < 1 || rest.length > 2) throw new CliError('usage: shoal volume snapshot VOLUME [NAME]', 2);
      const s = await call(c, 'SnapshotVolume', { id: rest[0], name: rest[1] ?? '' });
      return asJson ? out({ name: s.name, id: s.id, sizeBytes: Number(s.size_bytes), createdAt: iso(s.created_at_ms), ready: s.ready }) : `${rest[0]}@${s.name}\n`;
    }
    case 'expand': {
      if (rest.length !== 1 || !f.has('size')) throw new CliError('usage: shoal volume expand VOLUME --size SIZE', 2);
      const v = await call(c, 'ExpandVolume', { id: rest[0], size_bytes: bytes(f.one('size')!, '--size') });
      return asJson ? out(volumeJson(v)) : `${v.name}: ${human(Number(v.capacity_bytes))}\n`;
    }
    default:
      throw new CliError('usage: shoal volume create NAME [--size SIZE] | ls | inspect VOLUME... | rm VOLUME... | snapshot VOLUME [NAME] | expand VOLUME --size SIZE', 2);
  }
}

export async function volumeClassCommand(t: Target, sub: string | undefined, rest: string[], f: Flags, asJson: boolean): Promise<string> {
  const out = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  const c = controlClient(t);
  const j = (x: any) => ({ name: x.name, driver: x.driver, params: x.params ?? {}, reclaim: x.reclaim, access: x.access, createdAt: iso(x.created_at_ms), volumes: x.volumes ?? [], services: x.services ?? [] });
  switch (sub) {
    case 'create': {
      if (rest.length !== 1) throw new CliError('usage: shoal volume-class create NAME [--driver D] [--param k=v]... [--reclaim delete|retain] [--access MODE]', 2);
      const x = await call(c, 'CreateVolumeClass', { name: rest[0], driver: f.one('driver') ?? '', params: params(f), reclaim: f.one('reclaim') ?? '', access: f.one('access') ?? '' });
      return asJson ? out(j(x)) : `${x.name}\n`;
    }
    case 'ls': {
      const r = await call(c, 'ListVolumeClasses', {});
      const list = (r.classes ?? []).map(j);
      if (asJson) return out(list);
      return table(['NAME', 'DRIVER', 'ACCESS', 'RECLAIM', 'VOLUMES', 'SERVICES'], list.map((x: any) => [x.name, x.driver, x.access, x.reclaim, String(x.volumes.length), x.services.join(', ')]));
    }
    case 'inspect': {
      if (rest.length === 0) throw new CliError('usage: shoal volume-class inspect CLASS...', 2);
      const list = [];
      for (const name of rest) list.push(j(await call(c, 'GetVolumeClass', { name })));
      return out(list.length === 1 && !asJson ? list[0] : list);
    }
    case 'rm': {
      if (rest.length === 0) throw new CliError('usage: shoal volume-class rm CLASS...', 2);
      for (const name of rest) await call(c, 'RemoveVolumeClass', { name });
      return asJson ? out({ removed: rest }) : rest.map((x) => `${x}\n`).join('');
    }
    default:
      throw new CliError('usage: shoal volume-class create NAME [--driver D] | ls | inspect CLASS... | rm CLASS...', 2);
  }
}
