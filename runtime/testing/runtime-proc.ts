// Test helper: runs the compiled shoal-runtime entry point as its own process on a Unix socket
// and waits until it answers CRI Version.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { criClient, type CriClient } from './cri-client.js';

export interface RuntimeProc { proc: ChildProcess; client: CriClient; stderr: () => string; kill(signal?: NodeJS.Signals): Promise<void> }

let runs = 0;

export async function startRuntime(socket: string, root: string, extra: string[] = [], opts: { netns?: string } = {}): Promise<RuntimeProc> {
  const main = fileURLToPath(new URL('../main.js', import.meta.url));
  // Pods go under a cgroup of this test's own (cleanupRoot removes it), never the shared /shoal.
  const cg = extra.includes('--cgroup-parent') ? [] : ['--cgroup-parent', `/shoal-test-${process.pid}-${++runs}`];

  // No CNI unless the test asks: the machine's /etc/cni/net.d must never be used by a test.
  const cni = extra.includes('--cni-conf-dir') ? [] : ['--cni-conf-dir', join(root, '.no-cni-config')];
  const cmd = [main, '--listen', `unix://${socket}`, '--root', root, ...cg, ...cni, ...extra];
  // A runtime in a network namespace of the test's own (CNI tests): nsenter, not `ip netns exec`
  // (which remounts /sys and hides the cgroups).
  const proc = opts.netns
    ? spawn('nsenter', [`--net=${opts.netns}`, '--', process.execPath, ...cmd], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(process.execPath, cmd, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
  const client = criClient(socket);
  const deadline = Date.now() + 20000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`shoal-runtime exited at startup (${proc.exitCode}): ${err}`);
    try { await client.rt.Version({ version: 'v1' }); break; } catch { /* not yet */ }
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`shoal-runtime did not answer within 20 s: ${err}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  // cleanupRoot(root) reads this to remove the parent cgroup, whatever pods are still recorded.
  if (cg.length > 0) appendFileSync(join(root, '.test-cgroup-parents'), cg[1] + '\n');
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    client.close();
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await gone;
  };
  return { proc, client, stderr: () => err, kill };
}
