// Where `shoal join` and `shoald --join` get the join token. A command line is readable by every
// user of the machine (ps, /proc/PID/cmdline), so the token should come from a file
// (--token-file F, "-" for standard input) or the environment (SHOAL_JOIN_TOKEN), which only the
// process's own user can read. --token T still works: it is the documented `shoal join --token T`.
import { readFileSync, statSync } from 'node:fs';

export const TOKEN_ENV = 'SHOAL_JOIN_TOKEN';

export class TokenInputError extends Error {}

export interface TokenInput {
  token: string;
  from: 'flag' | 'file' | 'env';
  /** Said to the operator, not fatal (a token file others can read). */
  warning?: string;
}

/** The token from --token, --token-file or the environment (in that order of precedence; the
 * two flags exclude each other). Undefined when none gives one. */
export function readJoinToken(o: { flag?: string; file?: string; env?: NodeJS.ProcessEnv }): TokenInput | undefined {
  if (o.flag !== undefined && o.file !== undefined) throw new TokenInputError('give the join token once: --token or --token-file, not both');
  if (o.flag !== undefined) {
    const token = o.flag.trim();
    if (!token) throw new TokenInputError('--token is empty: give the join token (SHL-1-...)');
    return { token, from: 'flag' };
  }
  if (o.file !== undefined) return fromFile(o.file);
  const env = o.env?.[TOKEN_ENV]?.trim();
  if (env) return { token: env, from: 'env' };
  return undefined;
}

function fromFile(file: string): TokenInput {
  const name = file === '-' ? 'standard input' : file;
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message;
    throw new TokenInputError(`cannot read the join token from --token-file ${file}: ${why}`);
  }
  const words = text.split(/\s+/).filter(Boolean);
  if (words.length === 0) throw new TokenInputError(`--token-file ${name} is empty: it must hold the join token (SHL-1-...)`);
  if (words.length > 1) throw new TokenInputError(`--token-file ${name} holds ${words.length} words: it must hold only the join token (SHL-1-...)`);
  let warning: string | undefined;
  if (file !== '-') {
    try {
      const mode = statSync(file).mode & 0o777;
      if (mode & 0o044) warning = `${file} is readable by other users (mode ${mode.toString(8).padStart(4, '0')}): anyone who reads it can join the cluster; chmod 600 it`;
    } catch {
      // read above, so it exists; a race with its removal changes nothing here
    }
  }
  return { token: words[0]!, from: 'file', warning };
}
