// failover-vs-swarm: a worker running N replicas dies (SIGKILL); time until all N run on another
// worker, shoal in the lab against Docker Swarm, same machine, same run, same image and command.
//
//   npm run bench:failover [-- --replicas 20 --rounds 3]
//   (the npm script runs it under `flock /tmp/shoal-bench.lock nice -n 10`)
//
// Both systems get the same shape and the same procedure, fresh for every round:
//  - 1 manager + 2 workers. shoal: `shoal lab up --managers 1 --workers 2 --demo 0`. Swarm: three
//    dockerd hosts on a bridge (benchmarks/swarm-peer.ts), `swarm init` + 2 x `swarm join`.
//  - N replicas of `sleep 1000000` with the constraint node.role==worker, first spread over both
//    workers (so both have the image); worker-2 is drained (its tasks move to worker-1) until its
//    containers are gone, then set active again; after 2 s with all N on worker-1, worker-1 dies:
//    shoal: `shoal lab stop worker-1 --signal KILL` (its shoald; the clock starts when that
//    process is gone); Swarm: SIGKILL to worker-1's dockerd and containerd. On both, the dead
//    node's containers keep running, unreported, as after a real daemon crash.
//  - Measured from the kill: when the manager shows worker-1 down (poll every 100 ms), and the
//    latest `running` time the system recorded for the N tasks now running on worker-2 (shoal:
//    `service ps --format json` timestamps.running; Swarm: task Status.Timestamp); "seen" is when
//    a poll first saw them all.
// The systems alternate which goes first; medians over the rounds.
// Ends with: failover-vs-swarm: shoal <s> s, swarm <s> s, ratio <shoal/swarm>
import { checkFlags, intFlag, load, median, secs, withCleanup } from './bench-util.js';
import { ShoalLab, downActiveLabs, type FailoverResult } from './shoal-lab-peer.js';
import { requireDocker } from './swarm-host.js';
import { SwarmPeer, sweepActiveRuns } from './swarm-peer.js';

const PROG = 'failover-vs-swarm';
const USAGE = 'usage: npm run bench:failover -- [--replicas 20] [--rounds 3]';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  checkFlags(PROG, argv, ['--replicas', '--rounds'], USAGE);
  const n = intFlag(PROG, argv, '--replicas', 20);
  const rounds = intFlag(PROG, argv, '--rounds', 3);
  try {
    requireDocker(); // before the lab is built, not after
  } catch (e) {
    process.stderr.write(`${PROG}: ${(e as Error).message}\n`);
    process.exit(1);
  }
  const say = (s: string) => process.stdout.write(s + '\n');
  let lab: ShoalLab | undefined;
  let swarm: SwarmPeer | undefined;
  const res: Record<'shoal' | 'swarm', FailoverResult[]> = { shoal: [], swarm: [] };

  const runShoal = async (i: number): Promise<FailoverResult> => {
    lab = await ShoalLab.up({ managers: 1, workers: 2, log: say });
    try {
      return await lab.failover(`failover-${i}`, n);
    } finally {
      const left = await lab.down();
      lab = undefined;
      if (left.length) throw new Error(`could not remove: ${left.join(', ')}`);
    }
  };
  const runSwarm = async (i: number): Promise<FailoverResult> => {
    swarm = await SwarmPeer.start({ workers: 2, log: say });
    try {
      return await swarm.failover(`failover-${i}`, n);
    } finally {
      const left = await swarm.close();
      swarm = undefined;
      if (left.length) throw new Error(`could not remove: ${left.join(', ')}`);
    }
  };

  await withCleanup(PROG, async () => {
    say(`${PROG}: ${n} replicas on the worker that dies, ${rounds} rounds, systems alternating, each round on a fresh cluster; load ${load()}`);
    for (let i = 1; i <= rounds; i++) {
      for (const which of (i % 2 ? ['shoal', 'swarm'] : ['swarm', 'shoal']) as ('shoal' | 'swarm')[]) {
        const r = which === 'shoal' ? await runShoal(i) : await runSwarm(i);
        res[which].push(r);
        say(`round ${i} ${which.padEnd(5)}: worker-1 down at ${secs(r.downSeconds)} s, ${n} running on worker-2 at ${secs(r.seconds)} s (seen ${secs(r.observedSeconds)} s); load ${load()}`);
      }
    }
    const m = (w: 'shoal' | 'swarm', k: keyof FailoverResult) => median(res[w].map((x) => x[k]));
    say('');
    say(`| system (N=${n}) | node marked down | all running elsewhere | rounds |`);
    say('|---|---|---|---|');
    say(`| shoal (lab: 1 manager + 2 workers) | ${secs(m('shoal', 'downSeconds'))} s | ${secs(m('shoal', 'seconds'))} s | ${res.shoal.map((x) => secs(x.seconds)).join(', ')} |`);
    say(`| Docker Swarm 20.10 (1 manager + 2 workers) | ${secs(m('swarm', 'downSeconds'))} s | ${secs(m('swarm', 'seconds'))} s | ${res.swarm.map((x) => secs(x.seconds)).join(', ')} |`);
    say(`node marked down (median): shoal ${secs(m('shoal', 'downSeconds'))} s, swarm ${secs(m('swarm', 'downSeconds'))} s`);
    say(`load average at the end: ${load()}`);
    const s = m('shoal', 'seconds');
    const w = m('swarm', 'seconds');
    return `${PROG}: shoal ${secs(s)} s, swarm ${secs(w)} s, ratio ${(s / w).toFixed(2)}`;
  }, async () => [
    ...(swarm ? await swarm.close() : []),
    ...(lab ? await lab.down() : []),
    ...(await sweepActiveRuns()),
    ...(await downActiveLabs()),
  ]);
}

void main();
