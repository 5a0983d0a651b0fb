// Test helper: a real Docker registry (Debian's docker-registry, distribution 2.x) on
// 127.0.0.1 with a temporary storage directory, plus the client side of a push over the
// distribution API (monolithic blob uploads, manifest PUT).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Blob, BuiltImage } from './test-image.js';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export interface Registry {
  host: string; // 127.0.0.1:PORT
  proc: ChildProcess;
  dir: string;
  stop(): Promise<void>;
}

export interface RegistryAuthConfig {
  /** Extra YAML under `auth:` (e.g. token auth), indented by the caller. */
  authYaml: string;
}

/**
 * `netns`: run the registry inside that network namespace (its 127.0.0.1), for runtimes that
 * run there; it is then checked from inside (busybox wget), and pushed to from inside too.
 */
export async function startRegistry(auth?: RegistryAuthConfig, opts: { netns?: string; port?: number } = {}): Promise<Registry> {
  const dir = mkdtempSync(join(tmpdir(), `shoal-registry-${process.pid}-`));
  // The registry cannot report an OS-chosen port, so we take one from the OS and hand it over;
  // if another process grabs it in between, startup fails loudly and the test says so.
  const port = opts.port ?? await freePort();
  const cfg = [
    'version: 0.1',
    'log:', '  level: error',
    'storage:', `  filesystem:`, `    rootdirectory: ${join(dir, 'data')}`, '  delete:', '    enabled: true',
    'http:', `  addr: 127.0.0.1:${port}`,
    ...(auth ? ['auth:', auth.authYaml] : []),
  ].join('\n') + '\n';
  writeFileSync(join(dir, 'config.yml'), cfg);
  // setpriv --pdeathsig: the registry dies with the test process, even when tap SIGKILLs a
  // timed-out test or is stopped itself (it outlived its test before).
  const serve = ['setpriv', '--pdeathsig', 'KILL', '--', 'docker-registry', 'serve', join(dir, 'config.yml')];
  const proc = opts.netns
    ? spawn('nsenter', [`--net=${opts.netns}`, '--', ...serve], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(serve[0]!, serve.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  const host = `127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) { await stop(); throw new Error(`docker-registry exited at startup: ${stderr}`); }
    if (opts.netns) {
      const r = spawnSync('nsenter', [`--net=${opts.netns}`, '--', 'busybox', 'wget', '-q', '-O', '/dev/null', `http://${host}/v2/`], { stdio: 'ignore' });
      if (r.status === 0) break;
    } else try {
      const r = await fetch(`http://${host}/v2/`);
      await r.body?.cancel();
      if (r.status === 200 || r.status === 401) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { await stop(); throw new Error(`docker-registry did not answer on ${host} within 15 s: ${stderr}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { host, proc, dir, stop };
}

export async function pushBlob(host: string, repo: string, b: Blob, headers: Record<string, string> = {}): Promise<void> {
  const start = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
  await start.body?.cancel();
  if (start.status !== 202) throw new Error(`blob upload start for ${repo} failed: HTTP ${start.status}`);
  const loc = new URL(start.headers.get('location')!, `http://${host}`);
  loc.searchParams.set('digest', b.digest);
  const put = await fetch(loc, { method: 'PUT', body: b.data, headers: { ...headers, 'content-type': 'application/octet-stream' } });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`blob upload of ${b.digest} failed: HTTP ${put.status} ${text}`);
}

export async function pushManifest(host: string, repo: string, reference: string, m: Blob, headers: Record<string, string> = {}): Promise<void> {
  const r = await fetch(`http://${host}/v2/${repo}/manifests/${reference}`, { method: 'PUT', body: m.data, headers: { ...headers, 'content-type': m.mediaType } });
  const text = await r.text();
  if (r.status !== 201) throw new Error(`manifest push ${repo}:${reference} failed: HTTP ${r.status} ${text}`);
}

export async function pushImage(host: string, repo: string, tag: string | undefined, img: BuiltImage, headers: Record<string, string> = {}): Promise<void> {
  for (const b of [...img.layers, img.config]) await pushBlob(host, repo, b, headers);
  await pushManifest(host, repo, tag ?? img.manifest.digest, img.manifest, headers);
}
