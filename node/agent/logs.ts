// The agent's side of task logs: a manager subscribes to some of this node's tasks, the agent
// reads their containers' CRI log files (`<time> <stream> <P|F> <text>` per line, written by the
// runtime into the pod's log directory) and publishes the lines back in batches; when following,
// it keeps reading what the containers write until the subscription is closed.
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface LogEntry {
  task_id: string;
  container: string;
  stream: string;
  time_ns: number;
  line: string;
}

export interface Subscription {
  id: string;
  task_ids: string[];
  follow: boolean;
  tail: number;
  close: boolean;
}

export type Publish = (batch: { entries: LogEntry[]; done: boolean; err: string }) => Promise<{ cancelled: boolean }>;

/** One CRI log line; undefined if it is not in the CRI format. */
export function parseCriLine(raw: string): { timeNs: number; stream: string; partial: boolean; text: string } | undefined {
  const a = raw.indexOf(' ');
  const b = raw.indexOf(' ', a + 1);
  const c = raw.indexOf(' ', b + 1);
  if (a < 0 || b < 0) return undefined;
  const ts = raw.slice(0, a);
  const stream = raw.slice(a + 1, b);
  const tag = c < 0 ? raw.slice(b + 1) : raw.slice(b + 1, c);
  const text = c < 0 ? '' : raw.slice(c + 1);
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m || (stream !== 'stdout' && stream !== 'stderr')) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  const frac = (m[2] ?? '').padEnd(9, '0');
  return { timeNs: ms * 1e6 + Number(frac), stream, partial: tag.startsWith('P'), text };
}

/** Reads one container's log file from an offset, joining partial lines. */
class FileReader {
  offset = 0;
  private rest = '';
  private partial: { stream: string; text: string; timeNs: number } | undefined;

  constructor(readonly path: string, readonly taskId: string, readonly container: string) {}

  read(max = 4 << 20): LogEntry[] {
    let size: number;
    try {
      size = statSync(this.path).size;
    } catch {
      return [];
    }
    if (size < this.offset) {
      // Truncated or replaced (a log reopened): start again from its beginning.
      this.offset = 0;
      this.rest = '';
    }
    if (size === this.offset) return [];
    const len = Math.min(size - this.offset, max);
    const buf = Buffer.alloc(len);
    const fd = openSync(this.path, 'r');
    try {
      readSync(fd, buf, 0, len, this.offset);
    } finally {
      closeSync(fd);
    }
    this.offset += len;
    const text = this.rest + buf.toString('utf8');
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    const out: LogEntry[] = [];
    for (const raw of lines) {
      const p = parseCriLine(raw);
      if (!p) continue;
      if (p.partial) {
        if (this.partial) this.partial.text += p.text;
        else this.partial = { stream: p.stream, text: p.text, timeNs: p.timeNs };
        continue;
      }
      const whole = this.partial ? this.partial.text + p.text : p.text;
      const t = this.partial?.timeNs ?? p.timeNs;
      this.partial = undefined;
      out.push({ task_id: this.taskId, container: this.container, stream: p.stream, time_ns: t, line: whole });
    }
    return out;
  }
}

const BATCH = 500;

export class LogPublisher {
  private readonly active = new Map<string, { stop(): void }>();

  constructor(private readonly logRoot: string, private readonly log: (m: string) => void) {}

  handle(sub: Subscription, publish: Publish): void {
    if (sub.close) {
      this.active.get(sub.id)?.stop();
      this.active.delete(sub.id);
      return;
    }
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const stop = () => {
      stopped = true;
      clearTimeout(timer);
    };
    this.active.set(sub.id, { stop });
    const readers = new Map<string, FileReader>();
    const scan = () => {
      for (const tid of sub.task_ids) {
        const dir = join(this.logRoot, tid);
        if (!existsSync(dir)) continue;
        let files: string[] = [];
        try {
          files = readdirSync(dir).filter((f) => f.endsWith('.log'));
        } catch {
          continue;
        }
        for (const f of files) {
          const path = join(dir, f);
          if (!readers.has(path)) readers.set(path, new FileReader(path, tid, f.slice(0, -'.log'.length)));
        }
      }
    };
    const send = async (entries: LogEntry[], done: boolean): Promise<boolean> => {
      for (let i = 0; i < entries.length || (i === 0 && done); i += BATCH) {
        const last = i + BATCH >= entries.length;
        const r = await publish({ entries: entries.slice(i, i + BATCH), done: done && last, err: '' });
        if (r.cancelled) return false;
        if (entries.length === 0) break;
      }
      return true;
    };
    void (async () => {
      try {
        scan();
        // The backlog: everything (or the last `tail` lines of each container), in time order.
        let first: LogEntry[] = [];
        for (const r of readers.values()) {
          let all: LogEntry[] = [];
          for (let chunk = r.read(); chunk.length > 0; chunk = r.read()) all = all.concat(chunk);
          if (sub.tail > 0) all = all.slice(-sub.tail);
          first = first.concat(all);
        }
        first.sort((a, b) => a.time_ns - b.time_ns);
        if (!(await send(first, !sub.follow)) || !sub.follow) return;
        const follow = async () => {
          if (stopped) return;
          scan();
          let more: LogEntry[] = [];
          for (const r of readers.values()) more = more.concat(r.read());
          more.sort((a, b) => a.time_ns - b.time_ns);
          if (more.length > 0 && !(await send(more, false))) return stop();
          if (!stopped) timer = setTimeout(() => void follow(), 250);
        };
        await follow();
      } catch (e) {
        this.log(`agent: logs for subscription ${sub.id}: ${(e as Error).message}`);
        await publish({ entries: [], done: true, err: (e as Error).message }).catch(() => {});
      } finally {
        if (!sub.follow || stopped) this.active.delete(sub.id);
      }
    })();
  }

  stopAll(): void {
    for (const a of this.active.values()) a.stop();
    this.active.clear();
  }
}
