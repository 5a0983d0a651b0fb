// The Vagrant lab's provisioning (scripts/provision.sh), run where it can run here: inside
// network-namespace hosts on a bridge of the test's own (this machine cannot boot VMs). A first
// manager creates the cluster and leaves the tokens in a shared directory; a second manager and a
// worker join with them; the cluster they build is checked; a second run changes nothing; the
// tokens never appear on a command line. The Vagrantfile itself is checked by `vagrant validate`.
import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { protoDir } from '../proto/load.js';
import { removeCgroupTree } from '../lab/containers.js';
import { attachNetns, deleteNetns, makeBridgeNetns } from '../lab/netns.js';
import { removeTestDir } from './teardown.js';

// The checkout (dist/ in CI, .build/NAME/ while developing): where proto/ and package.json are.
const repo = dirname(protoDir());
const script = join(repo, 'scripts', 'provision.sh');
const dir = mkdtempSync(join(tmpdir(), `shoal-provision-${process.pid}-`));
const tag = `pv${process.pid}`;
const br = `${tag}-br`;
const hosts = [
  { name: 'manager-1', role: 'first-manager', ip: '10.97.0.11' },
  { name: 'manager-2', role: 'manager', ip: '10.97.0.12' },
  { name: 'worker-1', role: 'worker', ip: '10.97.0.13' },
];
const cgroup = `/shoal-${tag}`;
const ns = (h: string) => `${tag}-${h}`;
// Several nodes and real runtimes on a loaded machine: well above tap's default per-file limit.
t.setTimeout(20 * 60_000);

t.teardown(async () => {
  for (const h of hosts) {
    try {
      const pid = Number(readFileSync(join(dir, h.name, 'shoald.pid'), 'utf8'));
      process.kill(pid, 'SIGKILL');
    } catch {
      /* not started */
    }
  }
  await new Promise((r) => setTimeout(r, 500));
  await removeTestDir(dir);
  for (const h of hosts) deleteNetns(ns(h.name));
  deleteNetns(br);
  removeCgroupTree(cgroup);
});

function provision(h: (typeof hosts)[number], extra: string[] = []): Promise<{ code: number; out: string }> {
  const args = [script, h.role, '--advertise', h.ip, '--hostname', h.name, '--state-dir', join(dir, h.name), '--token-dir', join(dir, 'tokens'), '--supervisor', 'background', '--no-setup', '--cgroup-parent', `${cgroup}/${h.name}`, '--wait-seconds', '120', ...extra];
  if (h.role !== 'first-manager') args.push('--join', hosts[0]!.ip);
  return new Promise((resolve) => {
    execFile('nsenter', [`--net=/run/netns/${ns(h.name)}`, '--', 'bash', ...args], { timeout: 600_000, encoding: 'utf8', env: { ...process.env, SHOAL_NO_PUBLIC_DHT: '1' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

t.test('provision.sh builds a cluster of network-namespace hosts', async (t) => {
  makeBridgeNetns(br);
  for (const [i, h] of hosts.entries()) attachNetns({ bridgeNs: br, ns: ns(h.name), port: `v${i}-${process.pid % 10000}`.slice(0, 15), address: h.ip, bits: 24 });
  const first = await provision(hosts[0]!);
  t.equal(first.code, 0, `first manager provisioned:\n${first.out}`);
  t.match(first.out, /join tokens written to/);
  for (const k of ['worker', 'manager']) {
    const f = join(dir, 'tokens', `${k}.token`);
    t.ok(existsSync(f), `${k} token file`);
    t.equal(statSync(f).mode & 0o777, 0o600, `${k} token readable by root only`);
  }
  const rest = await Promise.all(hosts.slice(1).map((h) => provision(h, ['--print-nodes'])));
  rest.forEach((r, i) => t.equal(r.code, 0, `${hosts[i + 1]!.name} provisioned:\n${r.out}`));
  t.match(rest[0]!.out, /HOSTNAME\s+ROLE\s+STATUS/, 'a manager prints the node table at the end');
  t.match(rest[1]!.out, /node ls runs on a manager/, 'a worker says where to look');
  const cli = (args: string[]) => spawnSync(process.execPath, [join(repo, 'dist', 'cli', 'main.js'), '--state-dir', join(dir, 'manager-1'), ...args], { encoding: 'utf8' });
  let rows: { hostname: string; role: string; status: string; managerStatus: { voter: boolean } | null }[] = [];
  for (let i = 0; i < 300; i++) {
    rows = JSON.parse(cli(['node', 'ls', '--format', 'json']).stdout || '[]');
    if (rows.length === 3 && rows.every((r) => r.status === 'ready') && rows.filter((r) => r.managerStatus?.voter).length === 2) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  t.same(rows.map((r) => `${r.hostname}:${r.role}:${r.status}`).sort(), ['manager-1:manager:ready', 'manager-2:manager:ready', 'worker-1:worker:ready'], 'three nodes ready with their roles');
  t.equal(rows.filter((r) => r.managerStatus?.voter).length, 2, 'two voting managers');
  // The tokens never reached a command line: not in any shoald's nor in any process's argv now.
  const tokens = ['worker', 'manager'].map((k) => readFileSync(join(dir, 'tokens', `${k}.token`), 'utf8').trim());
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (tokens.some((tk) => cmd.includes(tk))) t.fail(`process ${p} has a join token on its command line`);
  }
  const again = await provision(hosts[2]!);
  t.equal(again.code, 0, 'a second run on a member succeeds');
  t.match(again.out, /shoald already runs .*\n.*already a member of a cluster; nothing to join/s, 'and changes nothing');
});

t.test('the Vagrantfile passes `vagrant validate` (Debian\'s vagrant, installed by scripts/setup.sh)', async (t) => {
  const r = spawnSync('vagrant', ['validate', '--ignore-provider'], { cwd: repo, encoding: 'utf8', env: { ...process.env, VAGRANT_CHECKPOINT_DISABLE: '1', VAGRANT_HOME: join(dir, 'vagrant-home') }, timeout: 120_000 });
  t.equal(r.status, 0, `vagrant validate: ${r.stdout}${r.stderr}`);
  t.match(r.stdout, /Vagrantfile validated successfully/);
});
