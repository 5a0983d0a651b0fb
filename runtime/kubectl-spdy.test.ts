// A real SPDY peer: Debian's kubectl 1.20 (package kubernetes-client, unpacked by
// scripts/setup.sh into /opt/shoal/kubernetes-client), which speaks only SPDY/3.1 for exec,
// attach and port-forward, against shoal-runtime's streaming server on real runc containers.
// kubectl needs an API server to ask; a stub (testing/kube-apiserver-stub.ts) answers its GETs
// and relays each upgrade to the URL the runtime's CRI call returned, as the kubelet does.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupRoot } from './testing/cleanup.js';
import { startRuntime, type RuntimeProc } from './testing/runtime-proc.js';
import { busyboxImage, ociArchive } from './testing/test-image.js';
import { KubeApiStub } from './testing/kube-apiserver-stub.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const KUBECTL = process.env['SHOAL_SPDY_KUBECTL'] ?? '/opt/shoal/kubernetes-client/usr/bin/kubectl';
const base = mkdtempSync(join(tmpdir(), `shoal-kubectl-${process.pid}-`));
const root = join(base, 'root');
let rt: RuntimeProc | undefined;
let stub: KubeApiStub | undefined;
const children: number[] = [];
t.teardown(async () => {
  for (const pid of children) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  stub?.close();
  if (rt) await rt.kill('SIGKILL');
  cleanupRoot(root);
  rmSync(base, { recursive: true, force: true });
});

const freePort = () => new Promise<number>((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as any).port; s.close(() => resolve(p)); }); });

interface Run { code: number | null; stdout: string; stderr: string }
/** kubectl against the stub, with its own cache and config (nothing of the machine's is read or written). */
function kubectl(args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(KUBECTL, ['--server', `http://127.0.0.1:${stub!.port}`, '--cache-dir', join(base, 'kcache'), ...args],
      { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: base, KUBECONFIG: join(base, 'no-kubeconfig') }, stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(p.pid!);
    let stdout = ''; let stderr = '';
    p.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    p.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    p.stdin.end(input ?? '');
  });
}

t.test('kubectl 1.20 (SPDY only) drives exec, exec -t, attach and port-forward', async (t) => {
  if (!existsSync(KUBECTL)) { t.fail(`${KUBECTL} is missing: scripts/setup.sh unpacks Debian's kubernetes-client there`); return; }
  const archive = join(base, 'busybox.tar');
  writeFileSync(archive, ociArchive(busyboxImage(), 'kubectl.test/busybox:1'));
  rt = await startRuntime(join(base, 'cri.sock'), root);
  const c = rt.client;
  await c.img.PullImage({ image: { image: `oci-archive:${archive}` } });
  const config = { metadata: { name: 'kpod', uid: 'kpod', namespace: 'default' } };
  const pod = (await c.rt.RunPodSandbox({ config })).pod_sandbox_id as string;
  const run = async (name: string, command: string[], extra: any = {}) => {
    const { container_id } = await c.rt.CreateContainer({ pod_sandbox_id: pod, sandbox_config: config, config: { metadata: { name }, image: { image: 'kubectl.test/busybox:1' }, command, ...extra } });
    await c.rt.StartContainer({ container_id });
    return { id: container_id as string, ...extra };
  };
  const containers = {
    main: await run('main', ['sleep', '1000']),
    lines: await run('lines', ['sh', '-c', 'while read l; do echo got:$l; done; echo bye'], { stdin: true, stdin_once: true }),
    web: await run('web', ['sh', '-c', 'mkdir -p /www && echo served-to-kubectl > /www/index.html && exec httpd -f -p 8080 -h /www']),
  };
  stub = new KubeApiStub(c, 'kpod', pod, containers);
  await stub.start();

  t.test('exec -i: stdin, stdout, stderr and the exit code', async (t) => {
    const r = await kubectl(['exec', '-i', 'kpod', '-c', 'main', '--', 'sh', '-c', 'cat; echo to-stderr >&2; exit 3'], 'hello from kubectl\n');
    t.equal(r.stdout, 'hello from kubectl\n', 'stdin went in and stdout came out');
    t.match(r.stderr, /to-stderr/, 'stderr on its stream');
    t.match(r.stderr, /command terminated with exit code 3/, 'kubectl read the exit code from the v4 Status');
    t.equal(r.code, 3, 'and exits with it');
    t.ok(stub!.requests.some((q) => q.startsWith('UPGRADE POST /api/v1/namespaces/default/pods/kpod/exec?')), 'it came through the upgrade');
    const ok = await kubectl(['exec', 'kpod', '-c', 'main', '--', 'echo', 'fine']);
    t.same([ok.code, ok.stdout], [0, 'fine\n']);
  });

  t.test('exec -it: a terminal of kubectl\'s size', { skip: spawnSync('script', ['--version']).status === 0 ? false : 'util-linux script is missing' }, async (t) => {
    // script(1) gives kubectl a terminal of 100x40, which kubectl sends on the resize stream.
    const cmd = `stty cols 100 rows 40; exec ${KUBECTL} --server http://127.0.0.1:${stub!.port} --cache-dir ${join(base, 'kcache')} exec -it kpod -c main -- sh -c 'stty size; tty; exit 5'`;
    const r = await new Promise<Run>((resolve) => {
      const p = spawn('script', ['-qec', cmd, '/dev/null'], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: base, KUBECONFIG: join(base, 'no-kubeconfig'), TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] });
      children.push(p.pid!);
      let stdout = ''; let stderr = '';
      p.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
      p.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
      // kubectl's stdin stays open (a terminal) until the remote shell is done.
      const timer = setTimeout(() => p.stdin.end(), 20_000);
      p.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    });
    t.match(r.stdout.replace(/\r/g, ''), /40 100\n\/dev\/pts\/\d+\n/, 'the size kubectl sent, on a terminal in the container');
    t.equal(r.code, 5, 'the exit code came back');
  });

  t.test('attach -i to a container created with stdin and stdin_once (as `kubectl run -i` makes)', async (t) => {
    const r = await kubectl(['attach', '-i', 'kpod', '-c', 'lines'], 'one\ntwo\n');
    t.match(r.stdout, /got:one\ngot:two\nbye\n/, 'kubectl\'s stdin reached the container; at its end the container read end-of-file; its output came until it exited');
    t.equal(r.code, 0);
    const st = (await c.rt.ContainerStatus({ container_id: containers.lines.id })).status;
    t.same([st.state, st.exit_code], [2, 0], 'the container is done');
  });

  t.test('port-forward: a local port to the pod\'s port 8080', async (t) => {
    const local = await freePort();
    const p = spawn(KUBECTL, ['--server', `http://127.0.0.1:${stub!.port}`, '--cache-dir', join(base, 'kcache'), 'port-forward', 'kpod', `${local}:8080`],
      { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: base, KUBECONFIG: join(base, 'no-kubeconfig') }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(p.pid!);
    let out = '';
    p.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    p.stderr.on('data', (b: Buffer) => { out += b.toString(); });
    t.teardown(() => { p.kill('SIGKILL'); });
    for (let i = 0; i < 200 && !/Forwarding from/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
    t.match(out, new RegExp(`Forwarding from 127\\.0\\.0\\.1:${local} -> 8080`));
    const get = () => new Promise<string>((resolve) => {
      const s = connect(local, '127.0.0.1', () => s.write('GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n'));
      let body = '';
      s.on('data', (b: Buffer) => { body += b.toString(); });
      s.on('close', () => resolve(body));
      s.on('error', () => resolve(body));
    });
    let body = '';
    for (let i = 0; i < 50 && !/served-to-kubectl/.test(body); i++) { body = await get(); if (!/served-to-kubectl/.test(body)) await new Promise((r) => setTimeout(r, 100)); }
    t.match(body, /^HTTP\/1\.[01] 200 OK[\s\S]*served-to-kubectl/, 'the pod\'s httpd answered through kubectl\'s SPDY streams');
    const [a, b] = await Promise.all([get(), get()]);
    t.ok(/served-to-kubectl/.test(a) && /served-to-kubectl/.test(b), 'two connections at once, each its own stream pair');
  });
});
