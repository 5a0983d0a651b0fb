// shoal gossip vs serf (memberlist's reference agent), on 127.0.0.1.
//
//   npm run bench:gossip -- --members 10 [--trials 3] [--settle 20] [--rest 15]
//                           [--systems serf,shoal-serf-lan,shoal-lan]
//
// For each system: N agents start and join the first; once every agent lists
// all others alive and --settle seconds have passed, CPU at rest is read from
// /proc/<pid>/stat (utime + stime) over --rest seconds. Then, --trials times: one member (never the seed) is SIGKILLed and
// we time until every other agent lists it failed/dead; a fresh agent joins
// and we time until every existing agent lists it alive. Medians are printed.
// Systems: serf -profile=lan; shoal at serf's settings (profile serf-lan =
// memberlist DefaultLANConfig); shoal's own default profile (lan).
// The last line compares shoal and serf at the same settings.

import { cpuSeconds, SerfCluster, ShoalCluster, sleep, type Agent, type BenchCluster, type Status } from './gossip-bench-cluster.js';

interface Result {
  detect: number[];
  join: number[];
  cpuPct: number;
}

function parseArgs(): { members: number; trials: number; restS: number; settleS: number; systems: string[] } {
  const a = process.argv.slice(2);
  const get = (k: string, d: number): number => {
    const i = a.indexOf(`--${k}`);
    if (i < 0) return d;
    const v = Number(a[i + 1]);
    if (!Number.isInteger(v) || v <= 0) {
      console.error(`gossip-vs-serf: --${k} needs a positive integer, got "${a[i + 1] ?? ''}"`);
      process.exit(2);
    }
    return v;
  };
  const members = get('members', 10);
  if (members < 3) {
    console.error('gossip-vs-serf: --members must be at least 3');
    process.exit(2);
  }
  const i = a.indexOf('--systems');
  const systems = (i >= 0 ? a[i + 1] ?? '' : 'serf,shoal-serf-lan,shoal-lan').split(',');
  for (const sys of systems) {
    if (!['serf', 'shoal-serf-lan', 'shoal-lan'].includes(sys)) {
      console.error(`gossip-vs-serf: unknown system "${sys}" in --systems; use serf, shoal-serf-lan, shoal-lan`);
      process.exit(2);
    }
  }
  return { members, trials: get('trials', 3), restS: get('rest', 15), settleS: get('settle', 20), systems };
}

const median = (xs: number[]): number => {
  const v = [...xs].sort((x, y) => x - y);
  const m = v.length >> 1;
  return v.length % 2 ? (v[m] as number) : ((v[m - 1] as number) + (v[m] as number)) / 2;
};

async function runSystem(c: BenchCluster, n: number, trials: number, restS: number, settleS: number): Promise<Result> {
  // view[observer][subject] = latest status and when it was first seen
  const view = new Map<string, Map<string, { status: Status; at: number }>>();
  c.onStatus((o, s, status, at) => {
    let m = view.get(o);
    if (!m) view.set(o, (m = new Map()));
    if (m.get(s)?.status !== status) m.set(s, { status, at });
  });
  const seesAs = (o: Agent, s: string, st: Status, since: number): number | undefined => {
    const v = view.get(o.name)?.get(s);
    return v && v.status === st && v.at >= since ? v.at : undefined;
  };
  const waitAll = async (observers: Agent[], subject: string, st: Status, since: number, timeoutMs: number, what: string): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ats = observers.map((o) => seesAs(o, subject, st, since));
      if (ats.every((x) => x !== undefined)) return Math.max(...(ats as number[])) - since;
      if (Date.now() > deadline) {
        const missing = observers.filter((_, i) => ats[i] === undefined).map((o) => o.name);
        throw new Error(`${c.label}: ${what}: after ${timeoutMs / 1000} s, ${missing.length} of ${observers.length} members still do not list ${subject} as ${st} (${missing.join(', ')})`);
      }
      await sleep(10);
    }
  };

  try {
    const seed = await c.start('n0');
    const rest = await Promise.all(Array.from({ length: n - 1 }, (_, i) => c.start(`n${i + 1}`)));
    c.setObserving(true);
    const formedSince = Date.now() - 60_000;
    await Promise.all(rest.map((a) => c.join(a, seed.addr)));
    const all = [seed, ...rest];
    for (const s of all) await waitAll(all.filter((o) => o !== s), s.name, 'alive', formedSince, 60_000, 'forming the cluster');
    c.setObserving(false);
    // "At rest": the cluster has been up a while, so start-up work (JIT
    // compilation and heap sizing in Node, the join broadcasts in both) is
    // over. Same wait for every system.
    await sleep(settleS * 1000);

    const pids = all.map((a) => a.proc.pid as number);
    const cpu0 = pids.reduce((x, p) => x + cpuSeconds(p), 0);
    await sleep(restS * 1000);
    const cpu1 = pids.reduce((x, p) => x + cpuSeconds(p), 0);
    const cpuPct = ((cpu1 - cpu0) / restS / n) * 100;

    c.setObserving(true);
    const liveAgents = new Set(all);
    const detect: number[] = [];
    const join: number[] = [];
    for (let t = 1; t <= trials; t++) {
      const candidates = [...liveAgents].filter((a) => a !== seed);
      const victim = candidates[Math.floor(Math.random() * candidates.length)] as Agent;
      liveAgents.delete(victim);
      const t0 = Date.now();
      c.kill(victim);
      detect.push(await waitAll([...liveAgents], victim.name, 'failed', t0, 90_000, 'detecting a killed member'));

      const fresh = await c.start(`r${t}`);
      await sleep(500); // let the new process settle before timing its join
      const t1 = Date.now();
      await c.join(fresh, seed.addr);
      join.push(await waitAll([...liveAgents], fresh.name, 'alive', t1, 30_000, 'seeing a joined member'));
      liveAgents.add(fresh);
      await sleep(2000);
    }
    return { detect, join, cpuPct };
  } finally {
    await c.stopAll();
  }
}

function describe(label: string, r: Result): string {
  const s = (xs: number[]): string => xs.map((x) => (x / 1000).toFixed(2)).join(', ');
  return `${label}: detect median ${(median(r.detect) / 1000).toFixed(2)} s [${s(r.detect)}], join median ${(median(r.join) / 1000).toFixed(2)} s [${s(r.join)}], cpu at rest ${r.cpuPct.toFixed(2)}% of a core per member`;
}

async function main(): Promise<void> {
  const { members, trials, restS, settleS, systems } = parseArgs();
  console.log(`gossip-vs-serf: N=${members}, ${trials} trials, CPU over ${restS} s after ${settleS} s at rest, loopback`);
  const results = new Map<string, Result>();
  const runs: [string, string, () => BenchCluster][] = [
    ['serf', 'serf (-profile=lan)', () => new SerfCluster()],
    ['shoal-serf-lan', 'shoal (profile serf-lan = serf\'s settings)', () => new ShoalCluster('shoal serf-lan', 'serf-lan')],
    ['shoal-lan', 'shoal (profile lan, shoal default)', () => new ShoalCluster('shoal lan', 'lan')],
  ];
  for (const [key, label, make] of runs) {
    if (!systems.includes(key)) continue;
    const r = await runSystem(make(), members, trials, restS, settleS);
    results.set(key, r);
    console.log(describe(label, r));
  }
  const f = (ms: number[]): string => (median(ms) / 1000).toFixed(2);
  const own = results.get('shoal-lan');
  if (own) console.log(`gossip-vs-serf N=${members} shoal-default(lan): detect ${f(own.detect)} s, join ${f(own.join)} s, cpu ${own.cpuPct.toFixed(2)}%`);
  const same = results.get('shoal-serf-lan');
  const serf = results.get('serf');
  if (same && serf) {
    console.log(`gossip-vs-serf N=${members}: detect shoal ${f(same.detect)} s serf ${f(serf.detect)} s, join shoal ${f(same.join)} s serf ${f(serf.join)} s, cpu shoal ${same.cpuPct.toFixed(2)}% serf ${serf.cpuPct.toFixed(2)}%`);
  }
}

main().then(() => process.exit(0), (e: Error) => {
  console.error(`gossip-vs-serf: ${e.message}`);
  process.exit(1);
});
