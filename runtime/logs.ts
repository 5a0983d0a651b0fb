// Container logs in the CRI format the kubelet and crictl read:
//   2016-10-06T00:17:09.669794202Z stdout F a full line
//   2016-10-06T00:17:09.669794202Z stderr P the first part of a long line
// One writer per container appends both streams to the log file; ReopenContainerLog reopens
// the file after rotation.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

const MAX_LINE = 16 * 1024;
const epochAtHr = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

export function nowNs(): bigint {
  return epochAtHr + process.hrtime.bigint();
}

/** RFC 3339 with nanoseconds, trailing zeros trimmed, as Go's time.RFC3339Nano prints UTC. */
export function rfc3339Nano(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const base = new Date(ms).toISOString().slice(0, 19);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${base}${frac ? '.' + frac : ''}Z`;
}

export function formatLine(stream: 'stdout' | 'stderr', partial: boolean, content: Buffer, ns = nowNs()): Buffer {
  return Buffer.concat([Buffer.from(`${rfc3339Nano(ns)} ${stream} ${partial ? 'P' : 'F'} `), content, Buffer.from('\n')]);
}

export interface ParsedLine { time: string; stream: string; tag: string; content: string }

export function parseLine(line: string): ParsedLine | undefined {
  const m = /^(\S+) (stdout|stderr) ([PF]) (.*)$/s.exec(line);
  return m ? { time: m[1]!, stream: m[2]!, tag: m[3]!, content: m[4]! } : undefined;
}

export class ContainerLog {
  private out?: WriteStream;
  private readonly pending: Record<'stdout' | 'stderr', Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };

  constructor(private readonly path: string | undefined) {
    this.open();
  }

  private open(): void {
    if (!this.path) return;
    mkdirSync(dirname(this.path), { recursive: true });
    this.out = createWriteStream(this.path, { flags: 'a', mode: 0o640 });
    this.out.on('error', () => { /* the next reopen recreates it; nothing else can be done here */ });
  }

  /** Feeds raw bytes of one stream; writes every complete line and overlong partials. */
  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    let buf = this.pending[stream].length ? Buffer.concat([this.pending[stream], chunk]) : chunk;
    const parts: Buffer[] = [];
    for (;;) {
      const nl = buf.indexOf(0x0a);
      if (nl < 0) break;
      parts.push(formatLine(stream, false, buf.subarray(0, nl)));
      buf = buf.subarray(nl + 1);
    }
    while (buf.length >= MAX_LINE) {
      parts.push(formatLine(stream, true, buf.subarray(0, MAX_LINE)));
      buf = buf.subarray(MAX_LINE);
    }
    this.pending[stream] = Buffer.from(buf);
    if (parts.length && this.out) this.out.write(Buffer.concat(parts));
  }

  /** At end of a stream, a last line without a newline is written whole. */
  end(stream: 'stdout' | 'stderr'): void {
    const rest = this.pending[stream];
    if (rest.length && this.out) this.out.write(formatLine(stream, false, rest));
    this.pending[stream] = Buffer.alloc(0);
  }

  async reopen(): Promise<void> {
    await this.close();
    this.open();
  }

  close(): Promise<void> {
    const o = this.out;
    this.out = undefined;
    if (!o) return Promise.resolve();
    return new Promise((r) => o.end(r));
  }
}
