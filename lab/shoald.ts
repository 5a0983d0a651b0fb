// Driving shoald and the shoal CLI inside lab hosts. Every CLI call runs through
// `ip netns exec <host>`, so its traffic (and the daemon's) stays inside the lab's network.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TOKEN_ENV } from '../node/join-token-input.js';
import { labCgroup } from './names.js';
import { readFrom, startDetached, isAlive } from './procs.js';
import { REGISTRY_HOST } from './registry.js';
import type { LabNode } from './state.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Located beside this file's build output (dist/ in CI, .build/NAME/ while developing). */
export const SHOALD_MAIN = join(here, '..', 'node', 'main.js');
export const CLI_MAIN = join(here, '..', 'cli', 'main.js');

/** Fixed ports: every host has its own network namespace, so all nodes can use the same ones. */
export const API_PORT = 4242;
export const RAFT_PORT = 4243;
export const GOSSIP_PORT = 7946;

/** `dhtBootstrap`: the lab's own DHT (lab/dht.ts); without it the DHT is off: a lab has no
 * internet, and its nodes must never try Hyperswarm's public bootstrap nodes. */
export function daemonArgv(n: LabNode, lab: string, dhtBootstrap?: string): string[] {
  return [
    process.execPath, SHOALD_MAIN,
    '--state-dir', n.stateDir,
    '--listen', `${n.address}:${API_PORT}`,
    '--advertise', `${n.address}:${API_PORT}`,
    '--hostname', n.name,
    '--raft-port', String(RAFT_PORT),
    '--gossip-port', String(GOSSIP_PORT),
    '--insecure-registry', REGISTRY_HOST,
    '--cgroup-parent', labCgroup(lab, n.name),
    // One CSI pool for every host (<lab>/csi-pool; a node's state dir is <lab>/nodes/NAME): a
    // volume can move between hosts as a network disk would.
    '--csi-pool', join(dirname(dirname(n.stateDir)), 'csi-pool'),
    ...(dhtBootstrap ? ['--dht-bootstrap', dhtBootstrap] : ['--dht=false']),
  ];
}

export function checkInstalled(): void {
  for (const f of [SHOALD_MAIN, CLI_MAIN]) {
    if (!existsSync(f)) throw new Error(`${f} is missing; build shoal first (npm run build)`);
  }
}

/** `<lab dir>/bin/shoal`, put first on PATH by `lab exec`, so `shoal ...` works on a lab host
 * even when the CLI is not installed system-wide. */
export function writeShoalWrapper(labDir: string): string {
  const bin = join(labDir, 'bin');
  mkdirSync(bin, { recursive: true, mode: 0o755 });
  const f = join(bin, 'shoal');
  const q = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
  writeFileSync(f, `#!/bin/sh\nexec ${q(process.execPath)} ${q(CLI_MAIN)} "$@"\n`);
  chmodSync(f, 0o755);
  return bin;
}

function logSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** The last lines of a node's log, for error messages. */
export function logTail(file: string, lines = 15): string {
  const text = readFrom(file, Math.max(0, logSize(file) - Math.max(8192, lines * 400)));
  return text.split('\n').slice(-lines - 1).join('\n');
}

/** Starts (or restarts) a node's shoald and waits for its `{"ready":true}` line; one that does
 * not get there in time is killed (with its process group), never left running half-started. */
export async function startDaemon(n: LabNode, lab: string, timeoutMs = 60_000, dhtBootstrap?: string): Promise<void> {
  mkdirSync(n.stateDir, { recursive: true, mode: 0o700 });
  mkdirSync(dirname(n.logFile), { recursive: true, mode: 0o700 });
  if (n.proc && isAlive(n.proc)) throw new Error(`${n.name}'s shoald is already running (pid ${n.proc.pid}); stop it first with \`shoal lab stop ${n.name}\``);
  n.argv = daemonArgv(n, lab, dhtBootstrap);
  n.proc = undefined;
  n.proc = await startDetached(n.netns, n.argv, n.logFile, { ready: { pattern: /^\{"ready":true/m, timeoutMs, what: `${n.name}'s shoald` } });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `shoal ARGS --state-dir <node's>` inside the node's namespace; `env` is added to the
 * CLI's environment (secrets go there, never into ARGS: a command line is public in ps). */
export function runCli(n: LabNode, args: string[], timeoutMs = 60_000, env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      'ip',
      ['netns', 'exec', n.netns, process.execPath, CLI_MAIN, '--state-dir', n.stateDir, ...args],
      { timeout: timeoutMs, maxBuffer: 16 << 20, encoding: 'utf8', env: { ...process.env, ...env } },
      (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, stdout, stderr });
        const e = err as { code?: unknown; killed?: boolean; signal?: string | null };
        const code = typeof e.code === 'number' ? e.code : 1;
        const why = e.killed ? `timed out after ${timeoutMs / 1000} s` : err.message;
        resolve({ code, stdout, stderr: stderr || why });
      },
    );
  });
}

/** Like runCli but throws with the CLI's own message when it fails. */
export async function cli(n: LabNode, args: string[], timeoutMs = 60_000, env: Record<string, string> = {}): Promise<string> {
  const r = await runCli(n, args, timeoutMs, env);
  if (r.code !== 0) throw new Error(`\`shoal ${args.join(' ')}\` on ${n.name} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** `shoal join` for a lab node: the token goes in the CLI's environment, not on its command line.
 * Without `addr` the node's shoald finds a manager on the DHT by the token. */
export function joinCommand(token: string, addr?: string): { args: string[]; env: Record<string, string> } {
  return { args: addr ? ['join', addr] : ['join'], env: { [TOKEN_ENV]: token } };
}

/** Joins node `n` to the cluster at `addr` (undefined: found on the DHT) with `token`. */
export async function joinNode(n: LabNode, token: string, addr: string | undefined, timeoutMs = 120_000): Promise<string> {
  const j = joinCommand(token, addr);
  return cli(n, j.args, timeoutMs, j.env);
}

export interface NodeRow {
  id: string;
  hostname: string;
  role: string;
  status: string;
  availability: string;
  addr?: string;
  managerStatus?: { leader?: boolean; reachability?: string } | null;
}

export async function nodeList(via: LabNode): Promise<NodeRow[]> {
  const out = await cli(via, ['node', 'ls', '--format', 'json'], 20_000);
  const rows = JSON.parse(out) as NodeRow[];
  if (!Array.isArray(rows)) throw new Error(`\`shoal node ls --format json\` on ${via.name} did not print an array: ${out.slice(0, 200)}`);
  return rows;
}
