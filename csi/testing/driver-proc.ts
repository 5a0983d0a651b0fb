// Test helper: runs the compiled shoal-csi as its own process (as shoald will) and waits until
// it answers Probe; a CsiClient talks to it.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CsiClient } from '../client.js';

export interface DriverProc {
  proc: ChildProcess;
  client: CsiClient;
  socket: string;
  stderr(): string;
  /** Sends the signal and waits for the process to end. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves when the process has ended (e.g. killed itself at a crash point). */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface DriverArgs { socket: string; pool: string; nodeId: string; registryDir?: string; name?: string; extra?: string[]; env?: Record<string, string> }

export const driverMain = () => fileURLToPath(new URL('../main.js', import.meta.url));

export async function startDriverProc(a: DriverArgs): Promise<DriverProc> {
  const args = ['--endpoint', `unix://${a.socket}`, '--pool', a.pool, '--node-id', a.nodeId, ...(a.registryDir ? ['--registry-dir', a.registryDir] : []), ...(a.name ? ['--name', a.name] : []), ...(a.extra ?? [])];
  const proc = spawn(process.execPath, [driverMain(), ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...a.env } });
  let err = '';
  proc.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  // A channel that failed to connect backs off (1 s, 1.6 s, ... in grpc-js): a fresh client per
  // failed try asks at once, so a loaded machine only costs the time the driver really needs.
  const fresh = () => new CsiClient(`unix://${a.socket}`, { timeoutMs: 60_000 });
  let client = fresh();
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`shoal-csi exited at startup (${proc.exitCode ?? proc.signalCode}): ${err}`);
    try {
      if (await client.probe({ timeoutMs: 5000, retry: false })) break;
    } catch {
      client.close();
      client = fresh();
    }
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`shoal-csi did not answer Probe within 60 s: ${err}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc, client, socket: a.socket,
    stderr: () => err,
    exited: () => exit,
    kill: async (signal: NodeJS.Signals = 'SIGTERM') => {
      client.close();
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      await exit;
    },
  };
}
