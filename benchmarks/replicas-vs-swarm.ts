// replicas-vs-swarm: from `service create` to all N replicas running, shoal in the lab against
// Docker Swarm, same machine, same run, same image, same command.
//
//   npm run bench:replicas -- --replicas 50 [--rounds 3]
//   (the npm script runs it under `flock /tmp/shoal-bench.lock nice -n 10`)
//
// shoal: a lab of 1 manager + 2 workers (`shoal lab up --managers 1 --workers 2 --demo 0`): one
// manager, as the one-node swarm has one (neither side replicates its store), and the fewest
// daemons on the machine's 2 cores; shoal's scheduler spreads the replicas over all three nodes
// (managers run tasks too, as Swarm's do). Image: the lab registry's busybox image, pulled by
// each node.
// Swarm: a one-node swarm (Debian's docker.io 20.10; benchmarks/swarm-peer.ts), dockerd in a
// namespace of its own with --bridge=none --iptables=false, the same image (with hardlink
// headers as Docker needs them: swarm-image.ts) pulled from a registry of its own,
// `docker service create --detach --no-resolve-image`.
// Both: command `sleep 1000000`, --stop-grace-period 1s. One warm-up service per system first
// (not counted: every node pulls the image then); then --rounds rounds, the order of the systems
// alternating; medians. A time is from the client's clock before the create call to the latest
// `running` time the system recorded for the N tasks (shoal: `service ps --format json`'s
// timestamps.running; Swarm: the task's Status.Timestamp, from the API `docker service ps`
// reads); "seen" is when a poll (every 100 ms) first saw all N running.
// Ends with: replicas-vs-swarm N=<N>: shoal <s> s, swarm <s> s, ratio <shoal/swarm>
import { checkFlags, intFlag, load, median, secs, withCleanup } from './bench-util.js';
import { ShoalLab, downActiveLabs } from './shoal-lab-peer.js';
import { requireDocker } from './swarm-host.js';
import { SwarmPeer, sweepActiveRuns } from './swarm-peer.js';

const PROG = 'replicas-vs-swarm';
const USAGE = 'usage: npm run bench:replicas -- [--replicas 50] [--rounds 3]';

interface Sample { seconds: number; observedSeconds: number }

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  checkFlags(PROG, argv, ['--replicas', '--rounds'], USAGE);
  const n = intFlag(PROG, argv, '--replicas', 50);
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
  const res: Record<'shoal' | 'swarm', Sample[]> = { shoal: [], swarm: [] };

  await withCleanup(PROG, async () => {
    say(`${PROG}: N=${n}, ${rounds} rounds after a warm-up, systems alternating; load ${load()}`);
    lab = await ShoalLab.up({ managers: 1, workers: 2, log: say });
    swarm = await SwarmPeer.start({ workers: 0, log: say });
    const sys = { shoal: lab, swarm };
    const once = async (which: 'shoal' | 'swarm', name: string): Promise<Sample> => {
      const r = await sys[which].timeReplicas(name, n);
      await sys[which].removeService(name);
      return r;
    };
    for (const which of ['shoal', 'swarm'] as const) {
      const r = await once(which, 'warm');
      say(`warm-up ${which.padEnd(5)}: ${n} running ${secs(r.seconds)} s after create (seen ${secs(r.observedSeconds)} s; image pulled here, not counted); load ${load()}`);
    }
    for (let i = 1; i <= rounds; i++) {
      for (const which of (i % 2 ? ['shoal', 'swarm'] : ['swarm', 'shoal']) as ('shoal' | 'swarm')[]) {
        const r = await once(which, `bench-${i}`);
        res[which].push(r);
        say(`round ${i} ${which.padEnd(5)}: ${n} running ${secs(r.seconds)} s after create (seen ${secs(r.observedSeconds)} s); load ${load()}`);
      }
    }
    const s = median(res.shoal.map((x) => x.seconds));
    const w = median(res.swarm.map((x) => x.seconds));
    say('');
    say(`| system (N=${n}) | median | rounds | median seen |`);
    say('|---|---|---|---|');
    say(`| shoal (lab: 1 manager + 2 workers) | ${secs(s)} s | ${res.shoal.map((x) => secs(x.seconds)).join(', ')} | ${secs(median(res.shoal.map((x) => x.observedSeconds)))} s |`);
    say(`| Docker Swarm 20.10 (one node) | ${secs(w)} s | ${res.swarm.map((x) => secs(x.seconds)).join(', ')} | ${secs(median(res.swarm.map((x) => x.observedSeconds)))} s |`);
    say(`load average at the end: ${load()}`);
    return `${PROG} N=${n}: shoal ${secs(s)} s, swarm ${secs(w)} s, ratio ${(s / w).toFixed(2)}`;
  }, async () => [
    ...(swarm ? await swarm.close() : []),
    ...(lab ? await lab.down() : []),
    ...(await sweepActiveRuns()),
    ...(await downActiveLabs()),
  ]);
}

void main();
