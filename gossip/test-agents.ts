// Test helper (not a test): gossip members as real processes (agent-main.js)
// on 127.0.0.1, their JSON-line events collected, killable with SIGKILL.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface AgentEvent {
  ev: string;
  node?: string;
  addr?: string;
  inc?: number;
  from?: string;
  t: number;
  [k: string]: unknown;
}

const entry = fileURLToPath(new URL('./agent-main.js', import.meta.url));

export class AgentProc {
  readonly events: AgentEvent[] = [];
  addr = '';
  private readonly proc: ChildProcess;
  private readonly ready: Promise<void>;

  constructor(readonly name: string, args: string[]) {
    this.proc = spawn(process.execPath, [entry, '--name', name, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    this.proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const rl = createInterface({ input: this.proc.stdout as NodeJS.ReadableStream });
    this.ready = new Promise((resolve, reject) => {
      this.proc.once('exit', (code) => reject(new Error(`agent ${name} exited (${code}) before ready: ${stderr}`)));
      rl.on('line', (line) => {
        let ev: AgentEvent;
        try { ev = JSON.parse(line) as AgentEvent; } catch { return; }
        this.events.push(ev);
        if (ev.ev === 'ready') {
          this.addr = String(ev['addr']);
          resolve();
        }
      });
    });
  }

  get pid(): number {
    return this.proc.pid as number;
  }

  started(): Promise<void> {
    return this.ready;
  }

  send(cmd: string): void {
    this.proc.stdin?.write(cmd + '\n');
  }

  kill9(): void {
    this.proc.kill('SIGKILL');
  }

  alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async stop(): Promise<void> {
    if (!this.alive()) return;
    const gone = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGKILL');
    await gone;
  }

  /** Latest membership view from events: name → state. */
  view(): Map<string, string> {
    const v = new Map<string, string>();
    for (const e of this.events) {
      if (!e.node) continue;
      if (e.ev === 'join' || e.ev === 'alive' || e.ev === 'update') v.set(e.node, 'alive');
      else if (e.ev === 'suspect') v.set(e.node, 'suspect');
      else if (e.ev === 'dead') v.set(e.node, 'dead');
      else if (e.ev === 'leave') v.set(e.node, 'left');
    }
    return v;
  }
}

export async function waitFor(what: string, pred: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Start n agents; all but the first join the first. Waits until every one lists all others alive. */
export async function startCluster(n: number, args: string[], prefix = 'm'): Promise<AgentProc[]> {
  const seed = new AgentProc(`${prefix}0`, args);
  await seed.started();
  const rest = Array.from({ length: n - 1 }, (_, i) => new AgentProc(`${prefix}${i + 1}`, [...args, '--join', seed.addr]));
  const all = [seed, ...rest];
  await Promise.all(rest.map((a) => a.started()));
  await waitFor(`all ${n} members see each other alive`, () => all.every((a) => {
    const v = a.view();
    return all.every((o) => o === a || v.get(o.name) === 'alive' || v.get(o.name) === 'suspect');
  }), 60_000);
  return all;
}
