// Containers created with stdin and/or a terminal, and Attach to them, over SPDY (our own client,
// runtime/testing/spdy-client.ts) and WebSocket (runtime/testing/ws-exec-client.ts), on real runc
// containers: stdin through the monitor's FIFO, several attaches in turn, stdin_once, a terminal
// with resizes, attach after a runtime restart, the terminal's hang-up, the log file, refusals.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupRoot } from './testing/cleanup.js';
import { startRuntime, type RuntimeProc } from './testing/runtime-proc.js';
import { busyboxImage, ociArchive } from './testing/test-image.js';
import { spdyExec } from './testing/spdy-client.js';
import { execStream } from './testing/ws-exec-client.js';
import { parseLine } from './logs.js';
import { hugetlbSupported } from './cgroups.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const base = mkdtempSync(join(tmpdir(), `shoal-attach-${process.pid}-`));
const root = join(base, 'root');
const socket = join(base, 'cri.sock');
const logDir = join(base, 'logs');
let rt: RuntimeProc | undefined;
t.teardown(async () => {
  if (rt) await rt.kill('SIGKILL');
  cleanupRoot(root);
  rmSync(base, { recursive: true, force: true });
});

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 20000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const logText = (name: string) => readFileSync(join(logDir, `${name}.log`), 'utf8').split('\n').filter(Boolean).map((l) => parseLine(l)!);

t.test('attach to containers with stdin and a terminal', async (t) => {
  const archive = join(base, 'busybox.tar');
  writeFileSync(archive, ociArchive(busyboxImage(), 'attach.test/busybox:1'));
  rt = await startRuntime(socket, root);
  await rt.client.img.PullImage({ image: { image: `oci-archive:${archive}` } });
  const config = { metadata: { name: 'att', uid: 'att', namespace: 'attach' }, log_directory: logDir };
  const pod = (await rt.client.rt.RunPodSandbox({ config })).pod_sandbox_id as string;
  const create = async (name: string, command: string[], extra: any) => {
    const { container_id } = await rt!.client.rt.CreateContainer({ pod_sandbox_id: pod, sandbox_config: config, config: { metadata: { name }, image: { image: 'attach.test/busybox:1' }, command, log_path: `${name}.log`, ...extra } });
    await rt!.client.rt.StartContainer({ container_id });
    return container_id as string;
  };
  const attach = async (id: string, o: any) => (await rt!.client.rt.Attach({ container_id: id, ...o })).url as string;
  const status = async (id: string) => (await rt!.client.rt.ContainerStatus({ container_id: id })).status;

  t.test('stdin without a terminal: attaches in turn over SPDY and WebSocket, all of it in the log', async (t) => {
    const id = await create('lines', ['sh', '-c', 'while read l; do echo got:$l; done; echo eof'], { stdin: true });
    // The client closes stdin once its line came back: without stdin_once that ends the attach.
    const r1 = await spdyExec(await attach(id, { stdin: true, stdout: true }), { stdin: true, input: 'a\n', react: (out, ctl) => { if (/got:a\n/.test(out)) ctl.closeStdin(); } });
    t.equal(r1.stdout, 'got:a\n', 'SPDY: stdin reached the container, its output came back');
    t.same(r1.status, { metadata: {}, status: 'Success' }, 'the attach ended cleanly');
    t.equal((await status(id)).state, 1, 'the container still runs: its stdin stays open');
    const r2 = await execStream(await attach(id, { stdin: true, stdout: true }), { stdin: 'b\n', react: (ch, send) => { if (/got:b\n/.test(ch[1]?.toString() ?? '')) send(255, Buffer.from([0])); } });
    t.equal(r2.stdout, 'got:b\n', 'WebSocket v5: the second attach');
    t.equal((await status(id)).state, 1);
    await waitFor('the log', async () => logText('lines').filter((l) => l.stream === 'stdout').map((l) => l.content).join(',') === 'got:a,got:b');
    t.pass('both lines are in the CRI log as stdout');
  });

  t.test('stdin_once: the first attach\'s end closes stdin, output streams until the exit', async (t) => {
    const id = await create('once', ['sh', '-c', 'cat; echo eof-reached; exit 3'], { stdin: true, stdin_once: true });
    const r = await spdyExec(await attach(id, { stdin: true, stdout: true }), { stdin: true, input: 'only-once\n', closeStdin: true });
    t.equal(r.stdout, 'only-once\neof-reached\n', 'the process read end-of-file and its last words arrived');
    t.same(r.status, { metadata: {}, status: 'Success' });
    const st = await waitFor('the exit', async () => { const s = await status(id); return s.state === 2 && s; });
    t.equal(st.exit_code, 3);
  });

  t.test('a terminal: sizes, one output stream, attach again after a runtime restart, the exit code', async (t) => {
    const id = await create('term', ['sh'], { stdin: true, tty: true });
    const r1 = await spdyExec(await attach(id, { stdin: true, stdout: true, tty: true }), {
      stdin: true, tty: true, sizes: [[100, 40]], input: 'stty size; tty; echo mark-1 >&2\n',
      // Leaves without closing stdin (as a killed kubectl would): the container keeps running.
      react: (out, ctl) => { if (/\nmark-1\r\n/.test(out)) ctl.disconnect(); },
    });
    const out1 = r1.stdout.replace(/\r/g, '');
    t.match(out1, /\n40 100\n\/dev\/pts\/0\nmark-1\n/, 'the size set through the monitor, a terminal, stderr on the same stream');
    t.equal((await status(id)).state, 1, 'still running after the client left');
    await rt!.kill('SIGKILL');
    rt = await startRuntime(socket, root);
    let resized = false;
    const r2 = await execStream(await attach(id, { stdin: true, stdout: true, tty: true }), {
      send: [[4, JSON.stringify({ Width: 132, Height: 50 })]], stdin: 'stty size; echo mark-2\n',
      react: (ch, send) => { if (!resized && /\nmark-2\r\n/.test(ch[1]?.toString() ?? '')) { resized = true; send(0, 'exit 7\n'); } },
    });
    t.match(r2.stdout.replace(/\r/g, ''), /\n50 132\nmark-2\n/, 'a new runtime attaches through the same monitor; resize over WebSocket');
    t.same(r2.status, { metadata: {}, status: 'Success' }, 'the attach ends when the container does');
    const st = await waitFor('the exit', async () => { const s = await status(id); return s.state === 2 && s; });
    t.equal(st.exit_code, 7, 'the exit code of the shell');
    const lines = logText('term');
    t.ok(lines.every((l) => l.stream === 'stdout'), 'a terminal\'s output is logged as stdout');
    t.ok(lines.some((l) => /^mark-1\r?$/.test(l.content)) && lines.some((l) => /^mark-2\r?$/.test(l.content)), 'output of both attaches is in the log');
  });

  t.test('stdin_once with a terminal: the first attach\'s end hangs the terminal up', async (t) => {
    const id = await create('hup', ['sh'], { stdin: true, tty: true, stdin_once: true });
    const r = await spdyExec(await attach(id, { stdin: true, stdout: true, tty: true }), {
      stdin: true, tty: true, input: 'echo before-hangup\n',
      react: (out, ctl) => { if (/\nbefore-hangup\r\n/.test(out)) ctl.closeStdin(); },
    });
    t.match(r.stdout, /before-hangup/);
    const st = await waitFor('the exit', async () => { const s = await status(id); return s.state === 2 && s; });
    t.equal(st.exit_code, 129, 'the shell ended by SIGHUP (128 + 1)');
    const again = await rt!.client.rt.Attach({ container_id: id, stdin: true, stdout: true, tty: true }).catch((x: any) => x);
    t.equal(again.code, 9, 'an exited container cannot be attached (FAILED_PRECONDITION)');
  });

  t.test('Attach refusals name what is wrong', async (t) => {
    const plain = await create('plain', ['sleep', '1000'], {});
    const e1 = await rt!.client.rt.Attach({ container_id: plain, stdin: true, stdout: true }).catch((x: any) => x);
    t.equal(e1.code, 3);
    t.match(e1.details, /created without stdin/);
    const e2 = await rt!.client.rt.Attach({ container_id: plain, stdout: true, tty: true }).catch((x: any) => x);
    t.match(e2.details, /created without a tty/);
    const e3 = await rt!.client.rt.Attach({ container_id: plain, stdout: true, stderr: true, tty: true }).catch((x: any) => x);
    t.match(e3.details, /tty and stderr cannot both be set/);
    const e4 = await rt!.client.rt.Attach({ container_id: plain }).catch((x: any) => x);
    t.match(e4.details, /one of stdin, stdout and stderr must be set/);
    const e5 = await rt!.client.rt.CreateContainer({ pod_sandbox_id: pod, sandbox_config: config, config: { metadata: { name: 'cdi' }, image: { image: 'attach.test/busybox:1' }, CDI_devices: [{ name: 'vendor.com/gpu=0' }] } }).catch((x: any) => x);
    t.equal(e5.code, 12, 'an option that is not implemented: UNIMPLEMENTED');
    t.match(e5.details, /CDI_devices are not implemented/);
    // Huge page limits, as the kubelet sends them (0 for each size not asked for): to runc where
    // the host has the hugetlb controller; without it (this machine) dropped, and a request refused.
    const huge = await create('huge', ['true'], { linux: { resources: { hugepage_limits: [{ page_size: '2MB', limit: 0 }] } } });
    const limits = JSON.parse(readFileSync(join(root, 'containers', huge, 'config.json'), 'utf8')).linux.resources.hugepageLimits;
    if (hugetlbSupported()) t.same(limits, [{ pageSize: '2MB', limit: 0 }], 'hugepage limits in the OCI spec');
    else {
      t.equal(limits, undefined, 'no hugetlb controller: zero limits dropped, the container starts');
      const e6 = await rt!.client.rt.CreateContainer({ pod_sandbox_id: pod, sandbox_config: config, config: { metadata: { name: 'huge2' }, image: { image: 'attach.test/busybox:1' }, linux: { resources: { hugepage_limits: [{ page_size: '2MB', limit: 4194304 }] } } } }).catch((x: any) => x);
      t.equal(e6.code, 9, 'huge pages asked for without a hugetlb controller: FAILED_PRECONDITION');
      t.match(e6.details, /hugepage_limits asks for 4194304 bytes of 2MB huge pages, but this host has no hugetlb cgroup controller/);
    }
    // A plain container's output, over SPDY, until it is stopped.
    const url = await attach(plain, { stdout: true, stderr: true });
    const done = spdyExec(url, { stderr: true });
    await new Promise((r) => setTimeout(r, 300));
    await rt!.client.rt.StopContainer({ container_id: plain, timeout: 0 });
    t.same((await done).status, { metadata: {}, status: 'Success' }, 'an attach without stdin ends with the container');
  });
});
