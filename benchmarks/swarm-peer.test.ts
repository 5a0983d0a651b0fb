// The Swarm peer runs for real (Debian's dockerd and containerd in network namespaces of the
// test's own, 3 replicas of the benchmark image from a registry of its own) and leaves nothing
// behind: no namespace, process, mount, cgroup, file, interface, address or firewall rule in the
// root namespace; also when its process is stopped by SIGTERM, and after a SIGKILL (the next run
// sweeps what the dead one left).
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mountsUnder } from '../lab/down.js';
import { listNetns, pidInNetns } from '../lab/netns.js';
import { SwarmPeer, BENCH_CMD } from './swarm-peer.js';
import { runCgroup, runDir, runPids, shimSockets, staleRuns, sweepRun } from './swarm-host.js';

const here = dirname(fileURLToPath(import.meta.url));

/** What the root namespace and the machine-wide places dockerd likes look like. */
function rootSnapshot(): Record<string, string> {
  const out = (cmd: string[]) => {
    const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' });
    return r.error ? `(${cmd[0]} unavailable)` : r.stdout;
  };
  return {
    links: out(['ip', '-o', 'link', 'show']).split('\n').map((l) => l.split(':')[1]?.trim() ?? '').filter(Boolean).sort().join(' '),
    addresses: out(['ip', '-o', 'addr', 'show']).split('\n').map((l) => l.split(/\s+/).slice(1, 4).join(' ')).sort().join('\n'),
    routes: out(['ip', 'route', 'show', 'table', 'all']),
    iptables: out(['iptables-save']).replace(/^#.*$/gm, ''),
    ip6tables: out(['ip6tables-save']).replace(/^#.*$/gm, ''),
    iptablesLegacy: out(['iptables-legacy-save']).replace(/^#.*$/gm, ''),
    nft: out(['nft', 'list', 'ruleset']),
    etcDocker: existsSync('/etc/docker') ? readdirSync('/etc/docker').sort().join(' ') : '(none)',
    optContainerd: String(existsSync('/opt/containerd')),
    varLibDocker: String(existsSync('/var/lib/docker')),
  };
}

/** Everything of run `run` still on the machine (`sockets`: its shim sockets, noted while it ran). */
function leftovers(run: string, sockets: string[] = []): string[] {
  const left: string[] = [];
  for (const f of sockets) if (existsSync(f)) left.push(`shim socket ${f}`);
  for (const ns of listNetns()) if (ns.startsWith(`${run}-`)) left.push(`netns ${ns}`);
  for (const p of runPids(run)) left.push(`process ${p}`);
  for (const m of mountsUnder(runDir(run))) left.push(`mount ${m}`);
  for (const c of readdirSync('/sys/fs/cgroup')) if (existsSync(join('/sys/fs/cgroup', c, runCgroup(run)))) left.push(`cgroup ${c}${runCgroup(run)}`);
  if (existsSync(runDir(run))) left.push(`dir ${runDir(run)}`);
  return left;
}

const runDockerBefore = existsSync('/run/docker');

t.test('a one-node swarm runs 3 replicas in its own namespaces and is removed completely', async (t) => {
  const before = rootSnapshot();
  const peer = await SwarmPeer.start({ workers: 0 });
  let closed = false;
  t.teardown(async () => {
    if (!closed) await peer.close();
  });
  const m = peer.manager;
  t.ok(pidInNetns(m.dockerd.pid, m.netns), 'dockerd runs in the run\'s namespace');
  t.ok(pidInNetns(m.containerd.pid, m.netns), 'containerd too');
  const r = await peer.timeReplicas('t3', 3);
  t.ok(r.seconds > 0 && r.observedSeconds >= r.seconds - 0.5, `timed: ${r.seconds} s recorded, ${r.observedSeconds} s seen`);
  const tasks = SwarmPeer.running(await peer.tasks('t3'));
  t.equal(tasks.length, 3, 'three tasks running');
  // The containers are real processes running the benchmark command, in the run's cgroups.
  const sleeps = () => runPids(peer.run).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ') === BENCH_CMD.join(' ');
    } catch {
      return false;
    }
  });
  t.equal(sleeps().length, 3, 'three container processes');
  const sockets = shimSockets(peer.run);
  t.equal(sockets.filter((f) => existsSync(f)).length, 3, 'three shims listening in /run/containerd/s');
  t.same(rootSnapshot(), before, 'while it runs, the root namespace and /etc, /opt, /var/lib are untouched (no docker0, no rules)');

  await peer.removeService('t3');
  await t.rejects(peer.tasks('t3'), /404: service t3 not found/, 'the service is gone');
  t.same(sleeps(), [], 'its containers are gone');
  const left = await peer.close();
  closed = true;
  t.same(left, [], 'close reports nothing left');
  t.same(leftovers(peer.run, sockets), [], 'no namespace, process, shim socket, mount, cgroup or directory of the run');
  t.same(rootSnapshot(), before, 'root namespace, firewall and machine-wide directories as before');
  if (!runDockerBefore) t.notOk(existsSync('/run/docker') && !otherDockerd(), '/run/docker removed');
});

function otherDockerd(): boolean {
  return readdirSync('/proc').some((p) => {
    try {
      return /^\d+$/.test(p) && readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'dockerd';
    } catch {
      return false;
    }
  });
}

/** Runs swarm-peer.js alone until its first round is done, then `sig`; returns its run's name. */
async function runAndSignal(t: Test, sig: NodeJS.Signals): Promise<{ run: string; sockets: string[]; code: number | null; signal: NodeJS.Signals | null; out: string }> {
  const child = spawn(process.execPath, [join(here, 'swarm-peer.js'), '--replicas', '3', '--rounds', '50'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const end = Date.now() + 240_000;
  while (!/round 1: 3 replicas running/.test(out)) {
    if (child.exitCode !== null) throw new Error(`swarm-peer exited early:\n${out}`);
    if (Date.now() > end) throw new Error(`swarm-peer did not finish a round within 240 s:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const run = /\(run (shoal-swarm-\d+-\d+)\)/.exec(out)?.[1];
  if (!run) throw new Error(`no run name in the output:\n${out}`);
  t.ok(runPids(run).length > 0, 'the run has processes before the signal');
  const sockets = shimSockets(run);
  t.ok(sockets.length >= 3, 'its shims have sockets');
  child.kill(sig);
  const r = await exited;
  return { run, sockets, ...r, out };
}

t.test('SIGTERM mid-run: the process removes everything and exits 143', async (t) => {
  const before = rootSnapshot();
  const { run, sockets, code, out } = await runAndSignal(t, 'SIGTERM');
  t.equal(code, 143, 'exit code 143');
  if (code !== 143) t.comment(out);
  t.same(leftovers(run, sockets), [], 'nothing of the run is left');
  t.same(rootSnapshot(), before, 'root namespace as before');
});

t.test('SIGKILL mid-run: the next run finds the dead run and sweeps it', async (t) => {
  const { run, sockets, signal } = await runAndSignal(t, 'SIGKILL');
  t.equal(signal, 'SIGKILL', 'killed');
  t.not(leftovers(run).length, 0, 'a killed run leaves its daemons and namespaces');
  t.ok(staleRuns().includes(run), 'it is found as a dead run');
  t.same(await sweepRun(run), [], 'the sweep removes it');
  t.same(leftovers(run, sockets), [], 'nothing of the run is left');
});
