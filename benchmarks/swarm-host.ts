// Docker Swarm's hosts for the benchmarks: each a dockerd, with a containerd of its own, inside a
// network namespace the run created, and the sweep that removes a run completely by its names.
//
// A run is named `shoal-swarm-<pid>-<k>`; everything it makes carries that name: its network
// namespaces (`<run>-br`, `<run>-reg`, `<run>-manager`, `<run>-worker-1`, ...), its directory
// (`/tmp/<run>`: data-roots, exec-roots, sockets, logs, the registry's storage) and its cgroup
// parent (`/<run>/<host>` in every controller, where dockerd puts its containers). So the sweep
// finds all of it from the name alone, also after a crash or a signal.
//
// Isolation: dockerd and containerd are started with `nsenter --net=/run/netns/NS` (not `ip netns
// exec`, which mounts a fresh /sys and hides the cgroup hierarchy), dockerd with --iptables=false
// --ip6tables=false --bridge=none, its own --data-root/--exec-root/-H/--pidfile/--config-file, and
// --containerd pointing at our containerd: without it dockerd 20.10 would use any containerd whose
// socket sits at /run/containerd/containerd.sock (a machine's or another test's). No process asks
// for a negative oom_score_adj (dockerd's default is -500).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountsUnder } from '../lab/down.js';
import { listNetns, pidInNetns, pidsIn, procState } from '../lab/netns.js';
import { isAlive, readFrom, sleep, startTimeOf, waitGone, type ProcRef } from '../lab/procs.js';
import { tryRun } from '../lab/sh.js';

export const DOCKERD = '/usr/sbin/dockerd';
/** Debian's CLI, by full path: the PATH may hold another `docker` (e.g. /usr/local/bin). */
export const DOCKER = '/usr/bin/docker';
export const CONTAINERD = '/usr/bin/containerd';
export const RUN_PREFIX = 'shoal-swarm-';
const CGROUP_ROOT = '/sys/fs/cgroup';

export function requireDocker(): void {
  for (const b of [DOCKERD, DOCKER, CONTAINERD, '/usr/bin/containerd-shim-runc-v2', '/usr/bin/docker-registry', '/usr/bin/nsenter']) {
    if (!existsSync(b)) throw new Error(`${b} not found: Docker Swarm runs from Debian's docker.io (and containerd, docker-registry); run scripts/setup.sh`);
  }
}

export function runDir(run: string): string {
  return join(tmpdir(), run);
}

export function runCgroup(run: string): string {
  return `/${run}`;
}

/** Starts `argv` inside named network namespace `ns` through nsenter (which enters the namespace
 * and execs in place, so the pid is the command's), detached, output appended to `logFile`. */
export async function startInNetns(ns: string, argv: string[], logFile: string): Promise<ProcRef> {
  const fd = openSync(logFile, 'a');
  let pid: number;
  try {
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { detached: true, stdio: ['ignore', fd, fd] });
    pid = await new Promise<number>((resolve, reject) => {
      child.once('error', (e) => reject(new Error(`could not start ${argv[0]} in ${ns}: ${e.message}`)));
      child.once('spawn', () => resolve(child.pid!));
    });
    child.unref();
  } finally {
    closeSync(fd);
  }
  const end = Date.now() + 10_000;
  for (;;) {
    const st = startTimeOf(pid);
    if (st === undefined || procState(pid) === undefined) throw new Error(`${argv[0]} in ${ns} exited at once; last lines of ${logFile}:\n${tail(logFile)}`);
    let comm = '';
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch { /* gone: caught above next time */ }
    if (comm !== 'nsenter' && pidInNetns(pid, ns)) return { pid, startTime: st };
    if (Date.now() > end) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      throw new Error(`${argv[0]} did not start inside ${ns} within 10 s`);
    }
    await sleep(5);
  }
}

export function tail(file: string, lines = 15): string {
  return readFrom(file, 0).split('\n').slice(-lines - 1).join('\n');
}

/** Waits until `ready()` holds; if `proc` dies first or time runs out, the error shows the log. */
export async function waitReady(what: string, proc: ProcRef, logFile: string, ready: () => Promise<boolean> | boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await ready()) return;
    if (!isAlive(proc)) throw new Error(`${what} exited during start-up; last lines of ${logFile}:\n${tail(logFile)}`);
    if (Date.now() > end) throw new Error(`${what} was not ready within ${ms / 1000} s; last lines of ${logFile}:\n${tail(logFile)}`);
    await sleep(50);
  }
}

/** One call to the Docker Engine API on a unix socket (what the docker CLI does underneath). */
export function dockerApi<T = unknown>(sock: string, method: string, path: string, body?: unknown, timeoutMs = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request({ socketPath: sock, method, path: `/v1.41${path}`, headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {}, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if ((res.statusCode ?? 500) >= 400) {
          let msg = text.trim();
          try { msg = (JSON.parse(text) as { message: string }).message; } catch { /* plain text */ }
          reject(new Error(`docker API ${method} ${path}: HTTP ${res.statusCode}: ${msg}`));
          return;
        }
        try {
          resolve((text ? JSON.parse(text) : undefined) as T);
        } catch {
          resolve(text as T);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`docker API ${method} ${path}: no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
    req.end(data);
  });
}

/** The docker CLI against one dockerd; resolves with its output, rejects naming the command. */
export function dockerCli(sock: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(DOCKER, ['-H', `unix://${sock}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DOCKER_CONFIG: join(sock, '..', 'cli-config') } });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d));
    c.stderr.on('data', (d: Buffer) => (err += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', (e) => { clearTimeout(timer); reject(e); });
    c.on('close', (code, sig) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`docker ${args.join(' ')} failed (${code ?? sig}): ${(err || out).trim()}`));
    });
  });
}

export interface SwarmHost {
  name: string;
  netns: string;
  address: string;
  dir: string;
  sock: string;
  containerd: ProcRef;
  dockerd: ProcRef;
  /** Swarm node id, once in a swarm. */
  nodeId?: string;
}

/** containerd then dockerd on host `name` (its namespace exists already). */
export async function startDockerHost(p: { run: string; name: string; netns: string; address: string; insecureRegistry: string }): Promise<SwarmHost> {
  const dir = join(runDir(p.run), p.name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ctrSock = join(dir, 'containerd.sock');
  // containerd's state, its plugins' directories (opt would default to /opt/containerd) and its
  // sockets, all under the host's directory; the CRI plugin off, as dockerd's own containerd has it.
  writeFileSync(join(dir, 'containerd.toml'), [
    'version = 2',
    `root = "${join(dir, 'containerd', 'root')}"`,
    `state = "${join(dir, 'containerd', 'state')}"`,
    'oom_score = 0',
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]', `  address = "${ctrSock}"`,
    '[ttrpc]', `  address = "${ctrSock}.ttrpc"`,
    '[debug]', '  address = ""',
    '[metrics]', '  address = ""',
    '[plugins."io.containerd.internal.v1.opt"]', `  path = "${join(dir, 'containerd', 'opt')}"`,
  ].join('\n') + '\n');
  const ctrLog = join(dir, 'containerd.log');
  const containerd = await startInNetns(p.netns, [CONTAINERD, '--config', join(dir, 'containerd.toml')], ctrLog);
  await waitReady(`containerd on ${p.name}`, containerd, ctrLog, () => /containerd successfully booted/.test(readFrom(ctrLog, 0)), 30_000);

  const sock = join(dir, 'docker.sock');
  // The trust key would default to /etc/docker/key.json.
  writeFileSync(join(dir, 'daemon.json'), JSON.stringify({ 'deprecated-key-path': join(dir, 'key.json') }) + '\n');
  const dLog = join(dir, 'dockerd.log');
  const dockerd = await startInNetns(p.netns, [
    DOCKERD,
    '--config-file', join(dir, 'daemon.json'),
    '--containerd', ctrSock,
    '--data-root', join(dir, 'data'),
    '--exec-root', join(dir, 'exec'),
    '-H', `unix://${sock}`,
    '--pidfile', join(dir, 'docker.pid'),
    '--iptables=false', '--ip6tables=false', '--bridge=none', '--userland-proxy=false',
    '--oom-score-adjust=0',
    '--cgroup-parent', `${runCgroup(p.run)}/${p.name}`,
    '--insecure-registry', p.insecureRegistry,
    '--log-level', 'warn',
  ], dLog);
  const host: SwarmHost = { name: p.name, netns: p.netns, address: p.address, dir, sock, containerd, dockerd };
  await waitReady(`dockerd on ${p.name}`, dockerd, dLog, async () => (await dockerApi<string>(sock, 'GET', '/_ping', undefined, 2000).catch(() => '')) === 'OK', 60_000);
  return host;
}

/** Every pid in the run: whatever lives in its namespaces (daemons, shims, the registry) and in its
 * cgroups (the containers, which have namespaces of their own). */
export function runPids(run: string): number[] {
  const pids = new Set<number>();
  for (const ns of listNetns()) if (ns.startsWith(`${run}-`)) for (const p of pidsIn(ns)) pids.add(p);
  const walk = (d: string): void => {
    let ents: import('node:fs').Dirent[];
    try {
      ents = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l.trim()) pids.add(Number(l));
    } catch { /* gone */ }
    for (const e of ents) if (e.isDirectory()) walk(join(d, e.name));
  };
  walk(join(CGROUP_ROOT, 'pids', runCgroup(run)));
  pids.delete(process.pid);
  return [...pids].filter((p) => procState(p) !== undefined);
}

function cgroupDirsDeepestFirst(run: string): string[] {
  const out: string[] = [];
  let ctls: string[] = [];
  try {
    ctls = readdirSync(CGROUP_ROOT);
  } catch {
    return out;
  }
  const walk = (d: string): void => {
    let ents: import('node:fs').Dirent[];
    try {
      ents = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) if (e.isDirectory()) walk(join(d, e.name));
    out.push(d);
  };
  for (const c of ctls) {
    const d = join(CGROUP_ROOT, c, runCgroup(run));
    if (existsSync(d)) walk(d);
  }
  return out;
}

/** containerd 1.6's runc shim listens on /run/containerd/s/<sha256(address/namespace/id)>,
 * whatever containerd's own state directory: a shim that exits removes it, one killed with
 * SIGKILL (a swept run, the failover's dead worker) leaves it. The run's shim sockets, from its
 * containers' ids (dockerd's container directories, and the cgroups named after them). */
export function shimSockets(run: string): string[] {
  const out = new Set<string>();
  let hosts: string[] = [];
  try {
    hosts = readdirSync(runDir(run));
  } catch {
    return [];
  }
  for (const h of hosts) {
    const address = join(runDir(run), h, 'containerd.sock');
    const ids = new Set<string>();
    for (const d of [join(runDir(run), h, 'data', 'containers'), join(CGROUP_ROOT, 'pids', runCgroup(run), h)]) {
      try {
        for (const id of readdirSync(d)) if (/^[0-9a-f]{64}$/.test(id)) ids.add(id);
      } catch { /* none */ }
    }
    for (const id of ids) out.add(join(SHIM_SOCKET_DIR, createHash('sha256').update(join(address, 'moby', id)).digest('hex')));
  }
  return [...out];
}

const SHIM_SOCKET_DIR = '/run/containerd/s';

/** Removes everything run `run` made: processes (SIGKILL), shim sockets, mounts under its
 * directory (dockerd's bind mount of its data-root, overlay roots, the nsfs files of its
 * sandboxes), cgroups, network namespaces, files. Returns what could not be removed (empty when
 * all is gone). */
export async function sweepRun(run: string): Promise<string[]> {
  const leftovers: string[] = [];
  const sockets = new Set(shimSockets(run));
  // dockerd and containerd first so nothing starts new containers, then everything else; again
  // until none is left (a shim may have been forking a container while we looked).
  for (let round = 0; round < 5; round++) {
    const pids = runPids(run);
    if (pids.length === 0) break;
    const daemons = pids.filter((p) => ['dockerd', 'containerd'].includes(comm(p)));
    for (const p of daemons.length ? daemons : pids) kill(p);
    await waitGone(daemons.length ? daemons : pids, 5000);
    for (const p of runPids(run)) kill(p);
    await waitGone(runPids(run), 5000);
  }
  for (const p of runPids(run)) leftovers.push(`process ${p} (${comm(p)})`);
  for (const f of [...sockets, ...shimSockets(run)]) rmSync(f, { force: true });
  for (const f of sockets) if (existsSync(f)) leftovers.push(`shim socket ${f}`);

  const dir = runDir(run);
  for (const m of mountsUnder(dir)) {
    if (!tryRun(['umount', m]).ok && !tryRun(['umount', '-l', m]).ok) leftovers.push(`mount ${m}`);
  }
  for (const d of cgroupDirsDeepestFirst(run)) {
    let ok = false;
    for (let i = 0; i < 20 && !ok; i++) {
      try {
        rmdirSync(d);
        ok = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') ok = true;
        else await sleep(50); // a killed process leaves its cgroup a moment later
      }
    }
    if (!ok) leftovers.push(`cgroup ${d}`);
  }
  // Host namespaces first, the bridge's last (the veths go with the host ends).
  const nss = listNetns().filter((n) => n.startsWith(`${run}-`)).sort((a, b) => (a.endsWith('-br') ? 1 : 0) - (b.endsWith('-br') ? 1 : 0));
  for (const ns of nss) {
    if (!tryRun(['ip', 'netns', 'del', ns]).ok) {
      await sleep(200);
      if (!tryRun(['ip', 'netns', 'del', ns]).ok) leftovers.push(`network namespace ${ns}`);
    }
  }
  if (mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
  if (existsSync(dir)) leftovers.push(`directory ${dir}`);
  removeRunDocker();
  removeRunContainerd();
  return leftovers;
}

/** dockerd makes /run/docker/plugins (for plugin sockets) whatever its exec-root; it goes when it
 * is empty and no dockerd is left on the machine (a machine's own Docker keeps its files there, so
 * the directory is not empty then). */
export function removeRunDocker(): void {
  if (!existsSync('/run/docker')) return;
  if (allPids().some((p) => comm(p) === 'dockerd')) return;
  for (const d of ['/run/docker/plugins', '/run/docker']) {
    try {
      rmdirSync(d);
    } catch { /* not empty, or gone */ }
  }
}

/** The shims' socket directory (and /run/containerd, containerd's default state directory) goes
 * too when empty and no containerd or shim is left on the machine to use it. */
function removeRunContainerd(): void {
  if (!existsSync(SHIM_SOCKET_DIR)) return;
  if (allPids().some((p) => comm(p).startsWith('containerd'))) return;
  for (const d of [SHIM_SOCKET_DIR, '/run/containerd']) {
    try {
      rmdirSync(d);
    } catch { /* not empty, or gone */ }
  }
}

/** Runs of a process that no longer exists (killed with SIGKILL, so it could not sweep). */
export function staleRuns(): string[] {
  const names = new Set<string>();
  for (const ns of listNetns()) if (ns.startsWith(RUN_PREFIX)) names.add(runOf(ns));
  try {
    for (const f of readdirSync(tmpdir())) if (f.startsWith(RUN_PREFIX)) names.add(runOf(f));
  } catch { /* no tmp */ }
  try {
    for (const f of readdirSync(join(CGROUP_ROOT, 'pids'))) if (f.startsWith(RUN_PREFIX)) names.add(runOf(f));
  } catch { /* no cgroups */ }
  return [...names].filter((r) => {
    const pid = Number(/^shoal-swarm-(\d+)-\d+$/.exec(r)?.[1]);
    return Number.isInteger(pid) && pid !== process.pid && procState(pid) === undefined;
  });
}

function runOf(name: string): string {
  const m = /^(shoal-swarm-\d+-\d+)/.exec(name);
  return m ? m[1]! : name;
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch { /* gone */ }
}

function allPids(): number[] {
  return readdirSync('/proc').filter((f) => /^\d+$/.test(f)).map(Number);
}

/** SIGKILL to a host's dockerd and containerd at once: the host "dies" as a crashed daemon does;
 * its shims and containers keep running, unreported, as they do after a real dockerd crash. */
export function killDaemons(h: SwarmHost): void {
  for (const p of [h.dockerd, h.containerd]) if (isAlive(p)) kill(p.pid);
}
