// The log line of shoal's daemons, shared like a contract: operators' tools (journald, Loki, jq)
// read it. pino JSON lines when stderr is a pipe or a file (systemd, the lab, tests), readable
// lines on a terminal. A line about a node, task or service carries its id in a field of its own
// (nodeId, taskId, serviceId), so `jq 'select(.taskId == "...")'` finds everything about it.
//
// Components take a `Log`: a function of a message and optional fields. It stays a plain function
// so that parts (manager, node, plugins) need no logger object and tests can pass `() => {}`.
import { writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import { destination, pino, stdTimeFunctions } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
export type LogFormat = 'json' | 'text';

export interface LogFields {
  /** Default: warn for a message that says "warning:", info otherwise. */
  level?: LogLevel;
  nodeId?: string;
  taskId?: string;
  serviceId?: string;
  [k: string]: unknown;
}

export type Log = (msg: string, fields?: LogFields) => void;

export interface LogOptions {
  level: LogLevel;
  format: LogFormat;
  /** Fields on every line (e.g. the host's name). */
  base?: Record<string, unknown>;
  /** File descriptor written synchronously, so the last lines before an exit are never lost. */
  fd?: number;
}

/** `json` unless the descriptor is a terminal. */
export function defaultFormat(isTTY: boolean | undefined): LogFormat {
  return isTTY ? 'text' : 'json';
}

/** Parses a --log-level value; throws with what is allowed. */
export function parseLevel(v: string): LogLevel {
  if ((LOG_LEVELS as readonly string[]).includes(v)) return v as LogLevel;
  throw new Error(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(v)}`);
}

/** Parses a --log-format value. */
export function parseFormat(v: string): LogFormat {
  if (v === 'json' || v === 'text') return v;
  throw new Error(`--log-format must be json or text, got ${JSON.stringify(v)}`);
}

const WARNING = /(^|: )warning: /;

export function createLog(o: LogOptions): Log {
  const fd = o.fd ?? 2;
  const dest = o.format === 'json' ? destination({ fd, sync: true }) : textDestination(fd);
  const p = pino(
    {
      level: o.level,
      base: o.base ?? null,
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
  return (msg, fields) => {
    const { level, ...rest } = fields ?? {};
    const l = level ?? (WARNING.test(msg) ? 'warn' : 'info');
    p[l](rest, msg);
  };
}

/** Renders one JSON log line as text (what a terminal shows); other lines are returned as they are. */
export function formatLogLine(line: string): string {
  if (!line.startsWith('{')) return line;
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof o.msg !== 'string' || typeof o.time !== 'string') return line;
  const { time, level, host, msg, ...rest } = o;
  const extra = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${String(level ?? 'info').toUpperCase().padEnd(5)} ${host ? `[${String(host)}] ` : ''}${msg}${extra ? `  ${extra}` : ''}`;
}

function textDestination(fd: number): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = chunk.toString('utf8').split('\n').filter(Boolean).map(formatLogLine).join('\n');
      writeSync(fd, text + '\n');
      done();
    },
  });
}
