// Test harness for the cluster tests: real shoald processes on loopback with OS-chosen ports and
// temp state dirs, the real `shoal` CLI, and teardown that kills everything and removes the dirs.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { formatLogLine } from '../proto/log.js';
import { mkdtempSync } from 'node:fs';
import { removeTestDir } from './teardown.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../node/ports.js';

const here = fileURLToPath(new URL('.', import.meta.url));
export const SHOALD = join(here, '..', 'node', 'main.js');
/** These daemons run in the machine's own network namespace: no network plugin, so no bridge,
 * VXLAN device or nft table of theirs is ever made there (the lab tests cover the overlay). */
export const NO_NETWORK = ['--network-endpoint', 'none'];
export const SHOAL = join(here, '..', 'cli', 'main.js');

export interface NodeProc {
  name: string;
  port: number;
  stateDir: string;
  proc?: ChildProcess;
  log: string[];
  /** Where this run of the node serves /metrics (null: not served). */
  metricsAddr?: string | null;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class TestCluster {
  readonly dir = mkdtempSync(join(tmpdir(), `shoal-cluster-${process.pid}-`));
  readonly nodes = new Map<string, NodeProc>();

  async start(name: string, extra: string[] = []): Promise<NodeProc> {
    let n = this.nodes.get(name);
    if (!n) {
      n = { name, port: await freePort('127.0.0.1'), stateDir: join(this.dir, name), log: [] };
      this.nodes.set(name, n);
    }
    const node = n;
    // Many nodes share this loopback: each serves its metrics on a port of its own choosing.
    const metrics = extra.includes('--metrics-addr') ? [] : ['--metrics-addr', '127.0.0.1:0'];
    const p = spawn(process.execPath, [SHOALD, '--state-dir', node.stateDir, '--listen', `127.0.0.1:${node.port}`, '--hostname', name, '--dht=false', ...NO_NETWORK, ...metrics, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    node.proc = p;
    // shoald writes JSON log lines to a pipe: the tests read them as a terminal shows them.
    let partial = '';
    p.stderr!.setEncoding('utf8').on('data', (d: string) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop()!;
      const text = lines.map((l) => formatLogLine(l) + '\n').join('');
      node.log.push(text);
      if (process.env.SHOAL_TEST_LOG) process.stderr.write(text);
    });
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      p.stdout!.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        const line = buf.split('\n').slice(0, -1).find((l) => l.includes('"ready":true'));
        if (!line) return;
        node.metricsAddr = (JSON.parse(line) as { metricsAddr?: string | null }).metricsAddr ?? null;
        resolve();
      });
      p.once('exit', (c) => reject(new Error(`shoald ${name} exited with ${c} before it was ready: ${node.log.join('').slice(-2000)}`)));
    });
    return node;
  }

  addr(name: string): string {
    return `127.0.0.1:${this.nodes.get(name)!.port}`;
  }

  state(name: string): string {
    return this.nodes.get(name)!.stateDir;
  }

  cli(name: string, ...args: string[]): Promise<CliResult> {
    return this.cliRaw(['--state-dir', this.state(name), ...args]);
  }

  cliRaw(args: string[]): Promise<CliResult> {
    return new Promise((resolve) => {
      execFile(process.execPath, [SHOAL, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr });
      });
    });
  }

  async json<T = any>(name: string, ...args: string[]): Promise<T> {
    const r = await this.cli(name, ...args, '--format', 'json');
    if (r.code !== 0) throw new Error(`shoal ${args.join(' ')} on ${name} failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  /** The node's /metrics page, as text. */
  async metrics(name: string): Promise<string> {
    const a = this.nodes.get(name)?.metricsAddr;
    if (!a) throw new Error(`${name} serves no metrics`);
    const r = await fetch(`http://${a}/metrics`);
    if (!r.ok) throw new Error(`GET /metrics on ${name}: ${r.status}`);
    return r.text();
  }

  kill(name: string, sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.nodes.get(name)?.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
    return new Promise((r) => {
      p.once('exit', () => r());
      p.kill(sig);
    });
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((n) => this.kill(n)));
    // The nodes' runtimes stop with their shoald; the mounts they made stay until removed here.
    await removeTestDir(this.dir);
  }
}

/** Polls `f` until it returns a truthy value; throws with the last error/value after `ms`. */
export async function waitFor<T>(what: string, f: () => Promise<T | undefined | false>, ms = 60_000, every = 250): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
      last = v;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${typeof last === 'string' ? last : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
