// The CRI gRPC server (runtime.v1 RuntimeService + ImageService) on a Unix socket: request
// validation, mapping records to CRI messages, errors to gRPC status codes. Every RPC of both
// services is registered; the ones not implemented answer UNIMPLEMENTED.
import * as grpc from '@grpc/grpc-js';
import { existsSync, statfsSync, unlinkSync } from 'node:fs';
import { GuardedServer, type GuardLimits } from '../proto/guarded-server.js';
import { loadProto } from '../proto/load.js';
import { InvalidArgumentError, NotFoundError, PreconditionError } from './container.js';
import { DeadlineError, UnimplementedError } from './errors.js';
import { execSync } from './exec.js';
import { ImageInUseError, type ImageRecord } from './image-store.js';
import { UnsafeLayerError } from './layer-unpack.js';
import { loadArchive } from './archive-load.js';
import { nowNs } from './logs.js';
import type { Runtime, RuntimeEvent } from './runtime.js';
import type { ContainerRecord, CriObject, SandboxRecord } from './state.js';
import { containerStats, podSandboxStats } from './stats.js';
import { traced } from './trace.js';

export const RUNTIME_VERSION = '0.1.0';

const STATE = { created: 0, running: 1, exited: 2, unknown: 3 } as const;

type Handler = (req: CriObject) => Promise<CriObject>;

function grpcError(e: unknown): grpc.ServiceError {
  const err = e as Error;
  let code = grpc.status.UNKNOWN;
  if (err instanceof NotFoundError) code = grpc.status.NOT_FOUND;
  else if (err instanceof PreconditionError || err instanceof ImageInUseError) code = grpc.status.FAILED_PRECONDITION;
  else if (err instanceof InvalidArgumentError || err instanceof UnsafeLayerError) code = grpc.status.INVALID_ARGUMENT;
  else if (err instanceof DeadlineError) code = grpc.status.DEADLINE_EXCEEDED;
  else if (err instanceof UnimplementedError) code = grpc.status.UNIMPLEMENTED;
  else if (/not found/.test(err.message)) code = grpc.status.NOT_FOUND;
  return Object.assign(new Error(err.message), { code, details: err.message, metadata: new grpc.Metadata() }) as grpc.ServiceError;
}

function unary(name: string, fn: Handler): grpc.handleUnaryCall<CriObject, CriObject> {
  return (call, cb) => {
    traced(name, () => fn(call.request)).then((r) => cb(null, r), (e) => cb(grpcError(e)));
  };
}

function unimplemented(name: string): grpc.handleUnaryCall<CriObject, CriObject> {
  return (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED, details: `${name} is not implemented by shoal-runtime`, metadata: new grpc.Metadata(), name: 'Error', message: `${name} is not implemented` });
}

const matchLabels = (labels: Record<string, string> | undefined, sel: Record<string, string> | undefined) =>
  Object.entries(sel ?? {}).every(([k, v]) => (labels ?? {})[k] === v);

function imageMsg(i: ImageRecord): CriObject {
  const user = i.config.config?.User ?? '';
  const u = user.split(':')[0] ?? '';
  return {
    id: i.id, repo_tags: i.repoTags, repo_digests: i.repoDigests, size: i.size,
    uid: /^\d+$/.test(u) ? { value: Number(u) } : null,
    username: /^\d+$/.test(u) ? '' : u,
    spec: { image: i.id, annotations: {} }, pinned: false,
  };
}

function sandboxStatus(s: SandboxRecord): CriObject {
  const ns = s.config.linux?.security_context?.namespace_options ?? {};
  return {
    id: s.id, metadata: s.config.metadata, state: s.state === 'ready' ? 0 : 1, created_at: s.createdAt,
    network: { ip: s.network && !s.network.down ? s.network.ips[0] ?? '' : '', additional_ips: s.network && !s.network.down ? s.network.ips.slice(1).map((ip) => ({ ip })) : [] },
    linux: { namespaces: { options: { network: ns.network ?? 0, pid: ns.pid ?? 0, ipc: ns.ipc ?? 0, target_id: '' } } },
    labels: s.config.labels ?? {}, annotations: s.config.annotations ?? {}, runtime_handler: s.runtimeHandler,
  };
}

function containerStatus(c: ContainerRecord): CriObject {
  return {
    id: c.id, metadata: c.config.metadata, state: STATE[c.state], created_at: c.createdAt,
    started_at: c.startedAt, finished_at: c.finishedAt, exit_code: c.exitCode,
    image: c.config.image, image_ref: c.imageRef, image_id: c.imageId, reason: c.reason, message: c.message,
    labels: c.config.labels ?? {}, annotations: c.config.annotations ?? {},
    mounts: c.config.mounts ?? [], log_path: c.logPath ?? '',
    resources: c.resources ? { linux: c.resources } : null,
    user: { linux: { uid: c.user.uid, gid: c.user.gid, supplemental_groups: c.user.groups } },
  };
}

function containerMsg(c: ContainerRecord): CriObject {
  return {
    id: c.id, pod_sandbox_id: c.sandboxId, metadata: c.config.metadata, image: c.config.image,
    image_ref: c.imageRef, image_id: c.imageId, state: STATE[c.state], created_at: c.createdAt,
    labels: c.config.labels ?? {}, annotations: c.config.annotations ?? {},
  };
}

const ARCHIVE = /^(docker-archive|oci-archive):(\/.+)$/;

export function criHandlers(rt: Runtime): { runtime: Record<string, Handler>; image: Record<string, Handler> } {
  const runtime: Record<string, Handler> = {
    Version: async () => ({ version: '0.1.0', runtime_name: 'shoal-runtime', runtime_version: RUNTIME_VERSION, runtime_api_version: 'v1' }),
    Status: async (req) => ({
      status: { conditions: [
        { type: 'RuntimeReady', status: true, reason: '', message: '' },
        // From the CNI config directory; without a config pods still run, with loopback only.
        (() => { const n = rt.cni.status(); return { type: 'NetworkReady', status: n.ready, reason: n.reason, message: n.message }; })(),
      ] },
      info: req.verbose ? { config: JSON.stringify({ root: rt.opts.root, cgroup: rt.containers.cgroupInfo() }) } : {},
      runtime_handlers: [{ name: '', features: { recursive_read_only_mounts: false, user_namespaces: false } }, { name: 'runc', features: { recursive_read_only_mounts: false, user_namespaces: false } }],
      features: { supplemental_groups_policy: false },
    }),
    RunPodSandbox: async (req) => ({ pod_sandbox_id: (await rt.runPodSandbox(req.config, req.runtime_handler)).id }),
    StopPodSandbox: async (req) => { await rt.stopPodSandbox(req.pod_sandbox_id); return {}; },
    RemovePodSandbox: async (req) => { await rt.removePodSandbox(req.pod_sandbox_id); return {}; },
    PodSandboxStatus: async (req) => {
      const s = rt.findSandbox(req.pod_sandbox_id);
      const info: Record<string, string> = req.verbose ? { info: JSON.stringify({
        netns: s.netns ?? '', ipcns: s.ipcns ?? '', utsns: s.utsns ?? '', cgroupParent: s.cgroupParent, pid: s.infraPid ?? 0,
        cniResult: s.network?.result ?? null, cniNetwork: s.network ? { name: s.network.confList.name, file: s.network.confList.file, down: !!s.network.down } : null,
        // CHECK runs where asked: a verbose status.
        cniCheck: await rt.checkNetwork(s),
      }) } : {};
      return { status: sandboxStatus(s), info, containers_statuses: [], timestamp: Number(nowNs()) };
    },
    ListPodSandbox: async (req) => {
      const f = req.filter;
      const items = rt.listSandboxes().filter((s) => !f || (
        (!f.id || s.id.startsWith(f.id)) && (!f.state || (f.state.state === (s.state === 'ready' ? 0 : 1))) && matchLabels(s.config.labels, f.label_selector)
      )).map((s) => {
        const st = sandboxStatus(s);
        return { id: st.id, metadata: st.metadata, state: st.state, created_at: st.created_at, labels: st.labels, annotations: st.annotations, runtime_handler: st.runtime_handler };
      });
      return { items };
    },
    CreateContainer: async (req) => ({ container_id: await rt.createContainer(req.pod_sandbox_id, req.config) }),
    StartContainer: async (req) => { await rt.containers.start(req.container_id); return {}; },
    StopContainer: async (req) => {
      try { await rt.containers.stop(req.container_id, Number(req.timeout ?? 0)); } catch (e) { if (!(e instanceof NotFoundError)) throw e; }
      return {};
    },
    RemoveContainer: async (req) => { await rt.containers.remove(req.container_id); return {}; },
    ListContainers: async (req) => {
      const f = req.filter;
      const containers = rt.containers.list().filter((c) => !f || (
        (!f.id || c.id.startsWith(f.id)) && (!f.pod_sandbox_id || c.sandboxId.startsWith(f.pod_sandbox_id))
        && (!f.state || f.state.state === STATE[c.state]) && matchLabels(c.config.labels, f.label_selector)
      )).map(containerMsg);
      return { containers };
    },
    ContainerStatus: async (req) => {
      const c = rt.containers.find(req.container_id);
      const info: Record<string, string> = req.verbose ? { info: JSON.stringify({ pid: c.pid ?? 0, bundle: c.dir, cgroupsPath: c.cgroupsPath }) } : {};
      return { status: containerStatus(c), info };
    },
    ReopenContainerLog: async (req) => { await rt.containers.reopenLog(req.container_id); return {}; },
    ExecSync: async (req) => {
      const c = rt.containers.find(req.container_id);
      if (c.state !== 'running') throw new PreconditionError(`ExecSync: container ${c.id} is not running`);
      if (!Array.isArray(req.cmd) || req.cmd.length === 0) throw new InvalidArgumentError('ExecSync: cmd is empty');
      const r = await execSync(rt.runc, c.id, req.cmd, Number(req.timeout ?? 0));
      if (r.timedOut) throw new DeadlineError(`ExecSync: command timed out after ${req.timeout} s`);
      return { stdout: r.stdout, stderr: r.stderr, exit_code: r.exitCode };
    },
    Exec: async (req) => {
      const c = rt.containers.find(req.container_id);
      if (c.state !== 'running') throw new PreconditionError(`Exec: container ${c.id} is not running`);
      if (!Array.isArray(req.cmd) || req.cmd.length === 0) throw new InvalidArgumentError('Exec: cmd is empty');
      if (!req.stdin && !req.stdout && !req.stderr) throw new InvalidArgumentError('Exec: one of stdin, stdout and stderr must be set');
      // With a TTY, stdout and stderr are one stream (the terminal), as the CRI defines.
      if (req.tty && req.stderr) throw new InvalidArgumentError('Exec: tty and stderr cannot both be set (a terminal merges stderr into stdout)');
      return { url: rt.streaming.execUrl({ kind: 'exec', containerId: c.id, cmd: req.cmd, stdin: !!req.stdin, stdout: !!req.stdout, stderr: !!req.stderr, tty: !!req.tty }) };
    },
    Attach: async (req) => {
      const c = rt.containers.find(req.container_id);
      if (c.state !== 'running') throw new PreconditionError(`Attach: container ${c.id} is not running`);
      if (!req.stdin && !req.stdout && !req.stderr) throw new InvalidArgumentError('Attach: one of stdin, stdout and stderr must be set');
      if (req.tty && req.stderr) throw new InvalidArgumentError('Attach: tty and stderr cannot both be set (a terminal merges stderr into stdout)');
      if (req.stdin && !c.config.stdin) throw new InvalidArgumentError(`Attach: container ${c.id} was created without stdin; attach without stdin, or create the container with stdin: true`);
      if (req.tty && !c.config.tty) throw new InvalidArgumentError(`Attach: container ${c.id} was created without a tty; attach without tty, or create the container with tty: true`);
      return { url: rt.streaming.execUrl({ kind: 'attach', containerId: c.id, cmd: [], stdin: !!req.stdin, stdout: !!req.stdout, stderr: !!req.stderr, tty: !!req.tty }) };
    },
    PortForward: async (req) => {
      const sb = rt.findSandbox(req.pod_sandbox_id);
      if (sb.state !== 'ready') throw new PreconditionError(`PortForward: pod sandbox ${sb.id} is not ready`);
      const ports: number[] = (req.port ?? []).map(Number);
      for (const p of ports) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new InvalidArgumentError(`PortForward: port ${p} is not 1-65535`);
      return { url: rt.streaming.execUrl({ kind: 'portforward', containerId: sb.id, cmd: [], stdin: true, stdout: true, stderr: false, netns: sb.netns, ports }) };
    },
    ContainerStats: async (req) => ({ stats: await containerStats(rt.containers.find(req.container_id)) }),
    ListContainerStats: async (req) => {
      const f = req.filter;
      const list = rt.containers.list().filter((c) => c.state === 'running' && (!f || (
        (!f.id || c.id.startsWith(f.id)) && (!f.pod_sandbox_id || c.sandboxId.startsWith(f.pod_sandbox_id)) && matchLabels(c.config.labels, f.label_selector))));
      return { stats: await Promise.all(list.map(containerStats)) };
    },
  };
  Object.assign(runtime, {
    PodSandboxStats: async (req: CriObject) => {
      const sb = rt.findSandbox(req.pod_sandbox_id);
      return { stats: await podSandboxStats(sb, rt.containers.list().filter((c) => c.sandboxId === sb.id)) };
    },
    ListPodSandboxStats: async (req: CriObject) => {
      const f = req.filter;
      const sbs = rt.listSandboxes().filter((s) => !f || ((!f.id || s.id.startsWith(f.id)) && matchLabels(s.config.labels, f.label_selector)));
      return { stats: await Promise.all(sbs.map((sb) => podSandboxStats(sb, rt.containers.list().filter((c) => c.sandboxId === sb.id)))) };
    },
    UpdateContainerResources: async (req: CriObject) => {
      if (!req.linux) throw new InvalidArgumentError('UpdateContainerResources: only linux resources can be updated');
      await rt.containers.updateResources(req.container_id, req.linux);
      return {};
    },
    RuntimeConfig: async () => ({ linux: { cgroup_driver: 1 } }), // CGROUPFS
  } satisfies Record<string, Handler>);
  const image: Record<string, Handler> = {
    ListImages: async (req) => {
      const want: string | undefined = req.filter?.image?.image || undefined;
      const list = want ? [rt.images.find(want)].filter((x): x is ImageRecord => !!x) : rt.images.list();
      return { images: list.map(imageMsg) };
    },
    ImageStatus: async (req) => {
      const i = rt.images.find(req.image?.image ?? '');
      if (!i) return { image: null, info: {} };
      return { image: imageMsg(i), info: req.verbose ? { info: JSON.stringify({ imageSpec: i.config, manifestDigest: i.manifestDigest, source: i.source }) } : {} };
    },
    PullImage: async (req) => {
      const spec: string = req.image?.image ?? '';
      if (!spec) throw new InvalidArgumentError('PullImage: image is empty');
      const a = ARCHIVE.exec(spec);
      if (a) {
        const recs = await loadArchive(rt.images, a[2]!);
        return { image_ref: recs[0]!.id };
      }
      const auth = req.auth ?? undefined;
      const rec = await rt.images.pull(spec, auth && (auth.username || auth.auth || auth.registry_token || auth.identity_token) ? auth : undefined);
      return { image_ref: rec.id };
    },
    RemoveImage: async (req) => { await rt.removeImage(req.image?.image ?? ''); return {}; },
    ImageFsInfo: async () => {
      const used = rt.images.list().reduce((a, i) => a + i.size, 0);
      let inodes = 0;
      try { const s = statfsSync(rt.images.root); inodes = s.files - s.ffree; } catch { /* unknown */ }
      const ts = Number(nowNs());
      return { image_filesystems: [{ timestamp: ts, fs_id: { mountpoint: rt.images.root }, used_bytes: { value: used }, inodes_used: { value: inodes } }], container_filesystems: [] };
    },
  };
  return { runtime, image };
}

/**
 * GetContainerEvents: every container and pod lifecycle change from now on, with the pod's
 * status and its containers' statuses, until the client cancels (kubelet's evented PLEG).
 */
function containerEvents(rt: Runtime, call: grpc.ServerWritableStream<CriObject, CriObject>): void {
  const on = (e: RuntimeEvent) => {
    const sb = e.sandbox;
    call.write({
      container_id: e.containerId, container_event_type: e.kind, created_at: e.at,
      pod_sandbox_status: sb ? sandboxStatus(sb) : null,
      containers_statuses: rt.containers.list().filter((c) => c.sandboxId === e.sandboxId).map(containerStatus),
    });
  };
  rt.events.on('event', on);
  const off = () => rt.events.off('event', on);
  call.on('cancelled', off);
  call.on('close', off);
  call.on('error', off);
}

/**
 * Bounds of the CRI socket (proto/guarded-server.ts). It is root only (0600), but any local
 * process running as root can still hold it: 64 connections (the node's agent keeps one, crictl
 * and benchmarks add a few); requests of up to 16 MiB as containerd and the kubelet allow, read
 * two at a time (32 MiB), each complete within 5 s once its turn came; a connection idle for
 * 5 minutes is closed.
 */
export const CRI_LISTENER_LIMITS: Partial<GuardLimits> = {
  maxConnections: 64,
  maxMessageBytes: 16 << 20,
  receiveBudgetBytes: 32 << 20,
  maxConcurrentStreams: 256,
};

export async function serveCri(rt: Runtime, socketPath: string, log: (m: string) => void = (m) => process.stderr.write(`shoal-runtime: ${m}\n`)): Promise<GuardedServer> {
  const pkg = loadProto('cri/api.proto') as CriObject;
  const v1 = pkg.runtime.v1;
  const { runtime, image } = criHandlers(rt);
  const server = new GuardedServer({
    name: 'CRI socket',
    auth: 'any-call',
    limits: CRI_LISTENER_LIMITS,
    options: { 'grpc.max_send_message_length': 40 * 1024 * 1024 },
    log,
  });
  const build = (svc: grpc.ServiceDefinition, impl: Record<string, Handler>) => {
    const out: grpc.UntypedServiceImplementation = {};
    for (const [name, def] of Object.entries(svc)) {
      if (impl[name]) out[name] = unary(name, impl[name]!);
      else if (def.responseStream) out[name] = ((call: grpc.ServerWritableStream<CriObject, CriObject>) => call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: `${name} is not implemented by shoal-runtime` })) as grpc.UntypedHandleCall;
      else out[name] = unimplemented(name);
    }
    return out;
  };
  const rtImpl = build(v1.RuntimeService.service, runtime);
  rtImpl['GetContainerEvents'] = ((call: grpc.ServerWritableStream<CriObject, CriObject>) => containerEvents(rt, call)) as grpc.UntypedHandleCall;
  server.addService(v1.RuntimeService.service, rtImpl);
  server.addService(v1.ImageService.service, build(v1.ImageService.service, image));
  if (existsSync(socketPath)) unlinkSync(socketPath);
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  return server;
}
