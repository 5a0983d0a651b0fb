// The lab with its own DHT (issue 17): `shoal lab up --managers 2 --workers 2 --discovery dht`
// runs shoal-dht-bootstrap in a lab namespace and every node but the first joins with the token
// only (no address): the extra manager and both workers appear ready in `node ls`, and the demo
// service's tasks run on the workers. Then `lab down` removes the DHT's namespace and process with
// the rest, and the root namespace is untouched: the DHT traffic stayed inside the lab.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { labName } from '../lab/names.js';
import { labNetnsList } from '../lab/netns.js';
import { readState } from '../lab/state.js';
import { CLI_MAIN, labDirFor, rootNet, type Ran } from './lab-helpers.js';

t.test('lab up --discovery dht: a manager and two workers join with the token only, run tasks; down removes the DHT', async (t) => {
  const dir = labDirFor(t, 'dht');
  const env = { ...process.env, SHOAL_LAB_DIR: dir };
  const shoal = (args: string[], timeoutMs = 240_000): Ran => {
    const r = spawnSync(process.execPath, [CLI_MAIN, ...args], { encoding: 'utf8', env, timeout: timeoutMs });
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  };
  const before = rootNet();
  const t0 = Date.now();
  const up = shoal(['lab', 'up', '--managers', '2', '--workers', '2', '--demo', '2', '--discovery', 'dht']);
  console.log(`lab-dht: \`shoal lab up --managers 2 --workers 2 --discovery dht\` took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  t.equal(up.status, 0, `lab up exits 0 (stderr: ${up.stderr.trim().slice(-2000)}; stdout: ${up.stdout.trim().slice(-2000)})`);
  t.match(up.stdout, /DHT bootstrap 10\.99\.0\.3:49737/, 'the lab runs its own DHT bootstrap');
  for (const n of ['manager-2', 'worker-1', 'worker-2']) t.match(up.stdout, new RegExp(`${n} joined as (manager|worker) \\(found on the DHT by the token\\)`), `${n} joined with the token only`);
  t.match(up.stdout, /all 4 nodes ready/);

  const s = readState(dir)!;
  t.equal(s.discovery, 'dht');
  t.ok(s.dht?.proc, 'the DHT process is recorded for lab down');
  t.ok(labNetnsList(labName(dir)).some((ns) => ns.endsWith('-dht')), 'in a lab namespace of its own');
  for (const n of s.nodes) {
    t.ok(n.argv.includes('--dht-bootstrap') && n.argv[n.argv.indexOf('--dht-bootstrap') + 1] === '10.99.0.3:49737', `${n.name}'s shoald is given the lab's bootstrap, never the public one`);
    if (n.name === 'manager-1') continue;
    const log = readFileSync(n.logFile, 'utf8');
    t.match(log, /found manager [0-9a-f]{12}… found on the DHT in \d+ ms/, `${n.name}'s log: its manager was found on the DHT`);
    t.same(JSON.parse(readFileSync(join(n.stateDir, 'managers.json'), 'utf8')).length > 0, true, `${n.name} keeps the managers' addresses it was named`);
  }

  const ls = shoal(['--lab', 'node', 'ls', '--format', 'json'], 30_000);
  t.equal(ls.status, 0, ls.stderr);
  const rows = JSON.parse(ls.stdout) as { hostname: string; role: string; status: string }[];
  t.same(rows.map((r) => `${r.hostname}:${r.role}:${r.status}`).sort(), ['manager-1:manager:ready', 'manager-2:manager:ready', 'worker-1:worker:ready', 'worker-2:worker:ready'], 'node ls');
  const ps = shoal(['--lab', 'service', 'ps', 'demo', '--format', 'json'], 30_000);
  t.equal(ps.status, 0, ps.stderr);
  const tasks = JSON.parse(ps.stdout) as { node: string; state: string }[];
  t.equal(tasks.filter((x) => x.state === 'running' && /^worker-/.test(x.node)).length, 2, `the demo tasks run on the workers that joined by DHT: ${ps.stdout}`);

  const down = shoal(['lab', 'down'], 120_000);
  t.equal(down.status, 0, down.stderr);
  t.same(labNetnsList(labName(dir)), [], 'no lab namespace left (the DHT one included)');
  t.same(rootNet(), before, 'the root namespace is exactly as before');
});
