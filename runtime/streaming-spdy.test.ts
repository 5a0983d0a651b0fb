// Streaming over SPDY/3.1 end to end, with our own SPDY client (runtime/testing/spdy-client.ts,
// speaking as kubectl before 1.29 and crictl 1.29 do) against real runc containers: exec in every
// protocol version (stdin, stdout, stderr, the status with the exit code), exec with a terminal
// and resizes, the handshake's refusals, and port forwarding by stream pairs.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupRoot } from './testing/cleanup.js';
import { startRuntime, type RuntimeProc } from './testing/runtime-proc.js';
import { busyboxImage, ociArchive } from './testing/test-image.js';
import { spdyConnect, spdyExec, spdyForward, UpgradeRefused } from './testing/spdy-client.js';
import { execStream } from './testing/ws-exec-client.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const base = mkdtempSync(join(tmpdir(), `shoal-spdy-${process.pid}-`));
const root = join(base, 'root');
let rt: RuntimeProc | undefined;
t.teardown(async () => {
  if (rt) await rt.kill('SIGKILL');
  cleanupRoot(root);
  rmSync(base, { recursive: true, force: true });
});

t.test('SPDY streaming: exec, TTY exec, handshake, port forwarding', async (t) => {
  const archive = join(base, 'busybox.tar');
  writeFileSync(archive, ociArchive(busyboxImage(), 'spdy.test/busybox:1'));
  rt = await startRuntime(join(base, 'cri.sock'), root);
  const c = rt.client;
  await c.img.PullImage({ image: { image: `oci-archive:${archive}` } });
  const config = { metadata: { name: 'spdy', uid: 'spdy', namespace: 'stream' } };
  const pod = (await c.rt.RunPodSandbox({ config })).pod_sandbox_id as string;
  const run = async (name: string, command: string[]) => {
    const { container_id } = await c.rt.CreateContainer({ pod_sandbox_id: pod, sandbox_config: config, config: { metadata: { name }, image: { image: 'spdy.test/busybox:1' }, command } });
    await c.rt.StartContainer({ container_id });
    return container_id as string;
  };
  const id = await run('main', ['sleep', '1000']);
  const exec = (cmd: string[], o: any) => c.rt.Exec({ container_id: id, cmd, ...o }).then((r: any) => r.url as string);

  t.test('exec over v4: stdin, stdout, stderr on their streams, the exit code in the Status', async (t) => {
    const url = await exec(['sh', '-c', 'cat; echo to-stderr >&2; exit 5'], { stdin: true, stdout: true, stderr: true });
    const r = await spdyExec(url, { stdin: true, stderr: true, input: 'hello over spdy\n', closeStdin: true });
    t.equal(r.protocol, 'v4.channel.k8s.io', 'the newest protocol both sides speak');
    t.equal(r.stdout, 'hello over spdy\n', 'stdin reached the process and its output came back on stdout');
    t.equal(r.stderr, 'to-stderr\n', 'stderr on its own stream');
    t.equal(r.status?.status, 'Failure');
    t.equal(r.status?.reason, 'NonZeroExitCode');
    t.same((r.status as any)?.details?.causes, [{ reason: 'ExitCode', message: '5' }], 'the exit code');
    const ok = await spdyExec(await exec(['echo', 'fine'], { stdout: true }), {});
    t.equal(ok.stdout, 'fine\n');
    t.same(ok.status, { metadata: {}, status: 'Success' }, 'success is a Success Status');
    // Larger than one frame and than the initial 64 KiB window: nothing waits for WINDOW_UPDATE.
    const big = await spdyExec(await exec(['sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" x; echo'], { stdout: true }), {});
    t.equal(big.stdout.length, 300001, '300 KB of output arrive whole');
  });

  t.test('exec over v3, v2 and channel.k8s.io: a failure is its message, success writes nothing', async (t) => {
    for (const p of ['v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io']) {
      const r = await spdyExec(await exec(['sh', '-c', 'read x; echo got-$x; exit 2'], { stdin: true, stdout: true }), { protocols: [p], stdin: true, input: 'y\n', closeStdin: true });
      t.equal(r.protocol, p, `${p} negotiated`);
      t.equal(r.stdout, 'got-y\n', `${p}: stdin and stdout`);
      t.equal(r.errorText, 'command terminated with non-zero exit code: 2', `${p}: the failure as text`);
      const ok = await spdyExec(await exec(['true'], { stdout: true }), { protocols: [p] });
      t.equal(ok.errorText, '', `${p}: nothing on success`);
    }
    // No protocol header at all: the kubelet falls back to the first protocol, and so do we.
    const legacy = await spdyExec(await exec(['echo', 'legacy'], { stdout: true }), { protocols: [] });
    t.equal(legacy.protocol, '', 'no X-Stream-Protocol-Version in the answer');
    t.equal(legacy.stdout, 'legacy\n');
  });

  t.test('exec with a terminal over v4: one stream, window sizes on the resize stream, exit code', async (t) => {
    const url = await exec(['sh', '-c', 'stty size; tty; echo to-stderr >&2; read a; stty size; exit 4'], { stdin: true, stdout: true, tty: true });
    let resized = false;
    const r = await spdyExec(url, {
      stdin: true, tty: true, sizes: [[100, 40]],
      react: (out, ctl) => { if (!resized && /to-stderr/.test(out)) { resized = true; ctl.resize(132, 50); ctl.write('go\n'); } },
    });
    const out = r.stdout.replace(/\r/g, '');
    t.match(out, /^40 100\n\/dev\/pts\/\d+\nto-stderr\n/, 'the first size, a terminal, stderr merged into the one stream');
    t.match(out, /go\n50 132\n$/, 'input echoed by the terminal, then the new size');
    t.same((r.status as any)?.details?.causes, [{ reason: 'ExitCode', message: '4' }]);
    // v2 has no resize stream: the terminal still works.
    const v2 = await spdyExec(await exec(['tty'], { stdout: true, tty: true, stdin: true }), { protocols: ['v2.channel.k8s.io'], stdin: true, tty: true, closeStdin: true });
    t.match(v2.stdout, /\/dev\/pts\/\d+/);
  });

  t.test('handshake: refusals name what was wrong', async (t) => {
    const url = await exec(['true'], { stdout: true });
    const e = await spdyConnect(url, ['v9.channel.k8s.io']).catch((x) => x);
    t.ok(e instanceof UpgradeRefused && e.statusCode === 403, 'no protocol in common: 403');
    t.match(e.body, /unable to negotiate protocol: client supports \["v9.channel.k8s.io"\], server supports \["v4.channel.k8s.io"/);
    const again = await spdyConnect(url, ['v4.channel.k8s.io']).catch((x) => x);
    t.equal(again.statusCode, 404, 'the URL was used up by the refused attempt');
    const pf = (await c.rt.PortForward({ pod_sandbox_id: pod, port: [80] })).url as string;
    const e2 = await spdyConnect(pf, ['v4.channel.k8s.io']).catch((x) => x);
    t.equal(e2.statusCode, 403, 'port forwarding speaks portforward.k8s.io only');
    // A stream of a type the protocol does not have: the error stream says so and the session ends.
    const { session } = await spdyConnect(await exec(['true'], { stdout: true }), ['v4.channel.k8s.io']);
    const err = await session.openStream({ streamtype: 'error' });
    let text = '';
    err.on('data', (b: Buffer) => { text += b.toString(); });
    const bad = await session.openStream({ streamtype: 'bogus' }).catch((x) => x);
    t.match(String(bad), /reset before it was answered/, 'the bogus stream is reset');
    await new Promise((r) => session.on('close', r));
    t.match(text, /unexpected stream type \\"bogus\\"/, 'the error stream names it');
  });

  t.test('port forwarding: a pair of streams per connection, errors on the error stream', async (t) => {
    await run('web', ['sh', '-c', 'mkdir -p /www && echo served-over-spdy > /www/index.html && exec httpd -f -p 8080 -h /www']);
    const get = 'GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n';
    let first;
    for (let i = 0; i < 50; i++) {
      const { session, protocol } = await spdyConnect((await c.rt.PortForward({ pod_sandbox_id: pod, port: [8080] })).url, ['portforward.k8s.io']);
      t.equal(protocol, 'portforward.k8s.io');
      first = await spdyForward(session, 8080, '0', get);
      if (/served-over-spdy/.test(first.data.toString())) {
        // Two more connections at once on the same session, and one to a port nobody listens on.
        const [a, b, refused] = await Promise.all([spdyForward(session, 8080, '1', get), spdyForward(session, 8080, '2', get), spdyForward(session, 9, '3', 'x')]);
        t.match(a.data.toString(), /^HTTP\/1\.[01] 200 OK[\s\S]*served-over-spdy/, 'second connection');
        t.match(b.data.toString(), /served-over-spdy/, 'third connection, concurrently');
        t.equal(a.error, '', 'nothing on a good pair\'s error stream');
        t.match(refused.error, new RegExp(`error forwarding port 9 to pod ${pod}: cannot connect to port 9 in the pod: Connection refused`), 'a refused connection is reported on its error stream');
        // A stream without a valid port is refused before it is answered, as the kubelet does.
        const bad = await session.openStream({ streamtype: 'data', port: '0', requestid: '9' }).catch((x) => x);
        t.match(String(bad), /reset before it was answered/);
        session.destroy();
        break;
      }
      session.destroy();
      await new Promise((r) => setTimeout(r, 100)); // httpd not listening yet
    }
    t.match(first!.data.toString(), /^HTTP\/1\.[01] 200 OK[\s\S]*served-over-spdy/, 'the pod\'s server answered through the forward');
  });

  t.test('the WebSocket protocol still serves the same URLs', async (t) => {
    const r = await execStream(await exec(['sh', '-c', 'echo ws; exit 6'], { stdout: true }), {});
    t.equal(r.stdout, 'ws\n');
    t.same((r.status as any)?.details?.causes, [{ reason: 'ExitCode', message: '6' }]);
  });
});
