// The units the CLI's flags take, written as Docker's and Kubernetes' CLIs take them: durations
// (`500ms`, `5s`, `2m`, `1h`), sizes (`64M`, `1G`, `512Mi`) and CPUs (`0.5` or `500m`); and a
// small shell-style word splitter for flags that carry a command.
import { CliError } from './client.js';

export function duration(s: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s.trim());
  if (!m) throw new CliError(`${flag} must be a duration like 500ms, 5s, 2m or 1h, got ${JSON.stringify(s)}`, 2);
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']);
}

const SIZE: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, ki: 1024, kib: 1024, mi: 1024 ** 2, mib: 1024 ** 2, gi: 1024 ** 3, gib: 1024 ** 3 };

/** Docker's `-m 64m` means MiB; so do we for K/M/G, and Kubernetes' Ki/Mi/Gi too. */
export function bytes(s: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)([A-Za-z]*)$/.exec(s.trim());
  const unit = m?.[2]?.toLowerCase() ?? '';
  const binary: Record<string, number> = { k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };
  const mult = binary[unit] ?? SIZE[unit];
  if (!m || mult === undefined) throw new CliError(`${flag} must be a size like 64M, 1G or 512Mi, got ${JSON.stringify(s)}`, 2);
  return Math.round(Number(m[1]) * mult);
}

/** CPUs as a number of cores (0.5) or millicores (500m), in millicores. */
export function cpus(s: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(s.trim());
  if (!m) throw new CliError(`${flag} must be a number of CPUs like 0.5, or millicores like 500m, got ${JSON.stringify(s)}`, 2);
  return m[2] ? Math.round(Number(m[1])) : Math.round(Number(m[1]) * 1000);
}

/** Splits `sh -c "echo hi"` into words: single and double quotes, backslash escapes. */
export function splitWords(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let q: '"' | "'" | '' = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (q) {
      if (ch === q) q = '';
      else if (ch === '\\' && q === '"' && i + 1 < s.length) cur += s[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      q = ch;
      has = true;
    } else if (ch === '\\' && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(ch)) {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += ch;
      has = true;
    }
  }
  if (q) throw new CliError(`unterminated ${q} quote in ${JSON.stringify(s)}`, 2);
  if (has || cur) out.push(cur);
  return out;
}
