// shoal-shim (runtime/shim/shoal-shim.c) through its Node client: namespaces, overlay roots and
// container monitors for real; deadlines, close, helper death and bad requests.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, readdirSync, mkdtempSync, openSync, constants as fsc, readFileSync, readlinkSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeadlineError } from './errors.js';
import { Shim, ShimError, ensureShim } from './shim.js';
import { isMountpoint } from './sandbox.js';

const base = mkdtempSync(join(tmpdir(), `shoal-shim-${process.pid}-`));
const shim = new Shim(ensureShim());
const mounts: string[] = [];
const pids: number[] = [];
t.teardown(() => {
  shim.close();
  for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
  for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
  rmSync(base, { recursive: true, force: true });
});

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
async function waitFor(what: string, f: () => boolean, ms = 20000): Promise<void> {
  for (const end = Date.now() + ms; !f();) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('ns: new network, IPC and UTS namespaces on files, loopback up; the shim stays in the host namespaces', async (t) => {
  const files = ['net', 'ipc', 'uts'].map((n) => join(base, `pod-${n}`));
  mounts.push(...files);
  await shim.request('ns', files);
  for (const f of files) t.ok(isMountpoint(f), `${f} holds a namespace`);
  const lo = spawnSync('nsenter', [`--net=${files[0]}`, 'ip', '-o', 'link', 'show', 'lo'], { encoding: 'utf8' });
  t.match(lo.stdout, /<LOOPBACK,UP,LOWER_UP>/, 'loopback is up inside');
  const links = spawnSync('nsenter', [`--net=${files[0]}`, 'ip', '-o', 'link'], { encoding: 'utf8' }).stdout.trim().split('\n');
  t.equal(links.length, 1, 'and it is the only interface: a new network namespace');
  for (const n of ['net', 'ipc', 'uts']) t.equal(readlinkSync(`/proc/${shim.pid}/ns/${n}`), readlinkSync(`/proc/self/ns/${n}`), `the shim is back in the host ${n} namespace`);
  const only = join(base, 'only-ipc');
  mounts.push(only);
  await shim.request('ns', ['', only, '']);
  t.ok(isMountpoint(only), 'namespaces can be asked for one by one');
  const e = await shim.request('ns', [join(base, 'no/such/dir/net'), '', '']).catch((x: Error) => x);
  t.type(e, ShimError);
  t.match((e as Error).message, /cannot create .*no\/such\/dir\/net/, 'a bad path is a clear error');
});

t.test('overlay: bundle directories, the overlay root and the FIFOs in one request', async (t) => {
  const lower = join(base, 'lower');
  mkdirSync(lower);
  writeFileSync(join(lower, 'hello'), 'from the image\n');
  const dir = join(base, 'bundle');
  mounts.push(join(dir, 'rootfs'));
  await shim.request('overlay', [dir, `lowerdir=${lower},upperdir=${dir}/upper,workdir=${dir}/work`]);
  t.equal(statSync(dir).mode & 0o777, 0o711);
  t.equal(readFileSync(join(dir, 'rootfs', 'hello'), 'utf8'), 'from the image\n', 'the image is visible through the root');
  writeFileSync(join(dir, 'rootfs', 'new'), 'x');
  t.ok(existsSync(join(dir, 'upper', 'new')), 'writes land in the writable layer');
  for (const f of ['stdout.fifo', 'stderr.fifo', 'collect.fifo']) t.ok(statSync(join(dir, f)).isFIFO(), `${f} made`);
  const again = await shim.request('overlay', [dir, 'lowerdir=/nonexistent']).catch((x: Error) => x);
  t.match((again as Error).message, /mkdir .*bundle: File exists/, 'an existing bundle is refused, nothing overwritten');
  const bad = await shim.request('overlay', [join(base, 'bundle2'), `lowerdir=${join(base, 'nope')}`]).catch((x: Error) => x);
  t.match((bad as Error).message, /mount overlay on .*bundle2\/rootfs/, 'a failing mount names the root');
});

/** Kills the monitor working in `dir` and its process group (its "runc"). */
function killMonitorOf(dir: string): void {
  for (const p of readdirSync('/proc')) {
    try {
      if (readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'shoal-monitor' && readlinkSync(`/proc/${p}/cwd`) === dir) process.kill(-Number(p), 'SIGKILL');
    } catch { /* not ours, or gone */ }
  }
}

/** A bundle directory with the FIFOs a monitor needs (no overlay: the monitor does not care). */
function bundle(name: string): string {
  const dir = join(base, name);
  mkdirSync(dir);
  for (const f of ['stdout.fifo', 'stderr.fifo', 'collect.fifo']) spawnSync('mkfifo', [join(dir, f)]);
  return dir;
}

// The monitor runs `runc run -d` in the runtime; here a shell stands for it with the same
// contract: it starts a detached process, writes that process's pid to ./pid and exits 0.
const fakeRuncRun = (body: string) => ['sh', '-c', `(${body}) >/dev/null 2>&1 </dev/null & echo $! > pid`];

t.test('start: the monitor adopts the container, answers with its pid, records its exit and waits to be collected', async (t) => {
  const dir = bundle('c1');
  const out = openSync(join(dir, 'stdout.fifo'), fsc.O_RDONLY | fsc.O_NONBLOCK);
  t.teardown(() => closeSync(out));
  const [mpid, cpid, startNs] = (await shim.request('start', [dir, ...fakeRuncRun('exec sleep 30')])).split(' ').map(Number);
  pids.push(mpid!, cpid!);
  t.ok(mpid! > 0 && cpid! > 0 && Math.abs(startNs! / 1e6 - Date.now()) < 60_000, 'monitor pid, container pid, start time');
  t.equal(readFileSync(`/proc/${mpid}/comm`, 'utf8').trim(), 'shoal-monitor', 'the monitor is named');
  t.equal(readlinkSync(`/proc/${mpid}/cwd`), dir, 'and works in the bundle directory');
  t.equal(readFileSync(`/proc/${cpid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1], String(mpid), 'the container was re-parented to its monitor (subreaper)');
  t.notOk(existsSync(join(dir, 'exitcode')));
  process.kill(cpid!, 'SIGTERM');
  await waitFor('exitcode', () => existsSync(join(dir, 'exitcode')));
  t.equal(readFileSync(join(dir, 'exitcode'), 'utf8'), '143\n', 'killed by SIGTERM: 128 + 15');
  t.ok(alive(mpid!), 'the monitor waits until the exit is collected');
  closeSync(openSync(join(dir, 'collect.fifo'), fsc.O_WRONLY | fsc.O_NONBLOCK));
  await waitFor('the monitor to exit', () => !alive(mpid!) || /\) Z/.test(readFileSync(`/proc/${mpid}/stat`, 'utf8')));
  t.pass('collected: the monitor is gone');
});

t.test('start: a failing runc is reported and recorded; a missing bundle is a clear error', async (t) => {
  const dir = bundle('c2');
  const e = await shim.request('start', [dir, 'sh', '-c', 'echo "bad spec" >&2; exit 3']).catch((x: Error) => x);
  t.type(e, ShimError);
  t.match((e as Error).message, /runc exited with status 3/);
  t.equal(readFileSync(join(dir, 'exitcode'), 'utf8'), '3\n', 'the status is on disk for a restarted runtime');
  const none = await shim.request('start', [join(base, 'missing'), 'true']).catch((x: Error) => x);
  t.match((none as Error).message, /cannot enter .*missing/);
});

t.test('deadline, close, helper death and bad requests', async (t) => {
  const dir = bundle('slow');
  const dir2 = bundle('closing');
  const dir3 = bundle('dying');
  t.teardown(() => { for (const d of [dir, dir2, dir3]) killMonitorOf(d); });
  // A "runc" that never returns: the request runs into its deadline.
  const slow = await shim.request('start', [dir, 'sleep', '30'], 300).catch((x: Error) => x);
  t.type(slow, DeadlineError);
  t.match((slow as Error).message, /start: shoal-shim did not answer within 300 ms/);
  const pending = shim.request('start', [dir2, 'sleep', '30']);
  shim.close();
  const closed = await pending.catch((x: Error) => x);
  t.match((closed as Error).message, /start: shoal-shim was closed/, 'close() fails what is pending');
  t.equal(await shim.request('umount', [join(base, 'not-mounted')]), '', 'the next request starts a new helper');
  const cut = shim.request('start', [dir3, 'sleep', '30']);
  await new Promise((r) => setTimeout(r, 100));
  process.kill(shim.pid!, 'SIGKILL');
  t.match(((await cut.catch((x: Error) => x)) as Error).message, /shoal-shim exited \(SIGKILL\).*retry/, 'a helper that dies fails what is pending');
  t.match(((await shim.request('bogus', []).catch((x: Error) => x)) as Error).message, /unknown operation bogus/);
  t.match(((await shim.request('ns', ['a\0b', '', '']).catch((x: Error) => x)) as Error).message, /NUL byte/);
  t.match(((await shim.request('ns', ['only-one']).catch((x: Error) => x)) as Error).message, /ns needs 3 arguments/);
});

t.test('start-io: stdin through the monitor\'s FIFO, and "c" on the control FIFO closes it for good', async (t) => {
  const dir = bundle('io1');
  for (const f of ['stdin.fifo', 'ctl.fifo']) spawnSync('mkfifo', [join(dir, f)]);
  const out = openSync(join(dir, 'stdout.fifo'), fsc.O_RDONLY | fsc.O_NONBLOCK);
  t.teardown(() => closeSync(out));
  // The stand-in for runc passes its own stdin (the FIFO) on to the "container", here cat (through
  // fd 3: sh gives a background job /dev/null as stdin).
  const [mpid, cpid] = (await shim.request('start-io', [dir, 'i', 'sh', '-c', 'exec 3<&0; (exec cat <&3 3<&-) 2>/dev/null & echo $! > pid'])).split(' ').map(Number);
  pids.push(mpid!, cpid!);
  const w = openSync(join(dir, 'stdin.fifo'), fsc.O_WRONLY | fsc.O_NONBLOCK);
  writeFileSync(w, 'typed\n');
  closeSync(w);
  const buf = Buffer.alloc(100);
  let got = '';
  await waitFor('cat to echo', () => { try { const n = readSync(out, buf); got += buf.subarray(0, n).toString(); } catch { /* EAGAIN */ } return got === 'typed\n'; });
  t.equal(got, 'typed\n', 'what was written to stdin.fifo reached the process');
  await new Promise((r) => setTimeout(r, 200));
  t.ok(alive(cpid!), 'a writer that leaves does not end stdin: the monitor holds it');
  writeFileSync(join(dir, 'ctl.fifo'), 'c\n');
  await waitFor('exitcode', () => existsSync(join(dir, 'exitcode')));
  t.equal(readFileSync(join(dir, 'exitcode'), 'utf8'), '0\n', 'the process read end-of-file and exited');
  t.notOk(existsSync(join(dir, 'stdin.fifo')), 'stdin.fifo is gone, so nobody writes to a closed stdin');
  closeSync(openSync(join(dir, 'collect.fifo'), fsc.O_WRONLY | fsc.O_NONBLOCK));
});

t.test('start-io and overlay refuse bad arguments', async (t) => {
  const dir = bundle('io2');
  t.match(((await shim.request('start-io', [dir, 'x', 'true']).catch((x: Error) => x)) as Error).message, /start-io mode x: use i \(stdin\), t \(terminal\) or it/);
  t.match(((await shim.request('start-io', [dir, 'i']).catch((x: Error) => x)) as Error).message, /start-io needs a directory, a mode and a command/);
  t.match(((await shim.request('overlay', [join(base, 'b3'), 'lowerdir=/x', '../escape.fifo']).catch((x: Error) => x)) as Error).message, /FIFO name \.\.\/escape\.fifo must be a plain file name/);
  // A monitor without its stdin/control FIFOs says which it missed.
  const none = await shim.request('start-io', [dir, 'it', 'true']).catch((x: Error) => x);
  t.match((none as Error).message, /cannot open stdin\.fifo\/ctl\.fifo in .*io2/);
});
