// Drivers for the gossip benchmark: a cluster of shoal gossip agents or of
// serf agents on 127.0.0.1, each reporting "observer sees subject as
// alive/failed at time t" so both are measured the same way.
//   shoal: gossip/agent-main.js prints member events as JSON lines the moment
//          its state changes.
//   serf:  the agent RPC `members` command (what `serf members` uses), polled
//          every 50 ms per agent while a measurement runs (so serf's figures
//          carry up to 50 ms of polling delay; about 25 ms on average).

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SerfRpc } from './gossip-serf-rpc.js';
import { freePort as freePortOn } from '../node/ports.js';

export type Status = 'alive' | 'failed' | 'left';

export interface Agent {
  name: string;
  /** gossip address host:port */
  addr: string;
  proc: ChildProcess;
}

type Listener = (observer: string, subject: string, status: Status, atMs: number) => void;

export interface BenchCluster {
  readonly label: string;
  readonly agents: Map<string, Agent>;
  /** Start an agent (not joined) and wait until it is ready. */
  start(name: string): Promise<Agent>;
  /** Ask `agent` to join `addr`. */
  join(agent: Agent, addr: string): Promise<void>;
  kill(agent: Agent): void;
  onStatus(fn: Listener): void;
  /** Turn observation polling on/off (serf: RPC polls cost the agents CPU). */
  setObserving(on: boolean): void;
  stopAll(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => { for (const p of live) p.kill('SIGKILL'); });

function track(p: ChildProcess): ChildProcess {
  live.add(p);
  p.on('exit', () => live.delete(p));
  return p;
}

async function stopProcs(agents: Iterable<Agent>): Promise<void> {
  await Promise.all([...agents].map((a) => new Promise<void>((r) => {
    if (a.proc.exitCode !== null || a.proc.signalCode !== null) return r();
    a.proc.once('exit', () => r());
    a.proc.kill('SIGKILL');
  })));
}

export class ShoalCluster implements BenchCluster {
  readonly agents = new Map<string, Agent>();
  private listeners: Listener[] = [];
  private readonly entry = fileURLToPath(new URL('../gossip/agent-main.js', import.meta.url));

  constructor(readonly label: string, private readonly profile: string) {}

  async start(name: string): Promise<Agent> {
    const proc = track(spawn(process.execPath, [this.entry, '--name', name, '--profile', this.profile], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const rl = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    return new Promise((resolve, reject) => {
      proc.once('exit', (code) => reject(new Error(`shoal agent ${name} exited with ${code} before it was ready`)));
      rl.on('line', (line) => {
        const at = Date.now();
        let ev: { ev: string; node?: string; addr?: string };
        try { ev = JSON.parse(line); } catch { return; }
        if (ev.ev === 'ready') {
          const a: Agent = { name, addr: ev.addr as string, proc };
          this.agents.set(name, a);
          resolve(a);
          return;
        }
        const status: Status | undefined = ev.ev === 'join' || ev.ev === 'alive' ? 'alive' : ev.ev === 'dead' ? 'failed' : ev.ev === 'leave' ? 'left' : undefined;
        if (status && ev.node) for (const l of this.listeners) l(name, ev.node, status, at);
      });
    });
  }

  async join(agent: Agent, addr: string): Promise<void> {
    agent.proc.stdin?.write(`join ${addr}\n`);
  }

  kill(agent: Agent): void {
    agent.proc.kill('SIGKILL');
  }

  onStatus(fn: Listener): void {
    this.listeners.push(fn);
  }

  setObserving(): void {
    // events are pushed; nothing to poll
  }

  async stopAll(): Promise<void> {
    await stopProcs(this.agents.values());
    this.agents.clear();
  }
}

/** A port free for both TCP and UDP on 127.0.0.1 right now. */
export const freePort = (): Promise<number> => freePortOn('127.0.0.1', true);

export class SerfCluster implements BenchCluster {
  readonly label = 'serf';
  readonly agents = new Map<string, Agent>();
  private readonly rpc = new Map<string, SerfRpc>();
  private readonly last = new Map<string, Map<string, Status>>();
  private listeners: Listener[] = [];
  private polling = false;
  private pollTimer: NodeJS.Timeout | undefined;

  async start(name: string): Promise<Agent> {
    const port = await freePort();
    let rpcPort = await freePort();
    while (rpcPort === port) rpcPort = await freePort();
    const proc = track(spawn('serf', ['agent', `-node=${name}`, `-bind=127.0.0.1:${port}`, `-rpc-addr=127.0.0.1:${rpcPort}`, '-profile=lan', '-log-level=err'], { stdio: ['ignore', 'ignore', 'inherit'] }));
    const agent: Agent = { name, addr: `127.0.0.1:${port}`, proc };
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`serf agent ${name} exited with ${proc.exitCode}`);
      try {
        this.rpc.set(name, await SerfRpc.connect(`127.0.0.1:${rpcPort}`, 1000));
        break;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`serf agent ${name}: RPC not reachable: ${(e as Error).message}`);
        await sleep(50);
      }
    }
    this.agents.set(name, agent);
    this.last.set(name, new Map());
    return agent;
  }

  async join(agent: Agent, addr: string): Promise<void> {
    await this.rpc.get(agent.name)?.join([addr]);
  }

  kill(agent: Agent): void {
    this.rpc.get(agent.name)?.close();
    this.rpc.delete(agent.name);
    agent.proc.kill('SIGKILL');
  }

  onStatus(fn: Listener): void {
    this.listeners.push(fn);
  }

  setObserving(on: boolean): void {
    this.polling = on;
    if (on && !this.pollTimer) this.poll();
  }

  async stopAll(): Promise<void> {
    this.polling = false;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    for (const c of this.rpc.values()) c.close();
    this.rpc.clear();
    await stopProcs(this.agents.values());
    this.agents.clear();
  }

  private poll(): void {
    this.pollTimer = undefined;
    if (!this.polling) return;
    const started = Date.now();
    void Promise.all([...this.rpc.entries()].map(async ([name, c]) => {
      let members;
      try { members = await c.members(); } catch { return; }
      const at = Date.now();
      const seen = this.last.get(name) as Map<string, Status>;
      for (const m of members) {
        const st: Status | undefined = m.Status === 'alive' ? 'alive' : m.Status === 'failed' ? 'failed' : m.Status === 'left' ? 'left' : undefined;
        if (!st || seen.get(m.Name) === st) continue;
        seen.set(m.Name, st);
        for (const l of this.listeners) l(name, m.Name, st, at);
      }
    })).then(() => {
      if (this.polling) this.pollTimer = setTimeout(() => this.poll(), Math.max(0, 50 - (Date.now() - started)));
    });
  }
}

/** CPU seconds (user + system) a process has used. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14 and 15 of stat (utime, stime) are 12 and 13 after the comm field
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
