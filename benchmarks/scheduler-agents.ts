// A group of simulated agents for the scheduler benchmark (benchmarks/scheduler.ts says what
// they stand for): each the real agent's session code (node/agent/agent.ts) with its own node
// certificate and mTLS connection, reporting `running` for a task as soon as it is assigned.
// Several groups run as processes of their own so that one busy event loop does not hold up a
// thousand agents' heartbeats. Reads its configuration (JSON) from the file named by argv[2];
// writes JSON lines on stdout: {"sessions":N,"streams":N,"reported":N}.
import { readFileSync } from 'node:fs';
import type { TlsIdentity } from '../manager/security/credentials.js';
import { Agent } from '../node/agent/agent.js';

export interface AgentsConfig {
  /** Node ids and identities of this group's agents. */
  agents: { nodeId: string; identity: TlsIdentity }[];
  /** Manager API addresses; agent i starts with manager (offset + i) % 3. */
  managers: string[];
  offset: number;
  verbose?: boolean;
}

const cfg = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as AgentsConfig;
const out = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
const MiB = 1024 * 1024;

let sessions = 0;
let streams = 0;
let reported = 0;
const agents: Agent[] = [];

function startAgent(nodeId: string, id: TlsIdentity, i: number): void {
  const order = cfg.managers.map((_, k) => cfg.managers[(cfg.offset + i + k) % cfg.managers.length]!);
  const seen = new Set<string>();
  let first = true;
  const a: Agent = new Agent({
    tls: () => id,
    hostname: nodeId,
    addr: '',
    gossipAddr: () => '',
    managers: () => order,
    onSession: () => void sessions++,
    onAssignments: (tasks) => {
      if (first) {
        first = false;
        streams++;
      }
      for (const [tid, t] of tasks) {
        if (seen.has(tid) || (t as { spec: { desiredState: string } }).spec.desiredState !== 'running') continue;
        seen.add(tid);
        reported++;
        a.report(tid, { state: 'running', message: 'simulated: running at once' });
      }
    },
    description: async () => ({ cpu_millis: 4000, memory_bytes: 8192 * MiB, runtime_name: 'simulated', runtime_version: '0', os: 'linux', arch: 'amd64' }),
    log: cfg.verbose ? (m) => process.stderr.write(`[${nodeId}] ${m}\n`) : () => {},
  });
  agents.push(a);
  a.start();
}

// In waves, so a thousand TLS handshakes and first writes do not all land at once.
const WAVE = 50;
for (let i = 0; i < cfg.agents.length; i += WAVE) {
  for (let k = i; k < Math.min(i + WAVE, cfg.agents.length); k++) startAgent(cfg.agents[k]!.nodeId, cfg.agents[k]!.identity, k);
  const want = Math.min(i + WAVE, cfg.agents.length);
  while (streams < want) await new Promise((r) => setTimeout(r, 50));
  out({ sessions, streams, reported });
}
let last = '';
const tick = setInterval(() => {
  const s = JSON.stringify({ sessions, streams, reported });
  if (s !== last) out(JSON.parse(s));
  last = s;
}, 250);

const stop = () => {
  clearInterval(tick);
  for (const a of agents) a.stop();
  setTimeout(() => process.exit(0), 200);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
