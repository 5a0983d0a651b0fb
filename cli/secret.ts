// `shoal secret ...` and `shoal config ...` (create NAME FILE|-, ls, inspect, rm) through the
// control API, and the `--secret` / `--config` references of `service create` and `update`
// (`NAME[,target=PATH][,uid=N][,gid=N][,mode=0400]`, as Docker's long syntax, `source=` allowed).
import { readFileSync, statSync } from 'node:fs';
import { CliError, call, controlClient, type Target } from './client.js';
import { table } from './format.js';
import type { Flags } from './service.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

export type FileKind = 'secret' | 'config';
export const FILE_FLAGS = ['secret', 'config', 'secret-add', 'secret-rm', 'config-add', 'config-rm'];

/** The managers' limits (Swarm's), checked here too so a huge file is not read and sent. */
const LIMIT: Record<FileKind, number> = { secret: 500 * 1024, config: 1000 * 1024 };

export interface WireRef {
  name: string;
  target: string;
  uid: string;
  gid: string;
  mode: number | null;
}

/** `NAME[,target=PATH][,uid=N][,gid=N][,mode=0440]` (or `source=NAME,...`). */
export function parseRef(kind: FileKind, s: string): WireRef {
  const flag = `--${kind}`;
  const r: WireRef = { name: '', target: '', uid: '', gid: '', mode: null };
  const parts = s.split(',');
  parts.forEach((p, i) => {
    const eq = p.indexOf('=');
    if (eq < 0) {
      if (i !== 0) throw new CliError(`${flag} ${JSON.stringify(s)}: ${JSON.stringify(p)} must be KEY=VALUE (target, uid, gid, mode)`, 2);
      r.name = p;
      return;
    }
    const k = p.slice(0, eq);
    const v = p.slice(eq + 1);
    switch (k) {
      case 'source':
      case 'src':
        r.name = v;
        break;
      case 'target':
      case 'dst':
        r.target = v;
        break;
      case 'uid':
        r.uid = v;
        break;
      case 'gid':
        r.gid = v;
        break;
      case 'mode':
        if (!/^[0-7]{1,4}$/.test(v)) throw new CliError(`${flag} ${JSON.stringify(s)}: mode must be octal permission bits like 0400 or 0444, got ${JSON.stringify(v)}`, 2);
        r.mode = parseInt(v, 8);
        break;
      default:
        throw new CliError(`${flag} ${JSON.stringify(s)}: unknown option ${JSON.stringify(k)}; use NAME[,target=PATH][,uid=N][,gid=N][,mode=0400]`, 2);
    }
  });
  if (!r.name) throw new CliError(`${flag} ${JSON.stringify(s)}: give the ${kind}'s name (NAME or source=NAME)`, 2);
  return r;
}

/** `service create`: the references given with --secret / --config. */
export function refsForCreate(f: Flags): { secrets: WireRef[]; configs: WireRef[] } {
  return { secrets: f.all('secret').map((s) => parseRef('secret', s)), configs: f.all('config').map((s) => parseRef('config', s)) };
}

/** `service update`: --KIND-rm NAME|TARGET first, then --KIND-add, over the current references. */
export function updateRefs(f: Flags, spec: any): void {
  for (const kind of ['secret', 'config'] as const) {
    const key = `${kind}s`;
    let list: any[] = spec[key] ?? [];
    for (const rm of f.all(`${kind}-rm`)) {
      const left = list.filter((r) => r.name !== rm && r.target !== rm);
      if (left.length === list.length) throw new CliError(`--${kind}-rm ${rm}: the service has no ${kind} ${JSON.stringify(rm)} (by name or target)`, 2);
      list = left;
    }
    for (const add of f.all(`${kind}-add`)) list.push(parseRef(kind, add));
    spec[key] = list;
  }
}

function readData(kind: FileKind, file: string): Buffer {
  if (file !== '-') {
    let size: number;
    try {
      size = statSync(file).size;
    } catch (e) {
      throw new CliError(`cannot read ${file}: ${(e as Error).message}`);
    }
    if (size > LIMIT[kind]) throw new CliError(`${file} is ${size} bytes: a ${kind} holds at most ${LIMIT[kind]} bytes (${LIMIT[kind] / 1024} KiB)`);
  }
  try {
    return readFileSync(file === '-' ? 0 : file);
  } catch (e) {
    throw new CliError(`cannot read ${file === '-' ? 'standard input' : file}: ${(e as Error).message}`);
  }
}

function json(kind: FileKind, o: any) {
  const base = {
    id: o.id,
    name: o.name,
    labels: o.labels ?? {},
    createdAt: Number(o.created_at_ms) ? new Date(Number(o.created_at_ms)).toISOString() : null,
    version: Number(o.version),
    services: o.services ?? [],
  };
  return kind === 'secret' ? base : { ...base, size: Number(o.size), data: Buffer.from(o.data ?? []).toString('base64') };
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

export async function fileCommand(t: Target, kind: FileKind, sub: string | undefined, rest: string[], f: Flags, asJson: boolean): Promise<string> {
  const K = kind === 'secret' ? 'Secret' : 'Config';
  const out = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  switch (sub) {
    case 'create': {
      if (rest.length !== 2) throw new CliError(`usage: shoal ${kind} create [--label k=v] NAME FILE|-   (- reads standard input)`, 2);
      const [name, file] = rest as [string, string];
      const data = readData(kind, file);
      const o = await call(controlClient(t), `Create${K}`, { name, labels: labels(f), data });
      return asJson ? out(json(kind, o)) : `${o.id}\n`;
    }
    case 'ls': {
      const r = await call(controlClient(t), `List${K}s`, {});
      const list = (r[`${kind}s`] ?? []).map((o: any) => json(kind, o));
      if (asJson) return out(list);
      if (f.has('quiet')) return list.map((o: any) => `${o.id}\n`).join('');
      return table(['ID', 'NAME', 'CREATED', 'IN USE BY'], list.map((o: any) => [o.id.slice(0, 12), o.name, o.createdAt ?? '', o.services.join(', ')]));
    }
    case 'inspect': {
      if (rest.length === 0) throw new CliError(`usage: shoal ${kind} inspect NAME...`, 2);
      const c = controlClient(t);
      const list = [];
      for (const id of rest) list.push(json(kind, await call(c, `Get${K}`, { id })));
      return out(list.length === 1 && !asJson ? list[0] : list);
    }
    case 'rm': {
      if (rest.length === 0) throw new CliError(`usage: shoal ${kind} rm NAME...`, 2);
      const c = controlClient(t);
      for (const id of rest) await call(c, `Remove${K}`, { id });
      return asJson ? out({ removed: rest }) : rest.map((x) => `${x}\n`).join('');
    }
    default:
      throw new CliError(`usage: shoal ${kind} create NAME FILE|- | ls | inspect NAME... | rm NAME...`, 2);
  }
}
