// `shoal events [--since T] [--filter type=service|task|node|...] [--filter name=N] [--follow]`:
// what happened in the cluster, oldest first. Each event carries its place in the store's history
// (version, position); when the manager serving the stream goes away (killed, restarted, lost),
// the CLI connects to another manager and resumes right after the last event it printed: nothing
// twice, nothing skipped (a manager that no longer keeps that far back says so).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, call, controlClient, type Target } from './client.js';
import type { Flags } from './service.js';
import { duration } from './units.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

const TYPES = ['service', 'task', 'node', 'cluster', 'secret', 'config', 'network', 'volume'];
/** How long a following stream keeps looking for a manager before it gives up. */
const RECONNECT_MS = 120_000;

export function parseSince(s: string, now = Date.now()): number {
  if (/^\d+(\.\d+)?(ms|s|m|h)$/.test(s)) return now - duration(s, '--since');
  if (/^\d{4}-\d\d-\d\d/.test(s)) {
    const t = Date.parse(s);
    if (!Number.isNaN(t)) return t;
  }
  throw new CliError(`--since must be a duration back from now (10m, 2h) or a time (2024-05-01T10:00:00Z), got ${JSON.stringify(s)}`, 2);
}

export function parseFilters(list: string[]): { types: string[]; names: string[] } {
  const types: string[] = [];
  const names: string[] = [];
  for (const x of list) {
    const m = /^(type|name|service)=(.+)$/.exec(x);
    if (!m) throw new CliError(`--filter must be type=KIND or name=NAME, got ${JSON.stringify(x)}`, 2);
    if (m[1] === 'type') {
      if (!TYPES.includes(m[2]!)) throw new CliError(`--filter type=${m[2]}: the types are ${TYPES.join(', ')}`, 2);
      types.push(m[2]!);
    } else names.push(m[2]!);
  }
  return { types, names };
}

function line(e: any, json: boolean): string {
  const time = Number(e.time_ms) ? new Date(Number(e.time_ms)).toISOString() : `(version ${e.version})`;
  if (json) return JSON.stringify({ version: Number(e.version), seq: e.seq, time: Number(e.time_ms) ? time : null, type: e.type, action: e.action, id: e.id, name: e.name, attributes: e.attributes ?? {}, message: e.message }) + '\n';
  return `${time}  ${e.type.padEnd(7)} ${e.action.padEnd(16)} ${e.message}\n`;
}

interface Cursor {
  version: number;
  seq?: number;
}

/** Where to go when the manager in use is lost: the original target again, then every manager. */
class Targets {
  private managers: string[] = [];
  /** The first target failed already when next() is asked: start with the others. */
  private i = 1;
  constructor(private readonly first: Target, private readonly retarget?: () => Promise<Target>) {}

  /** Remembers the managers' API addresses (while one answers), for reaching them with the node's identity. */
  async learn(c: any): Promise<void> {
    const idFile = join(this.first.stateDir, 'identity', 'node.json');
    if (this.retarget || !existsSync(idFile)) return;
    try {
      // Through the local socket, the node's own manager is the one being left: not a place to resume.
      let self = '';
      if (!this.first.host) self = (JSON.parse(readFileSync(idFile, 'utf8')) as { nodeId?: string }).nodeId ?? '';
      const r = await call(c, 'ListNodes', {}, 10_000);
      this.managers = (r.nodes ?? []).filter((n: any) => n.manager_status && n.id !== self).map((n: any) => n.addr).filter(Boolean);
    } catch {
      // keep the list we had
    }
  }

  async next(): Promise<Target> {
    if (this.retarget) return this.retarget();
    const all: Target[] = [this.first, ...this.managers.filter((a) => a !== this.first.host).map((host) => ({ stateDir: this.first.stateDir, host }))];
    return all[this.i++ % all.length]!;
  }
}

function describe(t: Target): string {
  return t.host ?? join(t.stateDir, 'shoald.sock');
}

export async function eventsCommand(t: Target, f: Flags, json: boolean, retarget?: () => Promise<Target>): Promise<string> {
  const follow = f.has('follow');
  const since = f.has('since') ? parseSince(f.one('since')!) : 0;
  const { types, names } = parseFilters(f.all('filter'));
  const wanted = (e: any) => names.length === 0 || names.includes(e.name) || names.includes(e.attributes?.service ?? '') || names.some((n) => (e.name as string).startsWith(`${n}.`));
  const targets = new Targets(t, retarget);
  let cursor: Cursor | undefined;
  let target = t;
  let lostSince = 0;
  let stop = false;
  let current: any;
  const onSigint = () => {
    stop = true;
    current?.cancel();
  };
  process.once('SIGINT', onSigint);
  try {
    for (;;) {
      const c = controlClient(target);
      if (follow) await targets.learn(c);
      const req: any = { types, follow, since_ms: cursor ? 0 : since, after_version: cursor?.version ?? 0 };
      if (cursor?.seq !== undefined) req.after_seq = cursor.seq;
      const result = await new Promise<{ ok: boolean; err?: any }>((resolve) => {
        const s = c.Events(req, follow ? {} : { deadline: Date.now() + 60_000 });
        current = s;
        s.on('data', (e: any) => {
          lostSince = 0;
          if (e.action === 'progress') {
            if (!cursor || Number(e.version) > cursor.version || cursor.seq !== undefined) cursor = { version: Math.max(Number(e.version), cursor?.version ?? 0) };
            return;
          }
          if (e.action === 'gap') {
            process.stderr.write(`shoal: events: ${e.note}\n`);
            return;
          }
          cursor = { version: Number(e.version), seq: e.seq };
          if (wanted(e)) process.stdout.write(line(e, json));
        });
        s.on('end', () => resolve({ ok: true }));
        s.on('error', (err: any) => resolve({ ok: false, err }));
      });
      c.close();
      if (stop) return '';
      if (result.ok && !follow) return '';
      const err = result.err;
      // A refusal is final; a lost manager (or one that closed the stream) is not.
      if (err && [3, 7, 9, 12, 16].includes(err.code)) throw new CliError(err.details || err.message);
      const now = Date.now();
      if (!lostSince) lostSince = now;
      if (now - lostSince > RECONNECT_MS) throw new CliError(`events: no manager answered for ${RECONNECT_MS / 1000} s (last: ${describe(target)}: ${err?.details || err?.message || 'stream ended'})`);
      const from = cursor ? `after version ${cursor.version}${cursor.seq !== undefined ? `.${cursor.seq}` : ''}` : 'from the start';
      const prev = target;
      try {
        target = await targets.next();
      } catch (e) {
        target = prev;
        process.stderr.write(`shoal: events: no manager to reach yet (${(e as Error).message}); retrying\n`);
      }
      process.stderr.write(`shoal: events: lost ${describe(prev)} (${err?.details || err?.message || 'the stream ended'}); resuming ${from} on ${describe(target)}\n`);
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
