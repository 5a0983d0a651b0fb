// The replicated store under faults, as real processes on a real (namespaced) network:
// three managers (manager/store-main.js), each in its own network namespace, joined by a bridge
// in a namespace of its own; a client process in a fourth namespace runs a write/read load and
// records every operation. Faults: kill -9 of the leader, its restart, a partition of one member
// (its veth on the bridge set down) and the heal. Then: the history must be linearizable (raft/sim
// checker), every acknowledged write must be in each auditable manager's committed log at the
// version it was acknowledged with, and the replicas must hold identical stores. The time from the
// leader's death to the first write accepted after it is printed (not asserted: speed belongs in
// benchmarks).
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { checkHistory, type Operation } from '../raft/sim/linearizability.js';
import { attachNetns, deleteNetns, makeBridgeNetns, setBridgePort } from '../lab/netns.js';

const here = dirname(fileURLToPath(import.meta.url));
const MAIN = join(here, '..', 'manager', 'store-main.js');
const CLIENT = join(here, 'store-cluster-client.js');
const P = `sc${process.pid}`;
const BR_NS = `${P}br`;
const CL_NS = `${P}cl`;
const nsOf = (i: number) => `${P}m${i}`;
const vethOf = (i: number) => `${P}v${i}`; // bridge-side end
const ipOf = (i: number) => `10.213.0.${i}`;
const IDS = [1, 2, 3];

// The network is built by the lab's own helpers (lab/netns.ts), with this test's names.
function setupNetwork(): void {
  makeBridgeNetns(BR_NS);
  for (const i of IDS) attachNetns({ bridgeNs: BR_NS, ns: nsOf(i), port: vethOf(i), address: ipOf(i), bits: 24 });
  attachNetns({ bridgeNs: BR_NS, ns: CL_NS, port: `${P}vc`, address: ipOf(100), bits: 24 });
}

function teardownNetwork(): void {
  for (const ns of [...IDS.map(nsOf), CL_NS, BR_NS]) deleteNetns(ns);
}

class Proc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  private waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  role = '';
  exited = false;
  constructor(ns: string, args: string[], readonly name: string, onErrLine?: (l: string) => void) {
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.on('exit', () => (this.exited = true));
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      this.lines.push(l);
      this.waiters = this.waiters.filter((w) => (w.re.test(l) ? (w.resolve(l), false) : true));
    });
    createInterface({ input: this.child.stderr! }).on('line', (l) => {
      if (process.env.SHOAL_TEST_LOG) process.stderr.write(`${name}: ${l}\n`);
      onErrLine?.(l);
    });
  }
  next(re: RegExp, ms = 60000): Promise<string> {
    const have = this.lines.find((l) => re.test(l));
    if (have) {
      this.lines.splice(this.lines.indexOf(have), 1);
      return Promise.resolve(have);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no line matching ${re} within ${ms} ms`)), ms);
      this.waiters.push({ re, resolve: (l) => { clearTimeout(timer); this.lines.splice(this.lines.indexOf(l), 1); resolve(l); } });
    });
  }
  send(o: unknown): void {
    this.child.stdin!.write(JSON.stringify(o) + '\n');
  }
  kill(sig: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.exited) this.child.kill(sig);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('3 managers: kill -9 the leader, restart it, partition a member, heal; history linearizable, no acked write lost', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), `shoal-store-cluster-${process.pid}-`));
  const procs = new Map<number, Proc>();
  let client: Proc | undefined;
  t.teardown(async () => {
    client?.kill();
    for (const p of procs.values()) p.kill();
    await sleep(200);
    teardownNetwork();
    rmSync(dataDir, { recursive: true, force: true });
  });
  teardownNetwork(); // leftovers of a crashed earlier run with the same pid
  setupNetwork();

  const peers = IDS.flatMap((i) => ['--peer', `${i}=${ipOf(i)}:7000,${ipOf(i)}:8000`]);
  const startManager = async (i: number) => {
    const p = new Proc(nsOf(i), [MAIN, '--id', String(i), '--data', join(dataDir, 'm' + i), '--raft', `${ipOf(i)}:7000`, '--api', `${ipOf(i)}:8000`, '--allow-netns', ...peers], `m${i}`);
    procs.set(i, p);
    await p.next(/"ready":true/);
    return p;
  };
  for (const i of IDS) await startManager(i);
  client = new Proc(CL_NS, [CLIENT, IDS.map((i) => `${ipOf(i)}:8000`).join(','), '4', '8'], 'client');
  await client.next(/hello/);

  const statuses = async () => {
    client!.send({ cmd: 'status' });
    return JSON.parse(await client!.next(/^\{"status"/)).status as { id?: number; leader?: number; role?: string; error?: string }[];
  };
  /** A leader all reachable managers agree on, other than `not`. */
  const agreedLeader = async (not = 0, ms = 60000): Promise<number> => {
    const end = Date.now() + ms;
    for (;;) {
      const st = await statuses();
      const leaders = st.filter((s) => s.role === 'leader').map((s) => s.id!);
      const ok = st.filter((s) => !s.error);
      if (leaders.length === 1 && leaders[0] !== not && ok.every((s) => s.leader === leaders[0])) return leaders[0]!;
      if (Date.now() > end) throw new Error('no agreed leader: ' + JSON.stringify(st));
      await sleep(100);
    }
  };

  const lead1 = await agreedLeader();
  client.send({ cmd: 'start' });
  await client.next(/started/);
  await sleep(4000);

  // Fault 1: kill -9 the leader.
  const tKill = Date.now();
  procs.get(lead1)!.kill('SIGKILL');
  const lead2 = await agreedLeader(lead1);
  t.not(lead2, lead1, `new leader ${lead2} after killing ${lead1}`);
  await sleep(3000);

  // Fault 2: restart it from its data directory.
  await startManager(lead1);
  await sleep(3000);

  // Fault 3: partition the current leader (its bridge port goes down), then heal.
  const lead3 = await agreedLeader();
  setBridgePort(BR_NS, vethOf(lead3), false);
  let partitioned = true;
  t.teardown(() => {
    try {
      if (partitioned) setBridgePort(BR_NS, vethOf(lead3), true);
    } catch {
      // the namespace is already gone
    }
  });
  await sleep(5000);
  setBridgePort(BR_NS, vethOf(lead3), true);
  partitioned = false;
  await sleep(5000);
  await agreedLeader();

  client.send({ cmd: 'stop' });
  const { history, acked } = JSON.parse(await client.next(/^\{"history"/, 120000)) as { history: Operation[]; acked: { call: number; returned: number }[] };
  client.send({ cmd: 'final' });
  const fin = JSON.parse(await client.next(/^\{"final"/, 120000)).final as {
    reads: number; audits: { ok: boolean; missing: number; checked: number; skipped?: boolean; error?: string }[]; storesEqual: boolean; acked: number;
  };
  // The final reads were appended to the history by the client; fetch the whole history again.
  client.send({ cmd: 'stop' });
  const all = (JSON.parse(await client.next(/^\{"history"/, 120000)) as { history: Operation[] }).history;

  // A write sent after the kill can only have been accepted by the new leader (a write sent
  // earlier may have been committed by the old one and merely answered late).
  const firstAfter = acked.filter((a) => a.call > tKill).map((a) => a.returned).sort((a, b) => a - b)[0];
  const failoverMs = firstAfter === undefined ? NaN : firstAfter - tKill;
  const puts = history.filter((o) => o.op === 'put');
  const open = puts.filter((o) => o.return === undefined || o.return === null).length;
  console.log(`store-cluster: leader ${lead1} killed; first write accepted by the new leader (${lead2}) ${failoverMs.toFixed(0)} ms after its death`);
  console.log(`store-cluster: ${history.length} ops (${puts.length} puts, ${open} with unknown outcome, ${acked.length} acknowledged), ${fin.reads} final reads; partitioned ${lead3}`);

  t.ok(acked.length > 100, `a real load ran (${acked.length} acknowledged writes)`);
  t.ok(Number.isFinite(failoverMs), 'writes were accepted after the leader died');
  const res = checkHistory(all);
  t.ok(res.ok, `history of ${all.length} ops is linearizable` + (res.ok ? '' : `: key ${res.key}: ${res.explanation}${res.unknown ? ' (search budget exhausted)' : ''}`));
  const audited = fin.audits.filter((a) => !a.skipped);
  t.ok(audited.length >= 2, `at least two managers audited (${audited.length})`);
  for (const a of fin.audits) t.ok(a.ok, `acknowledged writes all present: ${JSON.stringify(a)}`);
  t.equal(fin.reads, 8 * 3, 'every manager answered the final linearizable reads');
  t.ok(fin.storesEqual, 'all three replicas hold the same objects at the same versions');
  client.send({ cmd: 'exit' });
});
