// Streaming end to end over the URLs Exec and PortForward return, with our own WebSocket client
// (runtime/testing/ws-exec-client.ts): exec with a TTY (window size, merged output, exit code),
// and port forwarding into a pod's network namespace and into a host-network pod.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupRoot } from './testing/cleanup.js';
import { startRuntime, type RuntimeProc } from './testing/runtime-proc.js';
import { busyboxImage, ociArchive } from './testing/test-image.js';
import { execStream } from './testing/ws-exec-client.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const base = mkdtempSync(join(tmpdir(), `shoal-stream-${process.pid}-`));
const root = join(base, 'root');
let rt: RuntimeProc | undefined;
t.teardown(async () => {
  if (rt) await rt.kill('SIGKILL');
  cleanupRoot(root);
  rmSync(base, { recursive: true, force: true });
});

const freePort = () => new Promise<number>((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as any).port; s.close(() => resolve(p)); }); });

t.test('streaming: TTY exec and port forwarding', async (t) => {
  const archive = join(base, 'busybox.tar');
  writeFileSync(archive, ociArchive(busyboxImage(), 'stream.test/busybox:1'));
  rt = await startRuntime(join(base, 'cri.sock'), root);
  const c = rt.client;
  await c.img.PullImage({ image: { image: `oci-archive:${archive}` } });
  const pod = async (name: string, extra: any = {}) => {
    const config = { metadata: { name, uid: name, namespace: 'stream' }, ...extra };
    return { id: (await c.rt.RunPodSandbox({ config })).pod_sandbox_id as string, config };
  };
  const run = async (p: { id: string; config: any }, name: string, command: string[]) => {
    const { container_id } = await c.rt.CreateContainer({ pod_sandbox_id: p.id, sandbox_config: p.config, config: { metadata: { name }, image: { image: 'stream.test/busybox:1' }, command } });
    await c.rt.StartContainer({ container_id });
    return container_id as string;
  };

  t.test('exec with a TTY: window size, one merged stream, exit code', async (t) => {
    const p = await pod('tty');
    const id = await run(p, 'main', ['sleep', '1000']);
    const bad = await c.rt.Exec({ container_id: id, cmd: ['sh'], tty: true, stdout: true, stderr: true }).catch((x: any) => x);
    t.equal(bad.code, 3, 'tty with stderr: INVALID_ARGUMENT (a terminal has one output stream)');
    const ex = await c.rt.Exec({ container_id: id, cmd: ['sh', '-c', 'read x; stty size; tty; echo to-stderr >&2; echo got-$x; exit 3'], tty: true, stdin: true, stdout: true });
    const r = await execStream(ex.url, { send: [[4, JSON.stringify({ Width: 100, Height: 40 })]], stdin: 'hello\n' });
    const out = r.stdout.replace(/\r/g, '');
    t.match(out, /^hello\n/, 'the terminal echoes input');
    t.match(out, /\n40 100\n/, 'the window size from the resize channel');
    t.match(out, /\n\/dev\/pts\/\d+\n/, 'stdin is a terminal');
    t.match(out, /to-stderr\ngot-hello\n/, 'stderr comes on the same stream');
    t.same((r.status as any)?.details?.causes?.[0], { reason: 'ExitCode', message: '3' }, 'exit code on the status channel');
    t.notOk(r.channels[2], 'nothing on the stderr channel');
    // Resize while running: the process sees the new size.
    const ex2 = await c.rt.Exec({ container_id: id, cmd: ['sh', '-c', 'read a; stty size; read b; stty size'], tty: true, stdin: true, stdout: true });
    let resized = false;
    const r2 = await execStream(ex2.url, {
      send: [[4, '{"Width":80,"Height":24}'], [0, 'x\n']],
      // Once the first size is printed, resize and let the second read go on.
      react: (ch, send) => { if (!resized && /24 80/.test(ch[1]?.toString() ?? '')) { resized = true; send(4, '{"Width":132,"Height":50}'); send(0, 'y\n'); } },
    });
    t.match(r2.stdout.replace(/\r/g, ''), /24 80\n[\s\S]*50 132\n/, 'resized mid-session');
    t.equal((r2.status as any)?.status, 'Success');
  });

  t.test('port forward into the pod\'s network namespace and on the host network', async (t) => {
    const p = await pod('pf');
    await run(p, 'web', ['sh', '-c', 'mkdir -p /www && echo served-in-pod > /www/index.html && exec httpd -f -p 8080 -h /www']);
    const get = Buffer.from('GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n');
    let r: Awaited<ReturnType<typeof execStream>> | undefined;
    for (let i = 0; i < 50; i++) {
      const pf = await c.rt.PortForward({ pod_sandbox_id: p.id, port: [8080] });
      t.match(pf.url, /^http:\/\/127\.0\.0\.1:\d+\/portforward\/[a-f0-9]{32}$/);
      r = await execStream(`${pf.url}?port=8080`, { protocol: 'v4.channel.k8s.io', send: [[0, get]], closeWhen: (ch) => /served-in-pod/.test((ch[0] ?? Buffer.alloc(0)).toString()) || (ch[1]?.length ?? 0) > 2 });
      if (/served-in-pod/.test(r.channels[0]?.toString() ?? '')) break;
      await new Promise((res) => setTimeout(res, 100)); // httpd not listening yet
    }
    t.equal(r!.channels[0]!.readUInt16LE(0), 8080, 'the data channel starts with the port number');
    t.match(r!.channels[0]!.subarray(2).toString(), /^HTTP\/1\.[01] 200 OK[\s\S]*served-in-pod/, 'the pod\'s server answered through the forward');
    // Nothing listens on 9: the error channel says so.
    const pf2 = await c.rt.PortForward({ pod_sandbox_id: p.id, port: [9] });
    const e = await execStream(pf2.url, { protocol: 'v4.channel.k8s.io', closeWhen: (ch) => (ch[1]?.length ?? 0) > 2 });
    t.match(e.channels[1]!.subarray(2).toString(), /cannot connect to port 9 in the pod: Connection refused/);
    const badPort = await c.rt.PortForward({ pod_sandbox_id: p.id, port: [70000] }).catch((x: any) => x);
    t.equal(badPort.code, 3);
    // Host network: the forward goes to the host's loopback.
    const port = await freePort();
    const srv = createServer((s) => s.end('hello-from-host-net\n'));
    await new Promise<void>((res) => srv.listen(port, '127.0.0.1', res));
    t.teardown(() => { srv.close(); });
    const hp = await pod('hostnet', { linux: { security_context: { namespace_options: { network: 2 } } } });
    const pf3 = await c.rt.PortForward({ pod_sandbox_id: hp.id, port: [port] });
    const h = await execStream(pf3.url, { protocol: 'v4.channel.k8s.io', closeWhen: (ch) => /hello-from-host-net/.test(ch[0]?.toString() ?? '') });
    t.match(h.channels[0]!.subarray(2).toString(), /hello-from-host-net/, 'host-network pod: forwarded on the host');
  });
});
