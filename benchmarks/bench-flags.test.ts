// The side-by-side benchmarks refuse bad arguments before they build anything: a clear message,
// exit status 2, and no lab or swarm left on the machine (they exit before creating one).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** A benchmark's lab and swarm directories carry its pid; none may exist for a refused run. */
function madeBy(pid: number | undefined): string[] {
  return readdirSync(tmpdir()).filter((f) => f.startsWith(`shoal-bench-lab-${pid}-`) || f.startsWith(`shoal-swarm-${pid}-`) || f.startsWith(`shoal-sobv${pid}-`) || f.startsWith(`shoal-sobo${pid}-`));
}

const cases: [string, string[], RegExp][] = [
  ['replicas-vs-swarm.js', ['--replicas', '0'], /--replicas needs a whole number of at least 1, got "0"/],
  ['replicas-vs-swarm.js', ['--replicas', 'many'], /--replicas needs a whole number of at least 1, got "many"/],
  ['replicas-vs-swarm.js', ['--replicas'], /--replicas needs a whole number of at least 1, got ""/],
  ['replicas-vs-swarm.js', ['--rounds', '-1'], /--rounds needs a whole number of at least 1, got "-1"/],
  ['replicas-vs-swarm.js', ['--replica', '50'], /unknown argument "--replica"\nusage: npm run bench:replicas/],
  ['failover-vs-swarm.js', ['--replicas', '2.5'], /--replicas needs a whole number of at least 1, got "2.5"/],
  ['failover-vs-swarm.js', ['50'], /unknown argument "50"\nusage: npm run bench:failover/],
  ['swarm-peer.js', ['--replicas', 'x'], /--replicas needs a positive integer, got "x"/],
  ['vip-vs-direct.js', ['--rounds', '0'], /bench:vip: --rounds needs a positive number, got "0"/],
  ['vip-vs-direct.js', ['--concurrency'], /bench:vip: --concurrency needs a positive number, got ""/],
  ['vip-vs-direct.js', ['--round', '3'], /bench:vip: unknown argument "--round"\nusage: npm run bench:vip/],
  ['overlay-vs-vxlan.js', ['--seconds', 'five'], /bench:overlay: --seconds needs a positive number, got "five"/],
  ['overlay-vs-vxlan.js', ['3'], /bench:overlay: unknown argument "3"\nusage: npm run bench:overlay/],
];

for (const [script, args, msg] of cases) {
  t.test(`${script} ${args.join(' ')}`, async (t) => {
    const r = spawnSync(process.execPath, [join(here, script), ...args], { encoding: 'utf8', timeout: 90_000 });
    t.equal(r.status, 2, 'exit status 2');
    t.match(r.stderr, msg);
    t.same(madeBy(r.pid), [], 'nothing was built');
  });
}

