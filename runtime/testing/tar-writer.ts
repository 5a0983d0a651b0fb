// Builds tar archives in memory for tests: image layers (with whiteouts, links, hostile paths)
// and `docker save` / OCI archives. Test-only; the runtime itself only reads tar.

export interface WriteEntry {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo';
  mode?: number;
  uid?: number;
  gid?: number;
  data?: Buffer | string;
  linkname?: string;
  mtime?: number;
}

const FLAG = { file: '0', hardlink: '1', symlink: '2', dir: '5', fifo: '6' } as const;

function octal(v: number, len: number): string {
  return v.toString(8).padStart(len - 1, '0') + '\0';
}

function header(name: string, e: WriteEntry, size: number, flag: string, linkname: string): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode ?? (e.type === 'dir' ? 0o755 : 0o644), 8), 100, 'latin1');
  h.write(octal(e.uid ?? 0, 8), 108, 'latin1');
  h.write(octal(e.gid ?? 0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(e.mtime ?? 1700000000, 12), 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(flag, 156, 'latin1');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i]!;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

function pad(n: number): Buffer {
  return Buffer.alloc((512 - (n % 512)) % 512);
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return `${len}${body}`;
}

export function tarBuffer(entries: WriteEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'file';
    const data = type === 'file' ? Buffer.from(e.data ?? '') : Buffer.alloc(0);
    const linkname = e.linkname ?? '';
    let name = e.name;
    if (Buffer.byteLength(name) > 99 || Buffer.byteLength(linkname) > 99) {
      let rec = '';
      if (Buffer.byteLength(name) > 99) rec += paxRecord('path', name);
      if (Buffer.byteLength(linkname) > 99) rec += paxRecord('linkpath', linkname);
      const pd = Buffer.from(rec);
      parts.push(header('PaxHeader', { name: 'PaxHeader' }, pd.length, 'x', ''), pd, pad(pd.length));
      name = name.slice(0, 99);
    }
    parts.push(header(name, e, data.length, FLAG[type], linkname.slice(0, 99)), data, pad(data.length));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
