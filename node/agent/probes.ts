// Health probes of a task's main container, as Kubernetes defines them: exec (CRI ExecSync),
// http and tcp (to the pod's address, or from inside its network namespace while it has none the
// node can reach), with initial delay, period, timeout and success/failure thresholds. A startup
// probe holds the others back until it passes; readiness sets the task's `ready`; a liveness (or
// startup) probe that fails its threshold ends the task, and the restart policy decides the rest.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Probe } from '../../manager/services/model.js';
import type { CriClient } from '../cri/client.js';

const PROBE_NET = join(dirname(fileURLToPath(import.meta.url)), 'probe-net.js');
const BUSYBOX = '/bin/busybox';

export interface ProbeVerdict {
  health: 'starting' | 'healthy' | 'unhealthy';
  healthMessage: string;
  /** Present when the task has a readiness probe. */
  ready?: boolean;
}

export interface ProbeTarget {
  cri: CriClient;
  containerId: string;
  podId: string;
  /**
   * The pod's address and network namespace, found on the first http/tcp probe and kept: they
   * do not change while the pod lives. Asked for on every probe, they cost a verbose
   * PodSandboxStatus per probe, which runs the pod's CNI CHECK (plugin processes): six tasks
   * probed every second kept a node's runtime so busy at load 20 that the status calls, not the
   * servers, timed out and ready tasks were reported unready.
   */
  network?: { ip: string; netns: string };
}

/** Runs one probe once: success and what it said. */
export async function runProbe(p: Probe, t: ProbeTarget): Promise<{ ok: boolean; output: string }> {
  if (p.type === 'exec') {
    try {
      const r = await t.cri.runtime.ExecSync({ container_id: t.containerId, cmd: p.command, timeout: Math.max(1, Math.ceil(p.timeoutMs / 1000)) }, p.timeoutMs + 5000);
      const out = `${Buffer.from(r.stdout ?? '').toString('utf8')}${Buffer.from(r.stderr ?? '').toString('utf8')}`.trim();
      return { ok: r.exit_code === 0, output: r.exit_code === 0 ? out : `exit ${r.exit_code}${out ? `: ${out}` : ''}` };
    } catch (e) {
      return { ok: false, output: (e as Error).message };
    }
  }
  // http / tcp: the pod's own address when it has one, else from inside its network namespace.
  let net = t.network;
  if (!net) {
    try {
      const st = await t.cri.runtime.PodSandboxStatus({ pod_sandbox_id: t.podId, verbose: true }, Math.max(5000, p.timeoutMs));
      const info = st.info?.info ? JSON.parse(st.info.info) : {};
      net = { ip: st.status?.network?.ip ?? '', netns: info.netns ?? info.netNamespacePath ?? '' };
    } catch (e) {
      return { ok: false, output: `cannot find the pod's network: ${(e as Error).message}` };
    }
    // Kept only when it says where to probe: an answer naming neither is asked again next time.
    if ((net.ip && net.ip !== '127.0.0.1') || net.netns) t.network = net;
  }
  const { ip, netns } = net;
  if (ip && ip !== '127.0.0.1') return direct(p, ip);
  if (!netns) return { ok: false, output: 'the pod has no address and the runtime names no network namespace for it' };
  // Debian's busybox-static (a dependency of the node, see scripts/setup.sh) is a few hundred
  // microseconds to start; a Node process (probe-net.js, the fallback) costs far more per probe.
  const secs = String(Math.max(1, Math.ceil(p.timeoutMs / 1000)));
  const argv = existsSync(BUSYBOX)
    ? p.type === 'tcp'
      ? // Debian's busybox has no `nc -z`: nc with an empty standard input connects and ends (0), or fails (1).
        [BUSYBOX, 'nc', '-w', secs, '127.0.0.1', String(p.port)]
      : // Debian's busybox 1.35 wget crashes (SIGSEGV) when given -T: its own `timeout` bounds it instead.
        [BUSYBOX, 'timeout', secs, BUSYBOX, 'wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${p.port}${p.path ?? '/'}`]
    : [process.execPath, PROBE_NET, p.type, String(p.port), p.path ?? '/', String(p.timeoutMs)];
  return new Promise((resolve) => {
    const child = execFile('nsenter', [`--net=${netns}`, '--', ...argv], { timeout: p.timeoutMs + 5000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (argv[0] !== BUSYBOX) {
        const line = stdout.trim();
        return resolve({ ok: !err && line.startsWith('ok'), output: line.replace(/^(ok|fail) /, '') || (err ? err.message : '') });
      }
      const what = p.type === 'tcp' ? `tcp port ${p.port}` : `http GET :${p.port}${p.path ?? '/'}`;
      // busybox's timeout ends wget with SIGTERM (the signal, or exit 143 when it reports it).
      const silent = err && (err.killed || err.signal === 'SIGTERM' || err.code === 143) ? `no answer within ${secs} s` : `exit ${err?.code}`;
      resolve(err ? { ok: false, output: `${what}: ${(stderr || stdout).trim().replace(/\s+/g, ' ') || silent}` } : { ok: true, output: `${what}: ok` });
    });
    // nc copies standard input to the socket until it ends: an open pipe would hold it until killed.
    child.stdin?.end();
  });
}

async function direct(p: Probe, ip: string): Promise<{ ok: boolean; output: string }> {
  const ctl = AbortSignal.timeout(p.timeoutMs);
  if (p.type === 'http') {
    try {
      const r = await fetch(`http://${ip}:${p.port}${p.path ?? '/'}`, { signal: ctl });
      const body = r.status >= 400 ? (await r.text()).slice(0, 256) : '';
      if (r.status < 400) await r.body?.cancel();
      return { ok: r.status >= 200 && r.status < 400, output: `HTTP ${r.status}${body ? `: ${body}` : ''}` };
    } catch (e) {
      return { ok: false, output: `http GET ${ip}:${p.port}${p.path}: ${(e as Error).message}` };
    }
  }
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const s = connect({ host: ip, port: p.port! }, () => {
      s.destroy();
      resolve({ ok: true, output: `connected to ${ip}:${p.port}` });
    });
    s.setTimeout(p.timeoutMs, () => {
      s.destroy();
      resolve({ ok: false, output: `no answer from ${ip}:${p.port} within ${p.timeoutMs} ms` });
    });
    s.on('error', (e) => resolve({ ok: false, output: `tcp ${ip}:${p.port}: ${e.message}` }));
  });
}

/** Runs a task's probes until stopped; tells the runner each change and when the task must end. */
export class TaskProbes {
  /** Pending ticks: one per running probe (a fired one leaves the set, or it would grow every period). */
  private timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private started: boolean;
  private readonly verdict: ProbeVerdict;

  constructor(
    private readonly probes: Probe[],
    private readonly target: ProbeTarget,
    private readonly onChange: (v: ProbeVerdict) => void,
    private readonly onFail: (why: string) => void,
  ) {
    this.started = !probes.some((p) => p.kind === 'startup');
    this.verdict = { health: 'starting', healthMessage: '' };
    if (probes.some((p) => p.kind === 'readiness')) this.verdict.ready = false;
  }

  get current(): ProbeVerdict {
    return { ...this.verdict };
  }

  start(): void {
    for (const p of this.probes) if (p.kind === 'startup' || this.started) this.schedule(p, p.initialDelayMs);
    if (this.probes.length > 0) this.onChange(this.current);
  }

  private schedule(p: Probe, delay: number): void {
    if (this.stopped) return;
    let ok = 0;
    let bad = 0;
    const tick = async (): Promise<void> => {
      if (this.stopped) return;
      const r = await runProbe(p, this.target);
      if (this.stopped) return;
      if (r.ok) {
        ok++;
        bad = 0;
      } else {
        bad++;
        ok = 0;
      }
      if (p.kind === 'startup') {
        if (ok >= p.successThreshold) {
          this.started = true;
          this.set({ health: 'healthy', healthMessage: '' });
          for (const q of this.probes) if (q.kind !== 'startup') this.schedule(q, q.initialDelayMs);
          return; // a startup probe stops once it has passed
        }
        if (bad >= p.failureThreshold) return this.fail(`startup probe failed ${bad} time(s): ${r.output}`);
      } else if (p.kind === 'liveness') {
        if (bad >= p.failureThreshold) return this.fail(`liveness probe failed ${bad} time(s): ${r.output}`);
        if (bad > 0) this.set({ health: 'unhealthy', healthMessage: r.output });
        else this.set({ health: 'healthy', healthMessage: '' });
      } else {
        if (ok >= p.successThreshold) this.set({ ready: true, ...(this.hasLiveness() ? {} : { health: 'healthy', healthMessage: '' }) });
        if (bad >= p.failureThreshold) this.set({ ready: false, ...(this.hasLiveness() ? {} : { health: 'unhealthy', healthMessage: r.output }) });
      }
      this.later(tick, p.periodMs);
    };
    this.later(tick, delay);
  }

  private later(tick: () => Promise<void>, ms: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void tick();
    }, ms);
    this.timers.add(timer);
  }

  private hasLiveness(): boolean {
    return this.probes.some((p) => p.kind === 'liveness');
  }

  private set(change: Partial<ProbeVerdict>): void {
    const before = JSON.stringify(this.verdict);
    Object.assign(this.verdict, change);
    if (JSON.stringify(this.verdict) !== before) this.onChange(this.current);
  }

  private fail(why: string): void {
    this.stop();
    this.verdict.health = 'unhealthy';
    this.verdict.healthMessage = why;
    if (this.verdict.ready !== undefined) this.verdict.ready = false;
    this.onFail(why);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
