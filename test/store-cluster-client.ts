// The client side of test/store-cluster.test.ts. It runs inside the test's client network
// namespace (the managers are only reachable there) and is driven by JSON lines on stdin:
//   {"cmd":"status"}            -> {"status":[per manager status or error]}
//   {"cmd":"start"}             -> starts C closed-loop clients doing puts and linearizable gets
//   {"cmd":"stop"}              -> stops them, then {"history":[...]} (every operation with times)
//   {"cmd":"final"}             -> linearizable reads of every key from every manager (appended to
//                                  the history), the acknowledged-write audit, the replicas' stores
// Times are epoch milliseconds (sub-ms) so the test can relate them to when it killed a process.
import { createInterface } from 'node:readline';
import { StoreClient } from '../manager/storeapi/client.js';
import { decodeValue } from '../manager/storeapi/convert.js';
import type { Operation } from '../raft/sim/linearizability.js';

const apis = process.argv[2]!.split(',');
const CLIENTS = Number(process.argv[3] ?? 4);
const KEYS = Number(process.argv[4] ?? 8);
const OP_TIMEOUT_MS = 2000;

const now = () => performance.timeOrigin + performance.now();
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const clients = apis.map((a) => new StoreClient(a, { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 }));

interface Acked { key: string; value: string; version: number; call: number; returned: number; via: number }
const history: Operation[] = [];
const acked: Acked[] = [];
let running = false;
const loops: Promise<void>[] = [];

// Errors our server raises before it proposes anything: the write certainly did not happen. Any
// other failure (deadline, broken connection mid-call) leaves the write open: it may have applied.
const DEFINITE = /not the raft leader|has no raft leader|was dropped by raft|transaction conflict|shutting down/;

async function clientLoop(cid: number): Promise<void> {
  let seq = 0;
  let m = cid % clients.length;
  while (running) {
    const key = 'k' + Math.floor(Math.random() * KEYS);
    const c = clients[m]!;
    const call = now();
    if (Math.random() < 0.6) {
      const value = `c${cid}-${++seq}`;
      const op: Operation = { clientId: cid, key, op: 'put', value, call };
      try {
        const r = await c.put({ kind: 'config', id: key, name: key, spec: value }, undefined, OP_TIMEOUT_MS);
        op.return = now();
        acked.push({ key, value, version: r.version, call, returned: op.return, via: m });
        history.push(op);
      } catch (e) {
        const err = e as { details?: string };
        if (!DEFINITE.test(err.details ?? '')) history.push(op); // open: may have happened
        m = (m + 1) % clients.length;
        await new Promise((r) => setTimeout(r, 20));
      }
    } else {
      try {
        const r = await c.get('config', key, false, OP_TIMEOUT_MS);
        history.push({ clientId: cid, key, op: 'get', output: (r.object?.spec as string | undefined) ?? '', call, return: now() });
      } catch {
        // a failed read has no effect: leave it out
        m = (m + 1) % clients.length;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function status() {
  return Promise.all(clients.map((c, i) => c.status(1000).catch((e: Error) => ({ index: i, error: e.message }))));
}

/** Every acknowledged write must be in each manager's committed history at its version. */
async function audit(c: StoreClient): Promise<{ ok: boolean; missing: number; checked: number; error?: string; skipped?: boolean }> {
  // Every acknowledged write is at or below the highest acknowledged version: replay up to it.
  const target = acked.reduce((m, a) => Math.max(m, a.version), 0);
  const seen = new Map<number, Map<string, string>>(); // version -> key -> value
  await new Promise<void>((resolve, reject) => {
    const w = c.watch({ kinds: ['config'], fromVersion: 1 });
    const timer = setTimeout(() => { w.cancel(); reject(new Error(`audit watch did not reach version ${target}`)); }, 20000);
    w.on('data', (e: { version: number; object: { id: string; spec: Uint8Array } }) => {
      const v = Number(e.version);
      let m = seen.get(v);
      if (!m) seen.set(v, (m = new Map()));
      m.set(e.object.id, String(decodeValue(e.object.spec, 'spec')));
      if (v >= target) { clearTimeout(timer); w.cancel(); resolve(); }
    });
    w.on('error', (e: { code: number; details: string }) => { clearTimeout(timer); if (e.code === 1) resolve(); else reject(Object.assign(new Error(e.details), { code: e.code })); });
  }).catch((e: Error & { code?: number }) => {
    // A manager restored from a snapshot no longer holds the early events: it cannot be audited.
    if (e.code === 11) return 'skipped';
    throw e;
  }).then((r) => r);
  if (seen.size === 0 && acked.length > 0) return { ok: true, missing: 0, checked: 0, skipped: true };
  let missing = 0;
  for (const a of acked) if (seen.get(a.version)?.get(a.key) !== a.value) missing++;
  return { ok: missing === 0, missing, checked: acked.length };
}


async function final() {
  const reads: Operation[] = [];
  for (let i = 0; i < KEYS; i++) {
    const key = 'k' + i;
    for (const [m, c] of clients.entries()) {
      const call = now();
      try {
        const r = await c.get('config', key, false, 5000);
        reads.push({ clientId: `final-${m}`, key, op: 'get', output: (r.object?.spec as string | undefined) ?? '', call, return: now() });
      } catch (e) {
        out({ log: `final read of ${key} from manager ${m} failed: ${(e as Error).message}` });
      }
    }
  }
  history.push(...reads);
  const audits = [];
  for (const c of clients) audits.push(await audit(c).catch((e: Error) => ({ ok: false, missing: -1, checked: 0, error: e.message })));
  // Wait for the replicas to hold the same applied index, then compare their stores.
  let stores: string[] = [];
  for (let tries = 0; tries < 100; tries++) {
    const st = await status();
    const applied = st.map((s) => ('applied' in s ? s.applied : -1));
    if (applied.every((a) => a === applied[0] && a > 0)) {
      stores = await Promise.all(clients.map(async (c) => JSON.stringify((await c.list('config', { stale: true })).objects.map((o) => [o.id, o.version, o.spec]).sort())));
      const st2 = await status();
      if (st2.every((s) => 'applied' in s && s.applied === applied[0])) break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  out({ final: { reads: reads.length, audits, storesEqual: stores.length === clients.length && stores.every((s) => s === stores[0]), acked: acked.length } });
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  void (async () => {
    const { cmd } = JSON.parse(line) as { cmd: string };
    if (cmd === 'status') out({ status: await status() });
    else if (cmd === 'start') {
      running = true;
      for (let i = 0; i < CLIENTS; i++) loops.push(clientLoop(i));
      out({ started: true });
    } else if (cmd === 'stop') {
      running = false;
      await Promise.all(loops);
      out({ history, acked });
    } else if (cmd === 'final') {
      await final();
    } else if (cmd === 'exit') {
      for (const c of clients) c.close();
      process.exit(0);
    }
  })().catch((e) => out({ error: (e as Error).stack }));
});
out({ hello: true });
