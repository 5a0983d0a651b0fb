// Containers: an OCI bundle per container on an overlayfs root (image layers below, a writable
// layer above), started by `runc run -d` under a small C monitor (runtime/shim/shoal-shim.c).
//
// Why the monitor: the container process must have a parent that outlives the runtime so its
// exit status is not lost when shoal-runtime restarts. The monitor (its own session, a child
// subreaper, so the container becomes its child once `runc run -d` returns) holds both log
// FIFOs open read-write (so the container never gets SIGPIPE while the runtime is down), reaps
// the container and writes the exit code to a file. The runtime reads the FIFOs into
// CRI-format logs; end-of-file on them means the container and its monitor are gone, so it is
// also how the runtime learns of an exit, before or after a restart. runc keeps the stopped
// container (and its cgroup) until `runc delete`, so an OOM kill can be read.
import { constants as fsc, type FSWatcher, existsSync, fstatSync, readdirSync, readlinkSync, lstatSync, openSync, readFileSync, readSync, promises as fsp, statSync, closeSync, watch, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { isAbsolute, join, posix, resolve } from 'node:path';
import { cgroupVersion, hugetlbSupported, oomKillCount } from './cgroups.js';
import type { ImageRecord, ImageStore } from './image-store.js';
import { ContainerLog, nowNs } from './logs.js';
import { buildSpec, memoryCpuResources, mergeEnv, processArgs, resourcesFromCri, type OciMount } from './oci-spec.js';
import { runCommand } from './run-command.js';
import type { Runc } from './runc.js';
import { isInfraOf, isMountpoint, newId } from './sandbox.js';
import type { ContainerRecord, CriObject, SandboxRecord, StateStore } from './state.js';

import { DeadlineError, InvalidArgumentError, NotFoundError, PreconditionError } from './errors.js';
import { traced, traceAdd } from './trace.js';
import { ShimError, type Shim } from './shim.js';
import { checkContainerConfig } from './unimplemented.js';
import { capabilities, checkPropagation, criDevices, hostDevices, seccompFor } from './security.js';
export { InvalidArgumentError, NotFoundError, PreconditionError };

export interface ContainerOptions {
  /** pids limit applied when the request sets none (0 = unlimited). */
  defaultPidsLimit: number;
  /** How long StartContainer may take until runc has started the container. */
  startTimeoutMs?: number;
}

/** CRI ContainerEventType: CREATED 0, STARTED 1, STOPPED 2, DELETED 3. */
export type EventKind = 0 | 1 | 2 | 3;

export interface OutputListener { data(stream: 'stdout' | 'stderr', b: Buffer): void; exit(code: number): void }

interface Pump { sockets: Socket[]; log: ContainerLog; open: number; watcher?: FSWatcher; collectTimer?: NodeJS.Timeout; exitTimer?: NodeJS.Timeout }

/**
 * Reads the image's /etc/passwd or /etc/group. Nothing on the way may be a symlink: the
 * image's files are the image author's, and `etc -> /etc` (or `passwd -> /etc/shadow`) would
 * otherwise make us read the host's files. Missing or unsafe means empty.
 */
function readIdFile(rootfs: string, file: 'passwd' | 'group'): string[][] {
  let fd: number | undefined;
  try {
    const etc = lstatSync(join(rootfs, 'etc'));
    if (!etc.isDirectory()) return [];
    // O_NOFOLLOW refuses a symlink as the last component; etc itself was checked just above.
    fd = openSync(join(rootfs, 'etc', file), fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    if (!fstatSync(fd).isFile()) return [];
    return readFileSync(fd, 'utf8').split('\n').map((l) => l.split(':'));
  } catch { return []; } finally { if (fd !== undefined) closeSync(fd); }
}

/** Resolves "user[:group]" (names or numbers) against the container's /etc/passwd and /etc/group. */
export function resolveUser(rootfs: string, user: string): { uid: number; gid: number; groups: number[] } {
  const [u, g] = user.split(':');
  const passwd = readIdFile(rootfs, 'passwd');
  const group = readIdFile(rootfs, 'group');
  let uid: number; let gid = 0; let name: string | undefined;
  if (!u || /^\d+$/.test(u)) {
    uid = u ? Number(u) : 0;
    const row = passwd.find((r) => Number(r[2]) === uid && r[2] !== undefined);
    if (row) { gid = Number(row[3]); name = row[0]; }
  } else {
    const row = passwd.find((r) => r[0] === u);
    if (!row) throw new InvalidArgumentError(`user ${JSON.stringify(u)} is not in the image's /etc/passwd; use a numeric uid or add the user to the image`);
    uid = Number(row[2]); gid = Number(row[3]); name = u;
  }
  if (g !== undefined && g !== '') {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const row = group.find((r) => r[0] === g);
      if (!row) throw new InvalidArgumentError(`group ${JSON.stringify(g)} is not in the image's /etc/group`);
      gid = Number(row[2]);
    }
  }
  const groups = name ? group.filter((r) => (r[3] ?? '').split(',').includes(name!)).map((r) => Number(r[2])).filter((x) => x !== gid) : [];
  return { uid, gid, groups };
}

/**
 * Is process `pid` the monitor of the container in `dir`? The C monitor names itself
 * "shoal-monitor" and works in the bundle directory; a monitor started by an older runtime
 * (a shell) has "shoal-monitor" and the directory in its command line.
 */
function isMonitorOf(pid: number | string, dir: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const st = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (st === 'Z' || st === 'X') return false;
    if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) === 'shoal-monitor') return readlinkSync(`/proc/${pid}/cwd`) === dir;
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmd.includes('shoal-monitor') && cmd.includes(dir);
  } catch { return false; }
}

/** Is the monitor of the container in `dir` alive (and not a recycled pid)? */
function monitorAlive(pid: number | undefined, dir: string): boolean {
  return !!pid && isMonitorOf(pid, dir);
}

/** The pid of the monitor of the container in `dir`, looked up in /proc. */
function findMonitor(dir: string): number | undefined {
  for (const p of readdirSync('/proc')) if (/^\d+$/.test(p) && isMonitorOf(p, dir)) return Number(p);
  return undefined;
}

/** Lets a monitor that waits on collect.fifo exit (tries for up to 2 s). */
async function releaseMonitor(dir: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try { closeSync(openSync(join(dir, 'collect.fifo'), fsc.O_WRONLY | fsc.O_NONBLOCK)); return; } catch { await new Promise((r) => setTimeout(r, 20)); }
  }
}

export class Containers {
  private readonly recs = new Map<string, ContainerRecord>();
  private readonly pumps = new Map<string, Pump>();
  private readonly exitWaiters = new Map<string, (() => void)[]>();
  private detaching = false;
  private readonly listeners = new Map<string, Set<OutputListener>>();
  private readonly starting = new Set<string>();
  /** Sandboxes being stopped or removed: a CreateContainer that was under way must not land in them. */
  private readonly closing = new Set<string>();
  private readonly creating = new Map<string, Set<Promise<unknown>>>();
  /** Lifecycle events (GetContainerEvents); set by the Runtime. */
  onEvent: (containerId: string, sandboxId: string, kind: EventKind) => void = () => {};

  constructor(
    private readonly state: StateStore,
    private readonly images: ImageStore,
    private readonly runc: Runc,
    private readonly opts: ContainerOptions,
    private readonly shim: Shim,
  ) {}

  list(): ContainerRecord[] { return [...this.recs.values()]; }
  get(id: string): ContainerRecord | undefined { return this.recs.get(id); }

  /** Finds a container by full id or unique prefix. */
  find(id: string): ContainerRecord {
    if (!id) throw new InvalidArgumentError('container id is empty');
    const r = this.recs.get(id);
    if (r) return r;
    const m = [...this.recs.values()].filter((c) => c.id.startsWith(id));
    if (m.length === 1) return m[0]!;
    throw new NotFoundError(`container ${JSON.stringify(id)} not found`);
  }

  imageInUse(imageId: string): boolean {
    return [...this.recs.values()].some((c) => c.imageId === imageId);
  }

  /** Picks the runtime's containers up again after a restart. */
  async restore(recs: ContainerRecord[]): Promise<void> {
    for (const r of recs) {
      this.recs.set(r.id, r);
      // StartContainer does not wait for a durable write: runc's pid file is the record that
      // a created container was started.
      if (r.state === 'created' && existsSync(join(r.dir, 'pid'))) {
        r.state = 'running';
        r.pid = Number(readFileSync(join(r.dir, 'pid'), 'utf8').trim()) || undefined;
        r.startedAt = Math.round(statSync(join(r.dir, 'pid')).mtimeMs * 1e6);
        if (!r.monitorPid) r.monitorPid = findMonitor(r.dir);
      }
      if (r.state === 'created' && existsSync(join(r.dir, 'exitcode'))) {
        // The runtime went down while runc failed to start it: record that, free the monitor
        // (a C monitor has already gone; a shell one from an older runtime waits).
        if (findMonitor(r.dir)) await releaseMonitor(r.dir);
        r.state = 'exited'; r.exitCode = 128; r.reason = 'StartError';
        r.message = this.runcError(r.dir) || 'runc exited before the container started';
        r.finishedAt = Math.round(statSync(join(r.dir, 'exitcode')).mtimeMs * 1e6);
        await this.state.saveContainer(r);
      }
      if (r.state === 'created') await this.remount(r);
      if (r.state !== 'running') continue;
      const fifos = ['stdout.fifo', 'stderr.fifo'].map((f) => join(r.dir, f));
      if (!fifos.every((f) => existsSync(f))) { await this.finalize(r); continue; }
      const fds = fifos.map((f) => openSync(f, fsc.O_RDONLY | fsc.O_NONBLOCK));
      // A FIFO opened while it has no writer never signals end-of-file, so whether the monitor
      // still lives (and holds the write side) is checked after opening.
      if (monitorAlive(r.monitorPid, r.dir)) { this.attach(r, fds); continue; }
      const log = new ContainerLog(r.logPath);
      (['stdout', 'stderr'] as const).forEach((stream, i) => {
        const buf = Buffer.alloc(65536);
        for (;;) {
          let n = 0;
          try { n = readSync(fds[i]!, buf, 0, buf.length, null); } catch { break; }
          if (n <= 0) break;
          log.write(stream, buf.subarray(0, n));
        }
        log.end(stream);
        closeSync(fds[i]!);
      });
      await log.close();
      await this.finalize(r);
    }
  }

  /** A created container's root is mounted again if it is not (after a reboot). */
  private async remount(r: ContainerRecord): Promise<void> {
    const rootfs = join(r.dir, 'rootfs');
    if (isMountpoint(rootfs)) return;
    const img = this.images.find(r.imageId);
    if (!img) { r.state = 'unknown'; r.reason = 'ImageGone'; r.message = `image ${r.imageId} of this created container is gone`; return; }
    await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', this.overlayOptions(img, r.dir), rootfs]);
  }

  private overlayOptions(img: ImageRecord, dir: string): string {
    return `lowerdir=${this.images.lowerDirs(img).join(':')},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`;
  }

  /** Marks a sandbox as going away; resolves once the CreateContainer calls under way in it have settled. */
  async sandboxClosing(sandboxId: string): Promise<void> {
    this.closing.add(sandboxId);
    await Promise.allSettled([...(this.creating.get(sandboxId) ?? [])]);
  }

  /** The sandbox is gone for good (or ready again after a failed removal): forget the mark. */
  sandboxClosed(sandboxId: string): void { this.closing.delete(sandboxId); }

  async create(sb: SandboxRecord, config: CriObject): Promise<ContainerRecord> {
    const set = this.creating.get(sb.id) ?? new Set<Promise<unknown>>();
    this.creating.set(sb.id, set);
    const p = this.createIn(sb, config);
    set.add(p);
    try { return await p; } finally {
      set.delete(p);
      if (set.size === 0) this.creating.delete(sb.id);
    }
  }

  private async createIn(sb: SandboxRecord, config: CriObject): Promise<ContainerRecord> {
    const md = config?.metadata;
    if (!md?.name) throw new InvalidArgumentError('CreateContainer: config.metadata.name is required');
    if (sb.state !== 'ready' || this.closing.has(sb.id)) throw new PreconditionError(`CreateContainer: pod sandbox ${sb.id} is not ready (stopped or being removed); run a new sandbox`);
    const clash = [...this.recs.values()].find((c) => c.sandboxId === sb.id && c.config.metadata.name === md.name && (c.config.metadata.attempt ?? 0) === (md.attempt ?? 0));
    if (clash) throw new PreconditionError(`CreateContainer: container ${md.name} attempt ${md.attempt ?? 0} already exists in sandbox ${sb.id} (${clash.id})`);
    checkContainerConfig(config);
    const imageSpec: string = config.image?.image ?? '';
    const img = this.images.find(imageSpec);
    if (!img) throw new NotFoundError(`CreateContainer: image ${JSON.stringify(imageSpec)} is not present; pull it first`);
    const id = newId();
    const dir = this.state.containerDir(id);
    const rootfs = join(dir, 'rootfs');
    try {
      const opts = this.overlayOptions(img, dir);
      // One shim request: the bundle directories, the overlay root, the FIFOs (with stdin or a
      // terminal also the stdin FIFO and the monitor's control FIFO).
      await traced('cc.mount', () => this.shim.request('overlay', [dir, opts, ...(config.stdin || config.tty ? ['stdin.fifo', 'ctl.fifo'] : [])]));
      const t0 = performance.now();
      const rec = this.buildRecord(id, dir, sb, config, img);
      const spec = this.spec(rec, sb, config, img, rootfs);
      traceAdd('cc.spec', performance.now() - t0);
      await traced('cc.save', () => this.state.createRecord(dir, rec, [{ name: 'config.json', data: JSON.stringify(spec) }]));
      // StopPodSandbox/RemovePodSandbox may have begun while this one was under way; they saw
      // no such container, so it must not appear now.
      if (sb.state !== 'ready' || this.closing.has(sb.id)) throw new PreconditionError(`CreateContainer: pod sandbox ${sb.id} was stopped or removed while the container was being created`);
      this.recs.set(id, rec);
      this.onEvent(id, sb.id, 0);
      return rec;
    } catch (e) {
      // The script may have failed after mounting (mkfifo): unmount before removing anything.
      if (existsSync(rootfs) && isMountpoint(rootfs)) await runCommand('umount', [rootfs], { allowFail: true });
      await fsp.rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  private buildRecord(id: string, dir: string, sb: SandboxRecord, config: CriObject, img: ImageRecord): ContainerRecord {
    const sc = config.linux?.security_context ?? {};
    const rootfs = join(dir, 'rootfs');
    let user: { uid: number; gid: number; groups: number[] };
    if (sc.run_as_username) user = resolveUser(rootfs, sc.run_as_username);
    else if (sc.run_as_user) user = resolveUser(rootfs, String(sc.run_as_user.value));
    else user = resolveUser(rootfs, img.config.config?.User ?? '');
    if (sc.run_as_group) {
      if (!sc.run_as_user && !sc.run_as_username) throw new InvalidArgumentError('CreateContainer: run_as_group needs run_as_user or run_as_username');
      user.gid = Number(sc.run_as_group.value);
    }
    // Strict: only the groups asked for, none from the image's /etc/group (Merge, the default, adds those).
    if (sc.supplemental_groups_policy === 1 || sc.supplemental_groups_policy === 'Strict') user.groups = [];
    if (Array.isArray(sc.supplemental_groups)) for (const g of sc.supplemental_groups) if (!user.groups.includes(Number(g))) user.groups.push(Number(g));
    let logPath: string | undefined;
    if (config.log_path) {
      // CRI: log_path is relative to the sandbox's log_directory, and must stay inside it.
      const base = sb.config.log_directory as string;
      if (!base) throw new InvalidArgumentError('CreateContainer: log_path is set but the sandbox has no log_directory');
      if (isAbsolute(config.log_path)) throw new InvalidArgumentError(`CreateContainer: log_path ${JSON.stringify(config.log_path)} must be relative to the sandbox's log_directory`);
      logPath = resolve(base, config.log_path);
      if (!logPath.startsWith(resolve(base) + '/')) throw new InvalidArgumentError(`CreateContainer: log_path ${JSON.stringify(config.log_path)} leaves the sandbox's log_directory ${JSON.stringify(base)}; use a path inside it`);
    }
    return {
      id, sandboxId: sb.id, config, imageId: img.id,
      imageRef: img.repoDigests[0] ?? img.id,
      createdAt: Number(nowNs()), startedAt: 0, finishedAt: 0, exitCode: 0,
      state: 'created', reason: '', message: '', logPath,
      cgroupsPath: `${sb.cgroupParent}/${id}`,
      dir, stopSignal: stopSignalOf(config.annotations) || img.config.config?.StopSignal || 'SIGTERM', user,
      resources: config.linux?.resources ?? null,
    };
  }

  private spec(rec: ContainerRecord, sb: SandboxRecord, config: CriObject, img: ImageRecord, rootfs: string): object {
    const sc = config.linux?.security_context ?? {};
    const res = config.linux?.resources ?? {};
    const args = processArgs(config.command ?? [], config.args ?? [], img.config.config);
    if (args.length === 0) throw new InvalidArgumentError('CreateContainer: no command: the request has none and the image has no Entrypoint/Cmd');
    const mounts: OciMount[] = [];
    const taken = new Set<string>();
    let rootfsPropagation: string | undefined;
    for (const m of config.mounts ?? []) {
      if (!m.container_path || !posix.isAbsolute(m.container_path)) throw new InvalidArgumentError(`CreateContainer: mount container_path ${JSON.stringify(m.container_path)} must be absolute`);
      if (!m.host_path || !existsSync(m.host_path)) throw new InvalidArgumentError(`CreateContainer: mount host_path ${JSON.stringify(m.host_path)} does not exist`);
      const prop = m.propagation === 1 || m.propagation === 'PROPAGATION_HOST_TO_CONTAINER' ? 'rslave' : m.propagation === 2 || m.propagation === 'PROPAGATION_BIDIRECTIONAL' ? 'rshared' : 'rprivate';
      // As containerd: the source must propagate, and the container's root then does too.
      if (prop !== 'rprivate') {
        checkPropagation(m.host_path, prop);
        if (prop === 'rshared') rootfsPropagation = 'rshared';
        else rootfsPropagation ??= 'rslave';
      }
      mounts.push({ destination: m.container_path, type: 'bind', source: m.host_path, options: ['rbind', prop, m.readonly ? 'ro' : 'rw'] });
      taken.add(posix.normalize(m.container_path));
    }
    const tmpfs = config.annotations?.['shoal.io/tmpfs'];
    if (tmpfs) {
      let list: { path: string; options?: string[] }[];
      try { list = JSON.parse(tmpfs); } catch { throw new InvalidArgumentError('CreateContainer: annotation shoal.io/tmpfs must be a JSON array of {"path": "/dir", "options": ["size=64m"]}'); }
      for (const t of list) {
        if (!t?.path || !posix.isAbsolute(t.path)) throw new InvalidArgumentError(`CreateContainer: tmpfs path ${JSON.stringify(t?.path)} must be absolute`);
        mounts.push({ destination: t.path, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', ...(t.options ?? [])] });
        taken.add(posix.normalize(t.path));
      }
    }
    for (const f of ['hostname', 'hosts', 'resolv.conf']) {
      const dest = `/etc/${f}`;
      if (taken.has(dest)) continue;
      if (f === 'resolv.conf' && statSync(join(sb.dir, f)).size === 0) continue;
      mounts.push({ destination: dest, type: 'bind', source: join(sb.dir, f), options: ['rbind', 'rprivate', sc.readonly_rootfs ? 'ro' : 'rw'] });
    }
    const namespaces: { type: string; path?: string }[] = [{ type: 'mount' }];
    const pidNs = this.pidNamespace(sb, sc.namespace_options ?? {});
    if (pidNs) namespaces.push(pidNs);
    if (sb.netns) namespaces.push({ type: 'network', path: sb.netns }); // none listed: the host's network
    if (sb.ipcns) namespaces.push({ type: 'ipc', path: sb.ipcns });
    if (sb.utsns) namespaces.push({ type: 'uts', path: sb.utsns });
    const pidsMax = res.unified?.['pids.max'];
    let pidsLimit = this.opts.defaultPidsLimit || undefined;
    if (pidsMax !== undefined) {
      if (!/^\d+$/.test(pidsMax)) throw new InvalidArgumentError(`CreateContainer: unified pids.max ${JSON.stringify(pidsMax)} must be a positive integer`);
      pidsLimit = Number(pidsMax);
    }
    if (res.memory_limit_in_bytes && res.memory_limit_in_bytes < 4 * 1024 * 1024) {
      throw new InvalidArgumentError(`CreateContainer: memory limit ${res.memory_limit_in_bytes} bytes is below the 4 MiB minimum`);
    }
    // Huge page limits go to runc's hugetlb cgroup. Without that controller none can be enforced:
    // limits of 0 (the kubelet sends one for each size not asked for) are then dropped, and a
    // request for huge pages is refused.
    let hugepages = res.hugepage_limits as { page_size: string; limit: number }[] | undefined;
    if (hugepages?.length && !hugetlbSupported()) {
      const asked = hugepages.find((h) => Number(h.limit) > 0);
      if (asked) throw new PreconditionError(`CreateContainer: linux.resources.hugepage_limits asks for ${asked.limit} bytes of ${asked.page_size} huge pages, but this host has no hugetlb cgroup controller to limit them`);
      hugepages = undefined;
    }
    const imgEnv = img.config.config?.Env ?? [];
    const caps = capabilities(sc.capabilities?.add_capabilities ?? [], sc.capabilities?.drop_capabilities ?? [], !!sc.privileged);
    const devs = criDevices(config.devices ?? []);
    if (sc.privileged && !sb.config.linux?.security_context?.privileged) throw new InvalidArgumentError('CreateContainer: a privileged container needs a privileged pod sandbox (linux.security_context.privileged)');
    return buildSpec({
      args,
      env: mergeEnv(imgEnv, config.envs ?? []),
      cwd: config.working_dir || img.config.config?.WorkingDir || '/',
      uid: rec.user.uid, gid: rec.user.gid, additionalGids: rec.user.groups,
      rootfs, readonlyRootfs: !!sc.readonly_rootfs,
      hostname: sb.utsns ? sb.hostname : undefined,
      namespaces,
      cgroupsPath: rec.cgroupsPath,
      mounts,
      resources: { ...resourcesFromCri({ ...res, hugepage_limits: hugepages }), pidsLimit },
      privileged: !!sc.privileged,
      caps,
      seccomp: seccompFor(sc, caps),
      devices: [...(sc.privileged ? hostDevices() : []), ...devs.devices],
      deviceRules: devs.rules,
      rootfsPropagation,
      terminal: !!config.tty,
      noNewPrivs: !!sc.no_new_privs,
      maskedPaths: sc.masked_paths,
      readonlyPaths: sc.readonly_paths,
      sysctls: sb.config.linux?.sysctls,
    });
  }

  /**
   * The container's PID namespace: POD (the default) joins the pod's, held by its infra process;
   * CONTAINER gets its own; NODE none (the host's); TARGET joins a running container's.
   */
  private pidNamespace(sb: SandboxRecord, nsOpts: CriObject): { type: string; path?: string } | undefined {
    const mode = nsOpts.pid ?? 0;
    if (mode === 2) return undefined;
    if (mode === 3) {
      if (!nsOpts.target_id) throw new InvalidArgumentError('CreateContainer: pid NamespaceMode TARGET needs namespace_options.target_id');
      const target = this.find(nsOpts.target_id);
      if (target.sandboxId !== sb.id) throw new InvalidArgumentError(`CreateContainer: target container ${target.id} is in another pod`);
      if (target.state !== 'running' || !target.pid) throw new PreconditionError(`CreateContainer: target container ${target.id} is not running`);
      return { type: 'pid', path: `/proc/${target.pid}/ns/pid` };
    }
    if (mode === 0 && sb.infraPid) {
      if (!isInfraOf(sb.infraPid, sb.dir)) throw new PreconditionError(`CreateContainer: the infra process holding pod ${sb.id}'s PID namespace is gone; run a new sandbox`);
      return { type: 'pid', path: `/proc/${sb.infraPid}/ns/pid` };
    }
    // POD in a pod without a shared namespace (made with CONTAINER or NODE) gets one of its own.
    const sbMode = sb.config.linux?.security_context?.namespace_options?.pid ?? 0;
    if (mode === 0 && sbMode === 2) return undefined;
    return { type: 'pid' };
  }

  async start(id: string): Promise<void> {
    const rec = this.find(id);
    if (rec.state !== 'created') throw new PreconditionError(`StartContainer: container ${rec.id} is ${rec.state}, only a created container can be started`);
    if (this.starting.has(rec.id)) throw new PreconditionError(`StartContainer: container ${rec.id} is already being started`);
    this.starting.add(rec.id);
    try { await this.startCreated(rec); } finally { this.starting.delete(rec.id); }
  }

  private async startCreated(rec: ContainerRecord): Promise<void> {
    const dir = rec.dir;
    // Hold the read ends before the monitor starts so a container that exits at once cannot
    // take its output with it; reading starts once the monitor holds the write side.
    const fds = ['stdout.fifo', 'stderr.fifo'].map((f) => openSync(join(dir, f), fsc.O_RDONLY | fsc.O_NONBLOCK));
    const tty = !!rec.config.tty;
    const mode = `${rec.config.stdin ? 'i' : ''}${tty ? 't' : ''}`;
    // A terminal's console socket is made by the monitor in the bundle, where runc runs: the
    // relative path keeps it under the 108 bytes a socket address may have.
    const runcArgs = this.runc.args('--log', join(dir, 'runc.log'), '--log-format', 'json', 'run', '-d', ...(tty ? ['--console-socket', 'console.sock'] : []), '--bundle', dir, '--pid-file', join(dir, 'pid'), rec.id);
    const timeoutMs = this.opts.startTimeoutMs ?? 60_000;
    const tr0 = performance.now();
    let answer: string;
    try {
      // The shim forks a monitor, which runs `runc run -d` and answers once runc has started
      // the container: "<monitor pid> <container pid> <start time ns>".
      answer = await this.shim.request(mode ? 'start-io' : 'start', [dir, ...(mode ? [mode] : []), this.runc.bin, ...runcArgs], timeoutMs);
    } catch (e) {
      for (const fd of fds) closeSync(fd);
      if (e instanceof ShimError && existsSync(join(dir, 'exitcode'))) {
        // runc itself failed: its log says why.
        const msg = this.runcError(dir) || (e as Error).message;
        await this.failStart(rec, msg);
        throw new Error(`StartContainer ${rec.id}: ${msg}`);
      }
      // runc hangs, or the shim went away with the monitor possibly still at work: take it all
      // down (the monitor's process group: monitor, runc, runc init) so the container cannot
      // start behind our back later, and say so.
      const mon = findMonitor(dir);
      if (mon) { try { process.kill(-mon, 'SIGKILL'); } catch { /* gone */ } }
      await this.runc.delete(rec.id).catch(() => {});
      const why = e instanceof DeadlineError ? `runc did not start the container within ${timeoutMs / 1000} s` : `the container monitor could not be started or lost: ${(e as Error).message}`;
      await this.failStart(rec, why);
      const msg = `StartContainer ${rec.id}: ${why}; it was killed and marked exited (StartError)`;
      throw e instanceof DeadlineError ? new DeadlineError(msg) : new Error(msg);
    }
    const tr1 = performance.now();
    traceAdd('st.run', tr1 - tr0);
    const [mpid, cpid, startNs, runcNs] = answer.split(' ').map(Number);
    traceAdd('st.runc', (runcNs ?? 0) / 1e6);
    rec.monitorPid = mpid || undefined;
    rec.pid = cpid || undefined;
    rec.state = 'running';
    rec.startedAt = startNs || Number(nowNs());
    this.attach(rec, fds);
    this.onEvent(rec.id, rec.sandboxId, 1);
    // Recorded without waiting for the disk and without fsync: after a crash, the pid file runc
    // wrote says the container was started, and restore takes pid and start time from it and
    // finds the monitor in /proc. The write happens in the background.
    this.state.saveContainer(rec, { durable: false }).catch(() => {});
    traceAdd('st.after', performance.now() - tr1);
  }

  private async failStart(rec: ContainerRecord, msg: string): Promise<void> {
    rec.state = 'exited'; rec.exitCode = 128; rec.reason = 'StartError'; rec.message = msg;
    rec.finishedAt = Number(nowNs());
    await this.state.saveContainer(rec);
    this.onEvent(rec.id, rec.sandboxId, 2);
  }

  private runcError(dir: string): string {
    try {
      const lines = readFileSync(join(dir, 'runc.log'), 'utf8').trim().split('\n').reverse();
      for (const l of lines) {
        try { const j = JSON.parse(l) as { level?: string; msg?: string }; if (j.level === 'error' && j.msg) return j.msg; } catch { /* not json */ }
      }
    } catch { /* no log */ }
    return '';
  }

  private attach(rec: ContainerRecord, fds: number[]): void {
    const log = new ContainerLog(rec.logPath);
    const pump: Pump = { sockets: [], log, open: 2 };
    this.pumps.set(rec.id, pump);
    (['stdout', 'stderr'] as const).forEach((stream, i) => {
      const s = new Socket({ fd: fds[i]!, readable: true, writable: false });
      pump.sockets.push(s);
      s.on('data', (b: Buffer) => {
        log.write(stream, b);
        for (const l of this.listeners.get(rec.id) ?? []) l.data(stream, b);
      });
      let done = false;
      const finish = () => {
        if (done || this.detaching) return;
        done = true;
        log.end(stream);
        if (--pump.open === 0) void this.finalize(rec);
      };
      s.on('end', finish);
      s.on('error', finish);
      s.on('close', finish);
    });
    // The monitor writes the exit code, then waits to be released; releasing it closes the
    // pipes' last write ends, so the streams above end once everything was read.
    const exitFile = join(rec.dir, 'exitcode');
    const release = () => {
      if (!this.pumps.has(rec.id) || pump.collectTimer || !existsSync(exitFile)) return;
      // Processes the container left behind (possible in a pod's shared PID namespace, where
      // its end does not end them) may hold its output pipes: the exit counts once what was
      // written had 2 s to arrive, as containerd reports an exit without waiting for the pipes.
      pump.exitTimer ??= setTimeout(() => { for (const s of pump.sockets) s.destroy(); }, 2000);
      const tryOpen = () => {
        pump.collectTimer = undefined;
        if (!this.pumps.has(rec.id) || this.detaching) return;
        try {
          closeSync(openSync(join(rec.dir, 'collect.fifo'), fsc.O_WRONLY | fsc.O_NONBLOCK));
        } catch {
          // ENXIO: the monitor is not waiting yet (or is gone: then the streams end anyway).
          pump.collectTimer = setTimeout(tryOpen, 20);
        }
      };
      tryOpen();
    };
    try {
      pump.watcher = watch(rec.dir, (_ev, name) => { if (name === 'exitcode') release(); });
      pump.watcher.on('error', () => {});
    } catch { /* the directory is gone: the streams end on their own */ }
    release();
  }

  /** Records how the container ended (called once both log streams reached end-of-file). */
  private async finalize(rec: ContainerRecord): Promise<void> {
    const pump = this.pumps.get(rec.id);
    this.pumps.delete(rec.id);
    if (pump) {
      pump.watcher?.close();
      if (pump.collectTimer) clearTimeout(pump.collectTimer);
      if (pump.exitTimer) clearTimeout(pump.exitTimer);
      for (const s of pump.sockets) s.destroy();
      await pump.log.close();
    }
    if (rec.state !== 'running') return;
    const exitFile = join(rec.dir, 'exitcode');
    if (existsSync(exitFile)) {
      rec.exitCode = Number(readFileSync(exitFile, 'utf8').trim());
      rec.finishedAt = Math.max(rec.startedAt, Math.round(statSync(exitFile).mtimeMs * 1e6));
      const oom = oomKillCount(rec.cgroupsPath) > 0;
      rec.reason = oom ? 'OOMKilled' : rec.exitCode === 0 ? 'Completed' : 'Error';
      rec.message = oom ? 'the container exceeded its memory limit and the kernel killed it' : '';
      if (rec.exitCode === 255) {
        const e = this.runcError(rec.dir);
        if (e) rec.message = e;
      }
    } else {
      rec.exitCode = 255;
      rec.finishedAt = Number(nowNs());
      rec.reason = 'Unknown';
      rec.message = 'the exit status was lost: the container monitor disappeared before recording it';
    }
    rec.state = 'exited';
    if (this.recs.has(rec.id)) await this.state.saveContainer(rec);
    this.onEvent(rec.id, rec.sandboxId, 2);
    for (const l of this.listeners.get(rec.id) ?? []) l.exit(rec.exitCode);
    this.listeners.delete(rec.id);
    for (const w of this.exitWaiters.get(rec.id) ?? []) w();
    this.exitWaiters.delete(rec.id);
  }

  /** Resolves true once the container is no longer running, false after ms. */
  waitExit(id: string, ms: number): Promise<boolean> {
    const rec = this.recs.get(id);
    if (!rec || rec.state !== 'running') return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      const list = this.exitWaiters.get(id) ?? [];
      list.push(() => { clearTimeout(timer); resolve(true); });
      this.exitWaiters.set(id, list);
    });
  }

  async stop(id: string, timeoutSec: number): Promise<void> {
    const rec = this.find(id);
    if (rec.state !== 'running') return;
    if (timeoutSec > 0) {
      await this.runc.kill(rec.id, rec.stopSignal);
      if (await this.waitExit(rec.id, timeoutSec * 1000)) return;
    }
    await this.runc.kill(rec.id, 'SIGKILL', true);
    if (!(await this.waitExit(rec.id, 15000))) throw new Error(`StopContainer: container ${rec.id} did not exit 15 s after SIGKILL`);
  }

  async remove(id: string): Promise<void> {
    const rec = this.recs.get(id) ?? [...this.recs.values()].find((c) => c.id.startsWith(id) && id.length >= 12);
    if (!rec) return; // idempotent
    if (rec.state === 'running') await this.stop(rec.id, 0);
    await this.runc.delete(rec.id);
    const rootfs = join(rec.dir, 'rootfs');
    const r = await runCommand('umount', [rootfs], { allowFail: true });
    if (r.code !== 0 && !/not mounted/.test(r.stderr)) await runCommand('umount', ['-l', rootfs], { allowFail: true });
    this.recs.delete(rec.id);
    await fsp.rm(rec.dir, { recursive: true, force: true });
    this.onEvent(rec.id, rec.sandboxId, 3);
  }

  /** Changes CPU, memory and pids limits of a created or running container. */
  async updateResources(id: string, res: CriObject): Promise<void> {
    const rec = this.find(id);
    if (rec.state === 'exited' || rec.state === 'unknown') throw new PreconditionError(`UpdateContainerResources: container ${rec.id} is not running`);
    if (res.memory_limit_in_bytes && res.memory_limit_in_bytes < 4 * 1024 * 1024) throw new InvalidArgumentError(`UpdateContainerResources: memory limit ${res.memory_limit_in_bytes} bytes is below the 4 MiB minimum`);
    const pidsMax = res.unified?.['pids.max'];
    if (pidsMax !== undefined && !/^\d+$/.test(pidsMax)) throw new InvalidArgumentError(`UpdateContainerResources: unified pids.max ${JSON.stringify(pidsMax)} must be a positive integer`);
    const oci = memoryCpuResources(resourcesFromCri(res));
    if (pidsMax !== undefined) oci['pids'] = { limit: Number(pidsMax) };
    // The bundle's spec is updated too, for a container not started yet.
    const specFile = join(rec.dir, 'config.json');
    const spec = JSON.parse(await fsp.readFile(specFile, 'utf8')) as { linux: { resources: Record<string, unknown> } };
    spec.linux.resources = { ...spec.linux.resources, ...oci };
    await fsp.writeFile(specFile, JSON.stringify(spec));
    if (rec.state === 'running') await runCommand(this.runc.bin, this.runc.args('update', '-r', '-', rec.id), { input: JSON.stringify(oci) });
    rec.resources = { ...(rec.resources ?? {}), ...res };
    await this.state.saveContainer(rec);
  }

  async reopenLog(id: string): Promise<void> {
    const rec = this.find(id);
    const pump = this.pumps.get(rec.id);
    if (rec.state !== 'running' || !pump) throw new PreconditionError(`ReopenContainerLog: container ${rec.id} is not running`);
    await pump.log.reopen();
  }

  /**
   * A writer into a running container's stdin (Attach), or undefined when it has none: created
   * without stdin, or stdin already closed (stdin_once). The FIFO is held by the monitor, so this
   * works after a runtime restart too; several writers may be open at once.
   */
  openStdin(id: string): { write(b: Buffer): void; end(): void } | undefined {
    const rec = this.find(id);
    if (!rec.config.stdin || rec.stdinClosed || rec.state !== 'running') return undefined;
    let fd: number;
    try { fd = openSync(join(rec.dir, 'stdin.fifo'), fsc.O_WRONLY | fsc.O_NONBLOCK); } catch { return undefined; } // ENXIO/ENOENT: no monitor holds it
    const s = new Socket({ fd, readable: false, writable: true });
    s.on('error', () => { s.destroy(); }); // EPIPE: the container and its monitor are gone
    return {
      write: (b) => { if (!s.destroyed && !s.writableEnded) s.write(b); },
      end: () => { if (!s.destroyed && !s.writableEnded) s.end(() => s.destroy()); },
    };
  }

  /** Tells a container's monitor a command on its control FIFO (see shoal-shim.c); false if none listens. */
  private control(rec: ContainerRecord, line: string): boolean {
    try {
      const fd = openSync(join(rec.dir, 'ctl.fifo'), fsc.O_WRONLY | fsc.O_NONBLOCK);
      try { writeSync(fd, `${line}\n`); } finally { closeSync(fd); }
      return true;
    } catch { return false; }
  }

  /** Sets the terminal size of a container created with a tty. */
  resize(id: string, width: number, height: number): void {
    const rec = this.find(id);
    if (rec.config.tty && rec.state === 'running') this.control(rec, `w ${Math.floor(width)} ${Math.floor(height)}`);
  }

  /**
   * Closes a container's stdin for good (stdin_once, after its first attach): recorded first, so
   * a restarted runtime knows; then the monitor lets go of the FIFO, and the process reads
   * end-of-file (on a terminal, the terminal hangs up).
   */
  async closeStdin(id: string): Promise<void> {
    const rec = this.find(id);
    if (!rec.config.stdin || rec.stdinClosed) return;
    rec.stdinClosed = true;
    await this.state.saveContainer(rec);
    if (rec.state === 'running') this.control(rec, 'c');
  }

  /** Follows a running container's output from now on (Attach); returns the unsubscribe. */
  follow(id: string, l: OutputListener): () => void {
    const rec = this.find(id);
    if (rec.state !== 'running' || !this.pumps.has(rec.id)) { l.exit(rec.exitCode); return () => {}; }
    const set = this.listeners.get(rec.id) ?? new Set<OutputListener>();
    set.add(l);
    this.listeners.set(rec.id, set);
    return () => { set.delete(l); };
  }

  /** Closes log readers without touching containers (runtime shutdown). */
  detachAll(): void {
    this.detaching = true;
    for (const p of this.pumps.values()) {
      p.watcher?.close();
      if (p.collectTimer) clearTimeout(p.collectTimer);
      if (p.exitTimer) clearTimeout(p.exitTimer);
      for (const s of p.sockets) s.destroy();
      void p.log.close();
    }
    this.pumps.clear();
  }

  cgroupInfo(): string { return `cgroup v${cgroupVersion()}`; }
}

/**
 * A stop signal the client chose for this container (annotation `io.shoal.stop-signal`, e.g.
 * SIGQUIT): the CRI carries none before v1.33's stop_signal, so shoal's agent passes it this way.
 * It wins over the image's STOPSIGNAL, as Kubernetes' container stopSignal does.
 */
export function stopSignalOf(annotations: Record<string, string> | undefined): string | undefined {
  const v = annotations?.['io.shoal.stop-signal'];
  if (!v) return undefined;
  const sig = v.startsWith('SIG') ? v : `SIG${v}`;
  if (!/^SIG[A-Z0-9]+$/.test(sig)) throw new InvalidArgumentError(`CreateContainer: annotation io.shoal.stop-signal ${JSON.stringify(v)} is not a signal name like SIGTERM`);
  return sig;
}
