// The agent's task executor: assignments in, CRI calls out, status back. Each task assigned to
// the node gets a runner that moves it forward only (accepted -> preparing -> starting ->
// running -> complete | failed | shutdown | rejected) and obeys its desired state; the node's
// containers are watched by polling the runtime. A restarted agent finds the pods it made (by
// their labels), keeps the ones still assigned and reports their real state, and removes the
// rest: never a second copy of a running task.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { LABELS, TASK_STATE_ORDER, isTerminal, type ContainerSpec, type TaskObject, type TaskState, type TaskStatus } from '../../manager/services/model.js';
import { CONTAINER_STATE, type CriClient } from '../cri/client.js';
import { sources } from '../../manager/metrics.js';
import { ImagePuller } from './images.js';
import { containerConfig, podConfig } from './pod.js';
import type { NetworkSync } from './network.js';
import { TaskProbes, type ProbeVerdict } from './probes.js';
import type { CriMount, TaskFiles } from './secrets.js';
import type { Log } from '../../proto/log.js';
import type { NodeVolumes } from './volumes.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

/** A task's status as the agent reports it: the observed state and what goes with it. */
export type TaskReport = Pick<TaskStatus, 'state'> & Partial<Pick<TaskStatus, 'message' | 'err' | 'containerId' | 'podId' | 'exitCode' | 'oomKilled' | 'health' | 'healthMessage' | 'ready'>>;

export interface ExecutorOptions {
  cri: CriClient;
  nodeId: string;
  hostname: string;
  /** Where the pods' CRI log files go (one directory per task). */
  logRoot: string;
  report(taskId: string, r: TaskReport): void;
  /** The task is gone from the node: stop re-sending its status. */
  forget(taskId: string): void;
  log: Log;
  /** How often the runtime is asked for the containers' states (ms). */
  pollMs?: number;
  /** The tasks' secrets and configs as files (node/agent/secrets.ts). */
  files?: TaskFiles;
  /** The network plugin's side: a task's attachment before its pod runs, gone after (network.ts). */
  network?: Pick<NetworkSync, 'attach' | 'detach' | 'dnsServers' | 'hold'>;
  /** The tasks' volumes: staged and published through the node's CSI drivers (node/agent/volumes.ts). */
  volumes?: NodeVolumes;
}

interface Found {
  podId: string;
  podReady: boolean;
  containers: Map<string, { id: string; state: number }>;
}

class StopRequested extends Error {}

export class Executor {
  private readonly runners = new Map<string, Runner>();
  readonly images: ImagePuller;
  private found?: Map<string, Found>;
  private recovering?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private polling = false;

  constructor(readonly o: ExecutorOptions) {
    this.images = new ImagePuller(o.cri);
    const counts = () => this.countByState();
    sources.agent = counts;
    this.unsource = () => { if (sources.agent === counts) delete sources.agent; };
  }
  private readonly unsource: () => void;

  /** The node's tasks by the state last reported for each (metrics). */
  countByState(): Record<string, number> {
    const by: Record<string, number> = {};
    for (const r of this.runners.values()) by[r.state] = (by[r.state] ?? 0) + 1;
    return by;
  }

  /** Finds the pods an earlier run of the agent made, then watches the containers. */
  start(): Promise<void> {
    this.recovering ??= this.recover();
    return this.recovering;
  }

  private async recover(): Promise<void> {
    const sel = { [LABELS.managed]: 'true', [LABELS.nodeId]: this.o.nodeId };
    for (let attempt = 0; ; attempt++) {
      try {
        const pods = (await this.o.cri.runtime.ListPodSandbox({ filter: { label_selector: sel } })).items ?? [];
        const ctrs = (await this.o.cri.runtime.ListContainers({ filter: { label_selector: sel } })).containers ?? [];
        const found = new Map<string, Found>();
        for (const p of pods) {
          const tid = p.labels?.[LABELS.taskId];
          if (!tid) continue;
          found.set(tid, { podId: p.id, podReady: p.state === 0, containers: new Map() });
        }
        for (const c of ctrs) {
          const f = found.get(c.labels?.[LABELS.taskId]);
          if (f && c.pod_sandbox_id === f.podId) f.containers.set(c.labels[LABELS.container] ?? c.metadata?.name, { id: c.id, state: c.state });
        }
        // Their addresses stay theirs until their pods are gone: the managers may have released
        // them (the task ended or was given up while the agent was away) for another task here.
        if (this.o.network) {
          for (const [tid, f] of found) {
            try {
              // The pod's IPs (its first interface's; assign() adds the task's others).
              const st = (await this.o.cri.runtime.PodSandboxStatus({ pod_sandbox_id: f.podId })).status;
              this.o.network.hold(tid, [st?.network?.ip, ...(st?.network?.additional_ips ?? []).map((x: any) => x.ip)].filter((x): x is string => !!x));
            } catch {
              /* gone meanwhile */
            }
          }
        }
        this.found = found;
        if (found.size > 0) this.o.log(`agent: found ${found.size} pod(s) of earlier tasks in the runtime`);
        break;
      } catch (e) {
        if (this.stopped) return;
        if (attempt % 10 === 0) this.o.log(`agent: listing the runtime's pods failed (${(e as Error).message}); retrying`);
        await sleep(500);
      }
    }
    this.schedulePoll();
  }

  /** The full set of the node's assignments (called on every change). */
  async assign(tasks: Map<string, unknown>): Promise<void> {
    await this.start();
    if (this.stopped) return;
    for (const [id, raw] of tasks) {
      const t = raw as TaskObject;
      let r = this.runners.get(id);
      if (!r) {
        const f = this.found?.get(id);
        if (f && t.spec.networks?.length) this.o.network?.hold(id, t.spec.networks.map((a) => a.address));
        r = new Runner(this, t, f);
        this.found?.delete(id);
        this.runners.set(id, r);
      }
      r.update(t);
    }
    for (const [id, r] of this.runners) {
      if (tasks.has(id)) continue;
      this.runners.delete(id);
      r.remove();
    }
    // Files of tasks this agent no longer runs (it stopped before it could remove them).
    this.o.files?.sweep(new Set(this.runners.keys()));
    this.o.volumes?.sweep(new Set(this.runners.keys()));
    // Pods of tasks this node is no longer assigned (removed while the agent was away).
    if (this.found) {
      for (const [tid, f] of this.found) {
        this.o.log(`agent: removing pod ${f.podId.slice(0, 12)} of task ${tid}: no longer assigned to this node`, { taskId: tid });
        void this.removePod(f.podId, tid, 10).finally(() => {
          this.o.files?.release(tid);
          void this.o.volumes?.release(tid);
        });
      }
      this.found.clear();
    }
  }

  private schedulePoll(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.poll(), this.o.pollMs ?? 1000);
  }

  /** One ListContainers for the node; runners learn about exits from it. */
  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      const ctrs = (await this.o.cri.runtime.ListContainers({ filter: { label_selector: { [LABELS.managed]: 'true', [LABELS.nodeId]: this.o.nodeId } } }, 10_000)).containers ?? [];
      const byId = new Map<string, number>(ctrs.map((c: any) => [c.id as string, c.state as number]));
      for (const r of this.runners.values()) r.observe(byId);
    } catch (e) {
      this.o.log(`agent: polling the runtime failed: ${(e as Error).message}`);
    } finally {
      this.polling = false;
      this.schedulePoll();
    }
  }

  /** Stops a pod's containers, then the pod, then removes it (and the task's logs). */
  async removePod(podId: string, taskId: string, graceSec: number): Promise<void> {
    try {
      const ctrs = (await this.o.cri.runtime.ListContainers({ filter: { pod_sandbox_id: podId } })).containers ?? [];
      await Promise.all(ctrs.filter((c: any) => c.state === CONTAINER_STATE.running).map((c: any) => this.o.cri.runtime.StopContainer({ container_id: c.id, timeout: graceSec }, (graceSec + 30) * 1000)));
      await stopPodSandbox(this.o.cri, podId, () => this.o.log(`agent: pod ${podId.slice(0, 12)} of task ${taskId}: stopping it failed; retrying`));
      await this.o.cri.runtime.RemovePodSandbox({ pod_sandbox_id: podId });
      if (taskId) this.o.network?.detach(taskId);
    } catch (e) {
      if ((e as { code?: number }).code !== 5) this.o.log(`agent: removing pod ${podId.slice(0, 12)} failed: ${(e as Error).message}`);
      else if (taskId) this.o.network?.detach(taskId);
    }
    if (taskId) rmSync(join(this.o.logRoot, taskId), { recursive: true, force: true });
  }

  /** The task's pod and containers, if it has any (for logs). */
  runner(taskId: string): Runner | undefined {
    return this.runners.get(taskId);
  }

  stop(): void {
    this.stopped = true;
    this.unsource();
    clearTimeout(this.timer);
    for (const r of this.runners.values()) r.detach();
  }

  /** Stops and removes every pod the agent made on this node (the node leaves the cluster). */
  async removeAll(): Promise<void> {
    this.stop();
    const pods = (await this.o.cri.runtime.ListPodSandbox({ filter: { label_selector: { [LABELS.managed]: 'true', [LABELS.nodeId]: this.o.nodeId } } })).items ?? [];
    await Promise.all(pods.map((p: any) => this.removePod(p.id, p.labels?.[LABELS.taskId] ?? '', 10)));
    if (pods.length > 0) this.o.log(`agent: removed ${pods.length} pod(s)`);
  }
}

/** One task on this node. Its steps run one at a time; a change while one runs queues another. */
class Runner {
  private task: TaskObject;

  /** The ids a log line about this task carries. */
  private ids(): { taskId: string; serviceId?: string } {
    return this.task.serviceId ? { taskId: this.task.id, serviceId: this.task.serviceId } : { taskId: this.task.id };
  }
  private reported: TaskState;
  podId = '';
  /** Container ids by container name. */
  readonly containers = new Map<string, string>();
  private phase: 'new' | 'starting' | 'running' | 'ended' = 'new';
  private busy = false;
  private again = false;
  private gone = false;
  private detached = false;
  private probes?: TaskProbes;
  /** Its readiness probe passed once: a later pass is "ready again" in the log. */
  private wasReady = false;
  /** The probes' latest verdict, sent with every report of the task. */
  private health?: ProbeVerdict;

  constructor(private readonly ex: Executor, t: TaskObject, private readonly found: Found | undefined) {
    this.task = t;
    // What the managers last heard is where this runner starts: states only move forward.
    this.reported = TASK_STATE_ORDER[t.status.state] >= TASK_STATE_ORDER.assigned ? t.status.state : 'assigned';
  }

  private get o(): ExecutorOptions {
    return this.ex.o;
  }

  /** The state last reported for the task. */
  get state(): TaskState {
    return this.reported;
  }

  private get stopWanted(): boolean {
    return this.gone || this.task.spec.desiredState !== 'running';
  }

  private report(state: TaskState, extra: Omit<TaskReport, 'state'> = {}, healthChanged = false): void {
    if (this.detached) return;
    // Forward only; the same state again only to say more (a pull's progress, the probes' verdict).
    // A task that ended stays ended, except that a later terminal state may replace an earlier one.
    if (TASK_STATE_ORDER[state] < TASK_STATE_ORDER[this.reported]) return;
    if (state === this.reported && ((!extra.message && !healthChanged) || isTerminal(state))) return;
    this.reported = state;
    this.o.report(this.task.id, { state, podId: this.podId || undefined, containerId: this.containers.get(this.task.spec.template.main.name) || undefined, ...(this.health ?? {}), ...extra });
  }

  /** Starts the main container's probes once it runs (none: nothing to do). */
  private startProbes(): void {
    const probes = this.task.spec.template.probes ?? [];
    const main = this.containers.get(this.task.spec.template.main.name);
    if (probes.length === 0 || !main || this.probes) return;
    this.probes = new TaskProbes(probes, { cri: this.o.cri, containerId: main, podId: this.podId }, (v) => {
      // A task that was ready and is no longer is what an operator looks for when a service
      // loses capacity: say it, with the failing probe's output.
      if (this.health?.ready === true && v.ready === false) this.o.log(`agent: task ${this.task.id} is no longer ready: ${v.healthMessage || 'readiness probe failed'}`, this.ids());
      if (this.health?.ready === false && v.ready === true && this.wasReady) this.o.log(`agent: task ${this.task.id} is ready again`, this.ids());
      if (v.ready === true) this.wasReady = true;
      this.health = v;
      this.report('running', {}, true);
    }, (why) => {
      if (this.phase !== 'running' || this.busy) return;
      this.busy = true;
      void this.unhealthy(why).catch((e) => this.o.log(`agent: task ${this.task.id}: ${(e as Error).message}`, this.ids())).finally(() => {
        this.busy = false;
        if (this.again) this.kick();
      });
    });
    this.probes.start();
  }

  /** A liveness (or startup) probe gave up: the task fails, its containers stop. */
  private async unhealthy(why: string): Promise<void> {
    this.health = this.probes?.current;
    this.o.log(`agent: task ${this.task.id} is unhealthy: ${why}`, this.ids());
    this.phase = 'ended';
    this.report('failed', { message: 'unhealthy', err: `unhealthy: ${why}` });
    await this.stopAll(undefined);
  }

  update(t: TaskObject): void {
    this.task = t;
    this.kick();
  }

  private kick(): void {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    void (async () => {
      do {
        this.again = false;
        try {
          await this.step();
        } catch (e) {
          this.o.log(`agent: task ${this.task.id}: ${(e as Error).message}`, this.ids());
        }
      } while (this.again && !this.detached);
      this.busy = false;
    })();
  }

  private async step(): Promise<void> {
    if (this.detached) return;
    if (this.gone) {
      if (this.podId) await this.ex.removePod(this.podId, this.task.id, this.graceSec());
      else {
        this.removeLogs();
        this.o.network?.detach(this.task.id);
      }
      this.o.files?.release(this.task.id);
      await this.o.volumes?.release(this.task.id);
      this.o.forget(this.task.id);
      return;
    }
    if (this.phase === 'new' && this.found) {
      await this.adopt(this.found);
      if (this.phase !== 'new') return this.step();
    }
    if (this.stopWanted) {
      if (this.phase !== 'ended') await this.stopAll(this.task.spec.desiredState === 'remove' ? 'removed' : 'shut down');
      return;
    }
    if (this.phase === 'new') {
      if (isTerminal(this.reported) || isTerminal(this.task.status.state)) {
        this.phase = 'ended';
        return;
      }
      if (this.task.status.state === 'running') {
        // The managers saw it run, yet the runtime has no pod of it (lost with the node's disk,
        // or removed by hand): it ended; the restart policy decides what follows.
        this.phase = 'ended';
        this.report('failed', { message: 'its containers are gone', err: 'the runtime no longer has the pod of this running task' });
        return;
      }
      await this.run();
    }
  }

  /** The pod of this task an earlier agent made: keep it running, or learn how it ended. */
  private async adopt(f: Found): Promise<void> {
    const main = this.task.spec.template.main.name;
    const m = f.containers.get(main);
    if (!m) {
      // It never got as far as its main container: start over with a clean pod.
      this.o.log(`agent: task ${this.task.id}: removing the half-started pod ${f.podId.slice(0, 12)} of an earlier run; starting it again`, this.ids());
      await this.ex.removePod(f.podId, this.task.id, 0);
      return;
    }
    this.podId = f.podId;
    for (const [name, c] of f.containers) this.containers.set(name, c.id);
    if (m.state === CONTAINER_STATE.running) {
      this.phase = 'running';
      this.o.log(`agent: task ${this.task.id}: its container ${m.id.slice(0, 12)} is still running; keeping it`, this.ids());
      this.reported = TASK_STATE_ORDER[this.reported] > TASK_STATE_ORDER.starting ? this.reported : 'starting';
      this.report('running', { message: 'running (found again after an agent restart)' });
      this.startProbes();
      return;
    }
    this.phase = 'running';
    await this.ended(main, m.id);
  }

  private graceSec(): number {
    return Math.ceil(this.task.spec.template.stopGracePeriodMs / 1000);
  }

  private removeLogs(): void {
    rmSync(join(this.o.logRoot, this.task.id), { recursive: true, force: true });
  }

  private check(): void {
    if (this.stopWanted || this.detached) throw new StopRequested();
  }

  private async run(): Promise<void> {
    const t = this.task;
    const tpl = t.spec.template;
    this.phase = 'starting';
    try {
      this.report('accepted');
      const all: ContainerSpec[] = [...tpl.init, ...tpl.sidecars, tpl.main];
      const images = [...new Set(all.map((c) => c.image))];
      this.report('preparing', { message: 'checking the images' });
      const started = Date.now();
      const pulling = new Set<string>();
      // Progress while a pull runs: the CRI's PullImage says nothing until it is done.
      const say = () => this.report('preparing', { message: `pulling ${[...pulling].join(', ')}${Date.now() - started >= 1000 ? ` (${Math.round((Date.now() - started) / 1000)} s)` : ''}` });
      const tick = setInterval(() => pulling.size > 0 && say(), 2000);
      try {
        await Promise.all(images.map((i) => this.ex.images.ensure(i, () => {
          pulling.add(i);
          say();
        })));
      } catch (e) {
        this.phase = 'ended';
        this.report('rejected', { message: 'the image could not be pulled', err: (e as Error).message });
        return;
      } finally {
        clearInterval(tick);
      }
      this.check();
      let mounts: CriMount[] = [];
      try {
        mounts = (await this.o.files?.prepare(t, () => this.check())) ?? [];
      } catch (e) {
        if (e instanceof StopRequested) throw e;
        this.phase = 'ended';
        this.report('rejected', { message: 'its secrets and configs could not be provided', err: (e as Error).message });
        this.o.files?.release(t.id);
        return;
      }
      try {
        mounts = [...mounts, ...((await this.o.volumes?.prepare(t, () => this.check(), (m) => this.report('preparing', { message: m }))) ?? [])];
      } catch (e) {
        if (e instanceof StopRequested) throw e;
        this.phase = 'ended';
        this.report('rejected', { message: 'its volumes could not be mounted', err: (e as Error).message });
        this.o.files?.release(t.id);
        await this.o.volumes?.release(t.id);
        return;
      }
      const net = this.o.network;
      if (net && t.spec.networks?.length) {
        this.report('starting', { message: 'attaching its networks' });
        await net.attach(t, () => this.check(), (m) => {
          this.o.log(`agent: task ${t.id}: ${m}`, this.ids());
          this.report('starting', { message: m });
        });
      }
      this.report('starting', { message: 'creating the pod' });
      const node = { id: this.o.nodeId, hostname: this.o.hostname };
      const sandbox = podConfig(t, this.o.nodeId, this.o.logRoot, net && t.spec.networks?.length ? net.dnsServers() : undefined);
      this.podId = (await this.o.cri.runtime.RunPodSandbox({ config: sandbox })).pod_sandbox_id;
      for (const c of tpl.init) {
        this.check();
        this.report('starting', { message: `running init container ${c.name}` });
        const id = await this.create(c, 'init', sandbox, node);
        await this.o.cri.runtime.StartContainer({ container_id: id });
        const st = await this.waitExit(id);
        if (st.exit_code !== 0) {
          this.phase = 'ended';
          this.report('failed', { message: `init container ${c.name} failed`, err: `init container ${c.name} exited with code ${st.exit_code}${st.reason === 'OOMKilled' ? ' (OOM killed)' : ''}`, exitCode: st.exit_code, oomKilled: st.reason === 'OOMKilled' });
          await this.stopAll(undefined);
          return;
        }
      }
      for (const c of [...tpl.sidecars, tpl.main]) {
        this.check();
        const id = await this.create(c, c === tpl.main ? 'main' : 'sidecar', sandbox, node, c === tpl.main ? mounts : []);
        await this.o.cri.runtime.StartContainer({ container_id: id });
      }
      this.phase = 'running';
      this.report('running', { message: 'started' });
      this.startProbes();
    } catch (e) {
      if (e instanceof StopRequested) return; // step() stops what was started
      this.phase = 'ended';
      this.report('failed', { message: 'the task could not be started', err: (e as Error).message });
      await this.stopAll(undefined).catch(() => {});
    }
  }

  private async create(c: ContainerSpec, role: 'main' | 'sidecar' | 'init', sandbox: any, node: { id: string; hostname: string }, mounts: CriMount[] = []): Promise<string> {
    const config = containerConfig(this.task, c, role, this.o.nodeId, node);
    if (mounts.length > 0) config.mounts = mounts;
    const id = (await this.o.cri.runtime.CreateContainer({ pod_sandbox_id: this.podId, config, sandbox_config: sandbox })).container_id as string;
    this.containers.set(c.name, id);
    return id;
  }

  private async waitExit(id: string): Promise<{ exit_code: number; reason: string }> {
    for (;;) {
      const st = (await this.o.cri.runtime.ContainerStatus({ container_id: id })).status;
      if (st.state === CONTAINER_STATE.exited) return st;
      this.check();
      await sleep(100);
    }
  }

  /** From the node-wide poll: a container of this running task has exited. */
  observe(states: Map<string, number>): void {
    if (this.phase !== 'running' || this.busy || this.detached) return;
    const tpl = this.task.spec.template;
    for (const c of [tpl.main, ...tpl.sidecars]) {
      const id = this.containers.get(c.name);
      if (!id) continue;
      const s = states.get(id);
      if (s === CONTAINER_STATE.running) continue;
      this.busy = true;
      void this.ended(c.name, id).catch((e) => this.o.log(`agent: task ${this.task.id}: ${(e as Error).message}`, this.ids())).finally(() => {
        this.busy = false;
        if (this.again) this.kick();
      });
      return;
    }
  }

  /** A container of the running task ended (main: the task ends with it; a sidecar: it fails). */
  private async ended(name: string, id: string): Promise<void> {
    const main = name === this.task.spec.template.main.name;
    let st: any;
    try {
      st = (await this.o.cri.runtime.ContainerStatus({ container_id: id })).status;
    } catch (e) {
      st = { exit_code: -1, reason: 'Unknown', message: (e as Error).message };
    }
    this.phase = 'ended';
    this.probes?.stop();
    const oom = st.reason === 'OOMKilled';
    const code = Number(st.exit_code);
    const why = `${main ? '' : `sidecar ${name} `}exit ${code}${oom ? ' (OOM killed)' : ''}`;
    if (this.stopWanted && main) this.report('shutdown', { message: 'stopped', exitCode: code });
    else if (main && code === 0) this.report('complete', { message: 'finished', exitCode: 0 });
    else this.report('failed', { message: main ? `the container exited with code ${code}` : `sidecar ${name} exited with code ${code}`, err: why, exitCode: code, oomKilled: oom });
    // The rest of the pod stops with it; the pod stays (its logs) until the task goes.
    await this.stopAll(undefined);
  }

  /** Stops every container and the pod; reports `shutdown` when asked for by the managers. */
  private async stopAll(why: string | undefined): Promise<void> {
    const wasRunning = this.phase === 'running' || this.phase === 'starting';
    this.phase = 'ended';
    this.probes?.stop();
    try {
      if (this.podId) {
        const grace = this.graceSec();
        await Promise.all([...this.containers.values()].map((id) => this.o.cri.runtime.StopContainer({ container_id: id, timeout: grace }, (grace + 30) * 1000).catch((e: any) => {
          if (e.code !== 5) throw e;
        })));
        await stopPodSandbox(this.o.cri, this.podId, () => this.o.log(`agent: task ${this.task.id}: stopping its pod failed; retrying until it is torn down (its addresses stay held meanwhile)`));
      }
    } finally {
      // The task has ended: its secrets and configs leave the node with it, and its volumes
      // are let go (once its containers are stopped: a running one keeps the mount busy).
      this.o.files?.release(this.task.id);
      await this.o.volumes?.release(this.task.id);
    }
    // The pod's network is torn down (or was never made): its addresses may go to another pod.
    this.o.network?.detach(this.task.id);
    if (why && !isTerminal(this.reported)) this.report('shutdown', { message: wasRunning ? `stopped (${why})` : `${why} before it ran` });
  }

  /** The task left the node's assignments: stop and remove everything it had. */
  remove(): void {
    this.gone = true;
    this.kick();
  }

  /** The agent stops: leave the containers running (a restarted agent finds them again). */
  detach(): void {
    this.detached = true;
    this.probes?.stop();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * StopPodSandbox, retried while it fails for a reason that passes (a pod stopped while shoald
 * starts, before its network plugin serves: the CNI DEL fails). Giving up left the pod and its
 * addresses held for ever, and a new task given one of them waited and failed (services-faults).
 * NOT_FOUND is success: the pod is gone. Bounded (10 minutes), then the last error is thrown.
 */
export async function stopPodSandbox(cri: CriClient, podId: string, onRetry: () => void, delayMs = 2000, limitMs = 600_000): Promise<void> {
  const end = Date.now() + limitMs;
  for (let said = false; ; ) {
    try {
      await cri.runtime.StopPodSandbox({ pod_sandbox_id: podId });
      return;
    } catch (e) {
      if ((e as { code?: number }).code === 5) return;
      if (Date.now() + delayMs > end) throw e;
      if (!said) onRetry();
      said = true;
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
}
