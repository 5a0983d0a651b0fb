// gossip simulator CLI.
//   node gossip/sim/cli.js --members 100 --loss 0.1 --duration 600 --seed 1 [--profile lan]
//   node gossip/sim/cli.js --table        (the N = 10/100/1000 × 0/10 % loss table)

import { isPresetName, type PresetName } from '../config.js';
import { median, runScenario, type ScenarioResult } from './scenario.js';

function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('--')) throw new Error(`gossip sim: unexpected argument "${a}"; flags look like --members 100`);
    const key = a.slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out.set(key, 'true');
    else { out.set(key, next); i++; }
  }
  return out;
}

function num(args: Map<string, string>, key: string, dflt: number): number {
  const v = args.get(key);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`gossip sim: --${key} must be a number, got "${v}"`);
  return n;
}

const f = (x: number, d = 2): string => (Number.isNaN(x) ? 'n/a' : x.toFixed(d));

function row(r: { members: number; loss: number; detectFirstS: number; detectLastS: number; disseminationS: number; falseDeadMembers: number; falseSuspicions: number; bytesPerMemberPerS: number; runs: number; virtualS: number }): string {
  return `| ${r.members} | ${(r.loss * 100).toFixed(0)} % | ${f(r.detectFirstS)} | ${f(r.detectLastS)} | ${f(r.disseminationS, 3)} | ${r.falseDeadMembers} | ${r.falseSuspicions} | ${f(r.bytesPerMemberPerS, 0)} | ${r.runs} × ${r.virtualS.toFixed(0)} s |`;
}

const HEADER = '| N | loss | detect first (s) | detect last (s) | dissemination (s) | false dead | false suspicions | bytes/member/s | runs × virtual time |\n|---|---|---|---|---|---|---|---|---|';

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const profile = args.get('profile') ?? 'lan';
  if (!isPresetName(profile)) throw new Error(`gossip sim: unknown --profile "${profile}"; use lan, wan, local or serf-lan`);
  const net = { latencyMs: num(args, 'latency', 0.5), jitterMs: num(args, 'jitter', 1), loss: num(args, 'loss', 0) };
  if (net.loss < 0 || net.loss >= 1) throw new Error(`gossip sim: --loss must be in [0, 1), got ${net.loss}`);
  if (args.has('table')) {
    const seeds = num(args, 'seeds', 3);
    console.log(`profile ${profile}, latency ${net.latencyMs}+U(0,${net.jitterMs}) ms; medians over ${seeds} seeds; false counts summed`);
    console.log(HEADER);
    for (const members of [10, 100, 1000]) {
      for (const loss of [0, 0.1]) {
        const duration = members === 1000 ? 150 : 600;
        const runs: ScenarioResult[] = [];
        for (let s = 1; s <= (members === 1000 ? 1 : seeds); s++) {
          runs.push(runScenario({ members, seed: s, preset: profile as PresetName, net: { ...net, loss }, durationS: duration }));
        }
        console.log(row({
          members, loss, runs: runs.length, virtualS: duration,
          detectFirstS: median(runs.map((r) => r.detectFirstS)),
          detectLastS: median(runs.map((r) => r.detectLastS)),
          disseminationS: median(runs.map((r) => r.disseminationS)),
          falseDeadMembers: runs.reduce((a, r) => a + r.falseDeadMembers, 0),
          falseSuspicions: runs.reduce((a, r) => a + r.falseSuspicions, 0),
          bytesPerMemberPerS: median(runs.map((r) => r.bytesPerMemberPerS)),
        }));
      }
    }
    return;
  }
  const r = runScenario({
    members: num(args, 'members', 100), seed: num(args, 'seed', 1), preset: profile,
    net, durationS: num(args, 'duration', 150),
  });
  console.log(JSON.stringify(r));
}

try {
  main();
} catch (e) {
  console.error((e as Error).message);
  process.exit(2);
}
