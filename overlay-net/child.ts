// Starting shoal-net as a child process (what shoald does for the built-in plugin, and what the
// tests do per host), optionally inside a network namespace, and waiting until it answers Status.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { networkPluginClient, type NetworkPluginClient } from '../proto/network/types.js';

export const SHOAL_NET_MAIN = join(dirname(fileURLToPath(import.meta.url)), 'main.js');

export interface NetChild {
  proc: ChildProcess;
  client: NetworkPluginClient;
  socket: string;
  output(): string;
  /** SIGTERM (or `signal`), and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface NetChildOptions {
  socket: string;
  stateDir: string;
  underlayAddr: string;
  /** Path of a network namespace to run in (nsenter --net): the node's namespace. */
  netns?: string;
  dnsAddress?: string;
  timeoutMs?: number;
}

export async function startNetChild(o: NetChildOptions): Promise<NetChild> {
  const args = [SHOAL_NET_MAIN, '--listen', `unix://${o.socket}`, '--state', o.stateDir, '--underlay-addr', o.underlayAddr];
  if (o.dnsAddress) args.push('--dns-address', o.dnsAddress);
  const argv = o.netns ? ['nsenter', `--net=${o.netns}`, '--', process.execPath, ...args] : [process.execPath, ...args];
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  proc.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const end = Date.now() + (o.timeoutMs ?? 60_000);
  while (!/serving the network plugin/.test(out) || !existsSync(o.socket)) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`shoal-net exited during start-up (${proc.exitCode ?? proc.signalCode}): ${out.trim()}`);
    if (Date.now() > end) {
      proc.kill('SIGKILL');
      await exited;
      throw new Error(`shoal-net did not start within ${(o.timeoutMs ?? 60_000) / 1000} s; killed it: ${out.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const client = networkPluginClient(o.socket);
  return {
    proc, client, socket: o.socket, output: () => out,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      client.close();
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill(signal);
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}
