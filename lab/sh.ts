// Running the system tools the lab is built from (ip, busybox). Every failure names the command
// and its stderr, so an operator sees which step of bring-up or tear-down went wrong.
import { spawnSync } from 'node:child_process';

export class CommandError extends Error {
  constructor(readonly cmd: string[], readonly status: number | null, readonly stderr: string) {
    super(`command failed (exit ${status}): ${cmd.join(' ')}: ${stderr.trim() || '(no output)'}`);
  }
}

/** Runs a command to completion; throws CommandError on a non-zero exit. Returns stdout. */
export function run(cmd: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', input: opts.input, timeout: opts.timeoutMs ?? 30_000 });
  if (r.error) throw new CommandError(cmd, null, r.error.message);
  if (r.status !== 0) throw new CommandError(cmd, r.status, r.stderr || r.stdout);
  return r.stdout;
}

/** Runs a command and reports success instead of throwing (tear-down tolerates missing pieces). */
export function tryRun(cmd: string[]): { ok: boolean; out: string; err: string } {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 30_000 });
  return { ok: !r.error && r.status === 0, out: r.stdout ?? '', err: (r.stderr ?? '') + (r.error ? r.error.message : '') };
}
