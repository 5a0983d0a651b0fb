// The lab end to end with real shoald daemons: `shoal lab up --managers 3 --workers 2`, then
// `shoal --lab node ls --format json`; SIGKILL the leader's shoald (a new leader, node ls still
// works, the old leader rejoins when restarted); kill -9 a worker (the managers mark it down; the
// time is printed, not asserted); `shoal lab down` leaves no namespace, process, mount or file.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { labName } from '../lab/names.js';
import { labNetnsList, pidsIn, procState } from '../lab/netns.js';
import { sleep } from '../lab/procs.js';
import { readState } from '../lab/state.js';
import { labTarget } from '../lab/ops.js';
import { CLI_MAIN, labDirFor, rootNet, type Ran } from './lab-helpers.js';

interface NodeRow {
  hostname: string;
  role: string;
  status: string;
  availability: string;
  managerStatus: { leader: boolean; reachability: string; voter: boolean } | null;
}

t.test('3 managers + 2 workers: up, node ls, leader killed and back, worker killed and back, down', async (t) => {
  const dir = labDirFor(t, 'cluster');
  const env = { ...process.env, SHOAL_LAB_DIR: dir };
  const shoal = (args: string[], timeoutMs = 170_000): Ran => {
    const r = spawnSync(process.execPath, [CLI_MAIN, ...args], { encoding: 'utf8', env, timeout: timeoutMs });
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  };
  const nodeLs = (): NodeRow[] | undefined => {
    const r = shoal(['--lab', 'node', 'ls', '--format', 'json'], 20_000);
    return r.status === 0 ? (JSON.parse(r.stdout) as NodeRow[]) : undefined;
  };
  /** Polls `shoal --lab node ls` until `ok` holds; a generous deadline, never a timing assertion. */
  const until = async (what: string, ok: (rows: NodeRow[]) => boolean, ms = 60_000): Promise<NodeRow[]> => {
    const end = Date.now() + ms;
    let last: NodeRow[] | undefined;
    for (;;) {
      last = nodeLs();
      if (last && ok(last)) return last;
      if (Date.now() > end) throw new Error(`${what}: not reached within ${ms / 1000} s; last node ls: ${JSON.stringify(last)}`);
      await sleep(500); // each poll is a CLI process (a few hundred ms of CPU): no busy loop on a shared machine
    }
  };
  const row = (rows: NodeRow[], host: string) => rows.find((r) => r.hostname === host);
  const before = rootNet();

  const t0 = Date.now();
  const up = shoal(['lab', 'up', '--managers', '3', '--workers', '2']);
  const upMs = Date.now() - t0;
  t.equal(up.status, 0, `shoal lab up exits 0 (stderr: ${up.stderr.trim().slice(-2000)})`);
  t.match(up.stdout, /all 5 nodes ready/, 'it reports every node ready');
  t.match(up.stdout, /manager-1\s+manager\s+ready/, 'and prints the cluster');
  console.log(`lab-cluster: \`shoal lab up --managers 3 --workers 2\` took ${(upMs / 1000).toFixed(1)} s`);

  const again = shoal(['lab', 'up', '--managers', '3', '--workers', '2']);
  t.equal(again.status, 1, 'lab up over a running lab is refused');
  t.match(again.stderr, /a lab already exists in .*remove it first with `shoal lab down/, 'saying a lab exists and how to remove it');
  t.notMatch(again.stderr, /half-built/, 'not calling a healthy lab half-built');

  const rows = nodeLs();
  t.ok(rows, '`shoal --lab node ls --format json` works');
  t.equal(rows!.length, 5, 'five nodes');
  t.same(rows!.map((r) => `${r.hostname}:${r.role}:${r.status}:${r.availability}`).sort(), [
    'manager-1:manager:ready:active', 'manager-2:manager:ready:active', 'manager-3:manager:ready:active',
    'worker-1:worker:ready:active', 'worker-2:worker:ready:active',
  ], 'all ready, with the right roles, active');
  const leaders = rows!.filter((r) => r.managerStatus?.leader);
  t.equal(leaders.length, 1, 'exactly one leader');
  const oldLeader = leaders[0]!.hostname;

  // On a host: the lab's `shoal` is on PATH and talks to that host's node.
  const ex = shoal(['lab', 'exec', 'manager-2', '--', 'shoal', 'node', 'ls', '--format', 'json']);
  t.equal(ex.status, 0, `lab exec manager-2 -- shoal node ls: ${ex.stderr}`);
  t.equal((JSON.parse(ex.stdout || '[]') as NodeRow[]).length, 5, 'run on manager-2, it lists the five nodes');
  const ping = shoal(['lab', 'exec', 'worker-2', '--', 'busybox', 'ping', '-c', '1', '-W', '5', '10.99.0.11']);
  t.equal(ping.status, 0, 'worker-2 pings manager-1 across the lab bridge');
  const st = JSON.parse(shoal(['lab', 'status', '--format', 'json']).stdout) as { phase: string; nodes: { running: boolean }[] };
  t.equal(st.phase, 'ready', 'lab status: ready');
  t.equal(st.nodes.filter((n) => n.running).length, 5, 'lab status: five daemons running');

  const logs = shoal(['lab', 'logs', 'manager-1', '--lines', '5']);
  t.equal(logs.status, 0, 'lab logs manager-1');
  const logLines = logs.stdout.trimEnd().split('\n');
  t.ok(logLines.length >= 1 && logLines.length <= 5 && logLines[0]!.length > 0, `at most 5 non-empty log lines (${logLines.length})`);

  // SIGKILL the leader's shoald.
  const stop = shoal(['lab', 'stop', oldLeader, '--signal', 'KILL']);
  t.equal(stop.status, 0, `lab stop ${oldLeader} --signal KILL: ${stop.stderr}`);
  const st2 = JSON.parse(shoal(['lab', 'status', '--format', 'json']).stdout) as { nodes: { name: string; running: boolean }[] };
  t.equal(st2.nodes.find((n) => n.name === oldLeader)?.running, false, `lab status shows ${oldLeader}'s shoald stopped`);
  t.not(labTarget(dir).node, oldLeader, '`--lab` now targets a running manager');
  const after = await until('a new leader', (rs) => rs.some((r) => r.managerStatus?.leader && r.hostname !== oldLeader));
  const newLeader = after.find((r) => r.managerStatus?.leader)!.hostname;
  t.not(newLeader, oldLeader, `new leader ${newLeader} after killing ${oldLeader}`);
  t.equal(after.length, 5, 'node ls works without the old leader and still lists five nodes');
  await until(`${oldLeader} shown down`, (rs) => row(rs, oldLeader)?.status === 'down');
  t.pass(`${oldLeader} is shown down`);

  const start = shoal(['lab', 'start', oldLeader]);
  t.equal(start.status, 0, `lab start ${oldLeader}: ${start.stderr}`);
  const back = await until(`${oldLeader} back`, (rs) => row(rs, oldLeader)?.status === 'ready' && row(rs, oldLeader)?.managerStatus?.reachability === 'reachable');
  t.equal(row(back, oldLeader)?.role, 'manager', `${oldLeader} rejoined as a reachable manager with the same identity`);
  t.equal(back.length, 5, 'still five nodes (no duplicate identity)');

  // kill -9 a worker; time until the managers show it down.
  const pid = readState(dir)!.nodes.find((n) => n.name === 'worker-1')!.proc!.pid;
  const tKill = Date.now();
  process.kill(pid, 'SIGKILL');
  await until('worker-1 shown down', (rs) => row(rs, 'worker-1')?.status === 'down');
  const downMs = Date.now() - tKill;
  t.pass('worker-1 is shown down after kill -9');
  console.log(`lab-cluster: worker-1 killed with SIGKILL; shown down by \`shoal --lab node ls\` after ${(downMs / 1000).toFixed(2)} s (the node-down grace included; polled: a CLI run every ~0.5 s)`);
  t.equal(shoal(['lab', 'start', 'worker-1']).status, 0, 'lab start worker-1');
  await until('worker-1 back', (rs) => row(rs, 'worker-1')?.status === 'ready');
  t.pass('worker-1 is ready again after its restart');

  // Two `lab start` at once both keep their daemon's pid in lab.json (the lab's lock), and a
  // start of a daemon that runs is refused even when lab.json lost it.
  for (const n of ['worker-1', 'worker-2']) t.equal(shoal(['lab', 'stop', n]).status, 0, `lab stop ${n}`);
  const both = await Promise.all(['worker-1', 'worker-2'].map((n) => new Promise<number | null>((res) => {
    const p = spawn(process.execPath, [CLI_MAIN, 'lab', 'start', n], { env, stdio: 'ignore' });
    p.on('exit', (code) => res(code));
  })));
  t.same(both, [0, 0], 'both parallel starts succeed');
  const st3 = JSON.parse(shoal(['lab', 'status', '--format', 'json']).stdout) as { nodes: { name: string; running: boolean }[] };
  t.ok(['worker-1', 'worker-2'].every((n) => st3.nodes.find((x) => x.name === n)?.running), 'lab status shows both running: no update was lost');
  const file = `${dir}/lab.json`;
  const saved = JSON.parse(readFileSync(file, 'utf8'));
  delete saved.nodes.find((n: { name: string }) => n.name === 'worker-2').proc;
  writeFileSync(file, JSON.stringify(saved));
  const dup = shoal(['lab', 'start', 'worker-2']);
  t.equal(dup.status, 1, 'starting a running daemon the state file forgot is refused');
  t.match(dup.stderr, /worker-2's shoald is already running \(pid \d+\)/, 'naming its pid');
  await until('workers ready', (rs) => row(rs, 'worker-1')?.status === 'ready' && row(rs, 'worker-2')?.status === 'ready');

  // lab down leaves nothing behind: every process in a lab namespace (worker-2's shoald is no
  // longer in lab.json, which this test edited above: lab down finds it by its namespace).
  const pids = readState(dir)!.nodes.flatMap((n) => pidsIn(n.netns));
  t.ok(pids.length >= 5, `${pids.length} processes run in the lab's namespaces before lab down`);
  const name = labName(dir);
  const down = shoal(['lab', 'down']);
  t.equal(down.status, 0, `lab down exits 0: ${down.stderr}`);
  t.same(labNetnsList(name), [], 'no lab namespace');
  t.same(pids.filter((p) => procState(p) !== undefined), [], 'no lab process');
  t.notOk(readFileSync('/proc/self/mountinfo', 'utf8').includes(name), 'no lab mount (not even /run/netns entries)');
  t.notOk(existsSync(`/run/netns/${name}`), 'no netns file');
  t.notOk(existsSync(dir), 'no lab directory');
  t.same(rootNet(), before, 'the root namespace is exactly as before');

  const gone = shoal(['--lab', 'node', 'ls']);
  t.equal(gone.status, 1, '`shoal --lab` without a lab fails');
  t.match(gone.stderr, /no lab in .*lab up/, 'saying there is no lab and how to start one');
});
