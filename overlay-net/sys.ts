// Running the kernel's tools (ip, bridge, nft, nsenter) without blocking the event loop (the DNS
// resolver shares it). Every failure names the command and what it printed.
import { spawn } from 'node:child_process';

export class CommandError extends Error {
  constructor(readonly cmd: string[], readonly code: number | null, readonly stderr: string) {
    super(`${cmd.join(' ')} failed (exit ${code}): ${stderr.trim() || '(no output)'}`);
  }
}

export function exec(cmd: string[], input?: string, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd[0]!, cmd.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => { p.kill('SIGKILL'); err += `\n(killed after ${timeoutMs} ms)`; }, timeoutMs);
    p.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    p.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    p.on('error', (e) => { clearTimeout(timer); reject(new CommandError(cmd, null, e.message)); });
    p.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new CommandError(cmd, code, err || out));
    });
    p.stdin.on('error', () => { /* the command exited before reading; its exit code tells */ });
    p.stdin.end(input ?? '');
  });
}

/** The command prefix that runs a tool inside the network namespace at `netnsPath` (no /sys
 * remount, unlike `ip netns exec`). Empty for the plugin's own namespace. */
export function inNetns(netnsPath: string | undefined): string[] {
  return netnsPath ? ['nsenter', `--net=${netnsPath}`, '--'] : [];
}

/** Runs `ip -batch -` with `lines` (one command each); nothing to do for an empty list. */
export async function ipBatch(lines: string[], netnsPath?: string): Promise<void> {
  if (lines.length === 0) return;
  await exec([...inNetns(netnsPath), 'ip', '-batch', '-'], lines.join('\n') + '\n');
}

export async function bridgeBatch(lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  await exec(['bridge', '-batch', '-'], lines.join('\n') + '\n');
}

export async function ipJson<T>(args: string[], netnsPath?: string): Promise<T> {
  const out = await exec([...inNetns(netnsPath), 'ip', '-j', ...args]);
  return (out.trim() ? JSON.parse(out) : []) as T;
}

export async function nft(script: string, netnsPath?: string): Promise<void> {
  await exec([...inNetns(netnsPath), 'nft', '-f', '-'], script);
}
