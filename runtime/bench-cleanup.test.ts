// benchmarks/container-start interrupted half-way (SIGINT, as ^C would, and SIGTERM) leaves
// nothing behind: no mounts, no runc containers, no monitors, no directories, no network
// namespace, no containerd.
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { cleanupRoot } from './testing/cleanup.js';

const bench = fileURLToPath(new URL('../benchmarks/container-start.js', import.meta.url));
const mountsUnder = (dir: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(dir + '/'));
const monitorsUnder = (dir: string) => readdirSync('/proc').filter((p) => {
  try { return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'shoal-monitor' && readlinkSync(`/proc/${p}/cwd`).startsWith(dir + '/'); } catch { return false; }
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  t.test(`${sig} half-way through the run`, async (t) => {
    const child = spawn(process.execPath, [bench, '--count', '50'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const base = `${tmpdir()}/shoal-bench-start-${child.pid}-`;
    let dir = '';
    t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); if (dir) cleanupRoot(dir); });
    // Interrupt once both sides have something up: the raw side's root and a pod's root mounted.
    for (const end = Date.now() + 60_000; ;) {
      const found = readdirSync(tmpdir()).find((d) => `${tmpdir()}/${d}`.startsWith(base));
      if (found) dir = `${tmpdir()}/${found}`;
      const m = dir ? mountsUnder(dir) : [];
      if (m.some((x) => x.endsWith('/raw-rootfs')) && m.some((x) => /\/containers\/[0-9a-f]{64}\/rootfs$/.test(x))) break;
      if (child.exitCode !== null) throw new Error(`the benchmark ended before it could be interrupted: ${err}`);
      if (Date.now() > end) throw new Error('the benchmark did not get going within 60 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill(sig);
    t.equal(await exited, sig === 'SIGINT' ? 130 : 143, 'exits with the signal\'s status');
    t.match(err, new RegExp(`${sig}: cleaning up`));
    t.same(mountsUnder(dir), [], 'no mount left');
    t.same(monitorsUnder(dir), [], 'no monitor left');
    t.notOk(existsSync(dir), 'its directory is gone (so are runc\'s container states, kept inside it)');
    t.notOk(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).includes(`shoal-bench-${child.pid}`), 'its network namespace is gone');
    t.same(readdirSync('/proc').filter((p) => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir + '/'); } catch { return false; } }), [], 'no process of its own (containerd, shims, registry) is left');
  });
}
