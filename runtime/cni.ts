// Pod networking through CNI plugins, as containerd's CRI plugin does it (go-cni + libcni):
// the first network configuration of the config directory (files *.conf, *.conflist, *.json in
// name order), its plugins run in order with the CNI exec protocol for ADD (each one's result
// is the next one's prevResult) and in reverse order for DEL; CHECK on request. The chain's
// config and result are kept in the sandbox record, so DEL gets the same chain and prevResult
// even after a restart, and a DEL after an ADD that failed halfway still runs every plugin.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** What a sandbox keeps of its network: the chain as it was when ADD ran, and the result. */
export interface SandboxNetwork {
  confList: NetConfList;
  ifName: string;
  /** The final ADD result (absent: ADD has not finished). */
  result?: CniResult;
  /** The pod's addresses (without prefix length), the primary first. */
  ips: string[];
}

export interface NetConfList { cniVersion: string; name: string; disableCheck?: boolean; plugins: PluginConf[]; file: string }
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type PluginConf = { type: string; capabilities?: Record<string, boolean>; [k: string]: any };
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type CniResult = Record<string, any>;

export class CniError extends Error {}

export interface PodNetworkRequest {
  sandboxId: string;
  netns: string;
  podName: string;
  podNamespace: string;
  podUid: string;
  /** runtimeConfig values; each plugin gets those its config declares as capabilities. */
  runtimeConfig: Record<string, unknown>;
}

const EXTS = ['.conf', '.conflist', '.json'];
const PLUGIN_TIMEOUT_MS = 60_000;

/** CNI semantic versions compare numerically ("0.4.0" < "1.0.0"); an empty version is 0.1.0. */
export function versionAtLeast(v: string, min: string): boolean {
  const a = (v || '0.1.0').split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
}

/** Parses one config file: a list (.conflist) or a single plugin's config (.conf/.json), as libcni does. */
export function parseConfFile(file: string, text: string): NetConfList {
  let j: Record<string, unknown>;
  try { j = JSON.parse(text) as Record<string, unknown>; } catch (e) { throw new CniError(`CNI config ${file} is not valid JSON: ${(e as Error).message}`); }
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw new CniError(`CNI config ${file} must be a JSON object`);
  if (file.endsWith('.conflist')) {
    if (typeof j['name'] !== 'string' || !j['name']) throw new CniError(`CNI config list ${file} has no "name"`);
    const plugins = j['plugins'];
    if (!Array.isArray(plugins) || plugins.length === 0) throw new CniError(`CNI config list ${file} has no "plugins"`);
    for (const [i, p] of plugins.entries()) {
      if (!p || typeof p !== 'object' || typeof (p as PluginConf).type !== 'string' || !(p as PluginConf).type) throw new CniError(`CNI config list ${file}: plugin ${i} has no "type"`);
    }
    return { cniVersion: String(j['cniVersion'] ?? ''), name: j['name'], disableCheck: j['disableCheck'] === true, plugins: plugins as PluginConf[], file };
  }
  if (typeof j['type'] !== 'string' || !j['type']) throw new CniError(`CNI config ${file} has no "type" (a network list must be named *.conflist)`);
  if (typeof j['name'] !== 'string' || !j['name']) throw new CniError(`CNI config ${file} has no "name"`);
  return { cniVersion: String(j['cniVersion'] ?? ''), name: j['name'], plugins: [j as PluginConf], file };
}

/** Which plugin runtimeConfig a plugin gets: only the capabilities it declares (libcni). */
function injectRuntimeConfig(p: PluginConf, rc: Record<string, unknown>): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const [cap, on] of Object.entries(p.capabilities ?? {})) if (on && rc[cap] !== undefined) out[cap] = rc[cap];
  return Object.keys(out).length ? out : undefined;
}

/** The pod's IPs from a CNI result: those on the pod's interface (or on no named one), IPv4 first. */
export function resultIps(result: CniResult | undefined, ifName: string): string[] {
  if (!result) return [];
  const ips: string[] = [];
  if (Array.isArray(result['ips'])) {
    const ifaces = Array.isArray(result['interfaces']) ? result['interfaces'] as { name?: string; sandbox?: string }[] : [];
    for (const ip of result['ips'] as { address?: string; interface?: number }[]) {
      if (typeof ip?.address !== 'string') continue;
      const iface = ip.interface !== undefined ? ifaces[ip.interface] : undefined;
      // containerd takes the addresses of the pod's own interface (in the sandbox, named ifName).
      if (iface && (iface.name !== ifName || !iface.sandbox)) continue;
      ips.push(ip.address.split('/')[0]!);
    }
  } else {
    // 0.1.0/0.2.0 results.
    for (const k of ['ip4', 'ip6']) {
      const a = (result[k] as { ip?: string } | undefined)?.ip;
      if (typeof a === 'string') ips.push(a.split('/')[0]!);
    }
  }
  return [...ips.filter((i) => !i.includes(':')), ...ips.filter((i) => i.includes(':'))];
}

export class Cni {
  constructor(readonly confDirs: string[], readonly binDirs: string[]) {}

  /**
   * The network the config directories define now: the first valid file of the first directory
   * that has one. Undefined when there is none (the runtime then gives pods loopback only);
   * a file that cannot be used is an error naming it.
   */
  load(): NetConfList | undefined {
    for (const dir of this.confDirs) {
      let names: string[];
      try { names = readdirSync(dir); } catch { continue; }
      for (const n of names.filter((f) => EXTS.some((e) => f.endsWith(e))).sort()) {
        const file = join(dir, n);
        try { if (!statSync(file).isFile()) continue; } catch { continue; }
        return parseConfFile(file, readFileSync(file, 'utf8'));
      }
    }
    return undefined;
  }

  /** For Status: whether pods can get a network, and if not, why. */
  status(): { ready: boolean; reason: string; message: string } {
    let conf: NetConfList | undefined;
    try { conf = this.load(); } catch (e) { return { ready: false, reason: 'NetworkPluginNotReady', message: `Network plugin returns error: ${(e as Error).message}` }; }
    if (!conf) return { ready: false, reason: 'NetworkPluginNotReady', message: `Network plugin returns error: cni plugin not initialized: no network config found in ${this.confDirs.join(':')}` };
    const missing = conf.plugins.map((p) => p.type).filter((t) => !this.findPlugin(t));
    if (missing.length) return { ready: false, reason: 'NetworkPluginNotReady', message: `Network plugin returns error: CNI plugin(s) ${missing.join(', ')} of ${conf.file} not found in ${this.binDirs.join(':')}` };
    return { ready: true, reason: '', message: '' };
  }

  findPlugin(type: string): string | undefined {
    if (type.includes('/')) return undefined;
    for (const d of this.binDirs) {
      const p = join(d, type);
      if (existsSync(p)) return p;
    }
    return undefined;
  }

  private cniArgs(r: PodNetworkRequest): string {
    return [
      'IgnoreUnknown=1',
      `K8S_POD_NAMESPACE=${r.podNamespace}`,
      `K8S_POD_NAME=${r.podName}`,
      `K8S_POD_INFRA_CONTAINER_ID=${r.sandboxId}`,
      `K8S_POD_UID=${r.podUid}`,
    ].join(';');
  }

  /** Runs one plugin with the CNI exec protocol; resolves to its parsed stdout (or {}). */
  private exec(command: 'ADD' | 'DEL' | 'CHECK', p: PluginConf, list: NetConfList, r: PodNetworkRequest, ifName: string, prevResult: CniResult | undefined): Promise<CniResult> {
    const bin = this.findPlugin(p.type);
    if (!bin) return Promise.reject(new CniError(`CNI plugin ${JSON.stringify(p.type)} (network ${list.name}) not found in ${this.binDirs.join(':')}`));
    const conf: Record<string, unknown> = { ...p, cniVersion: list.cniVersion, name: list.name };
    const rc = injectRuntimeConfig(p, r.runtimeConfig);
    if (rc) conf['runtimeConfig'] = rc; else delete conf['runtimeConfig'];
    if (prevResult) conf['prevResult'] = prevResult; else delete conf['prevResult'];
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: r.sandboxId,
      CNI_NETNS: r.netns,
      CNI_IFNAME: ifName,
      CNI_ARGS: this.cniArgs(r),
      CNI_PATH: this.binDirs.join(':'),
    };
    return new Promise((resolve, reject) => {
      const child = spawn(bin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = []; const err: Buffer[] = [];
      child.stdout!.on('data', (b: Buffer) => out.push(b));
      child.stderr!.on('data', (b: Buffer) => err.push(b));
      child.stdin!.on('error', () => {});
      child.stdin!.end(JSON.stringify(conf));
      const timer = setTimeout(() => child.kill('SIGKILL'), PLUGIN_TIMEOUT_MS);
      child.on('error', (e) => { clearTimeout(timer); reject(new CniError(`plugin type=${JSON.stringify(p.type)} name=${JSON.stringify(list.name)} failed (${command.toLowerCase()}): cannot run ${bin}: ${e.message}`)); });
      child.on('close', (code, sig) => {
        clearTimeout(timer);
        const text = Buffer.concat(out).toString().trim();
        if (code === 0) {
          if (!text) { resolve({}); return; }
          try { resolve(JSON.parse(text) as CniResult); } catch { reject(new CniError(`plugin type=${JSON.stringify(p.type)} (${command.toLowerCase()}) printed a result that is not JSON: ${text.slice(0, 200)}`)); }
          return;
        }
        let msg = text || Buffer.concat(err).toString().trim();
        try {
          const j = JSON.parse(text) as { code?: number; msg?: string; details?: string };
          msg = `${j.msg ?? ''}${j.details ? `: ${j.details}` : ''}${j.code !== undefined ? ` (code ${j.code})` : ''}`;
        } catch { /* not a CNI error object */ }
        const why = sig ? `killed by ${sig}${sig === 'SIGKILL' ? ` (no answer within ${PLUGIN_TIMEOUT_MS / 1000} s)` : ''}` : `exit ${code}`;
        reject(new CniError(`plugin type=${JSON.stringify(p.type)} name=${JSON.stringify(list.name)} failed (${command.toLowerCase()}, ${why}): ${msg}`));
      });
    });
  }

  /** ADD through the chain. On failure the caller runs del() (the chain may be half set up). */
  async add(list: NetConfList, r: PodNetworkRequest, ifName = 'eth0'): Promise<CniResult> {
    let prev: CniResult | undefined;
    for (const p of list.plugins) prev = await this.exec('ADD', p, list, r, ifName, prev);
    return prev ?? {};
  }

  /**
   * DEL through the chain in reverse, with the cached result as prevResult (CNI 0.4.0+). Every
   * plugin is asked even when one fails (a half-done ADD leaves things in several plugins);
   * the first failure is reported.
   */
  async del(list: NetConfList, r: PodNetworkRequest, ifName: string, result: CniResult | undefined): Promise<void> {
    const prev = versionAtLeast(list.cniVersion, '0.4.0') ? result : undefined;
    let first: Error | undefined;
    for (const p of [...list.plugins].reverse()) {
      try { await this.exec('DEL', p, list, r, ifName, prev); } catch (e) { first ??= e as Error; }
    }
    if (first) throw first;
  }

  /**
   * The loopback network containerd runs beside the pod's own ("cni-loopback", interface lo),
   * when the loopback plugin is installed (the shim has already brought lo up either way).
   */
  loopback(): NetConfList | undefined {
    return this.findPlugin('loopback') ? { cniVersion: '0.3.1', name: 'cni-loopback', plugins: [{ type: 'loopback' }], file: '(built in)' } : undefined;
  }

  /** CHECK through the chain (CNI 0.4.0+ and not disabled by the list); undefined when not applicable. */
  async check(list: NetConfList, r: PodNetworkRequest, ifName: string, result: CniResult | undefined): Promise<boolean> {
    if (!versionAtLeast(list.cniVersion, '0.4.0') || list.disableCheck) return false;
    if (!result) throw new CniError(`network ${list.name}: no ADD result is cached, so CHECK cannot run`);
    for (const p of list.plugins) await this.exec('CHECK', p, list, r, ifName, result);
    return true;
  }
}

/** Kubernetes resource quantities as the bandwidth annotations use them ("10M", "1Gi", "500k"). */
export function parseQuantity(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$/.exec(q.trim());
  if (!m) throw new CniError(`bandwidth ${JSON.stringify(q)} is not a quantity like 10M or 1Gi`);
  const mult: Record<string, number> = { '': 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
  return Math.round(Number(m[1]) * mult[m[2] ?? '']!);
}

/**
 * The runtimeConfig containerd 1.6 gives the chain for a pod: portMappings (host port set),
 * bandwidth (kubernetes.io/ingress-bandwidth / egress-bandwidth annotations), dns, and the
 * pod's annotations under io.kubernetes.cri.pod-annotations.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function podRuntimeConfig(config: any): Record<string, unknown> {
  const rc: Record<string, unknown> = {};
  const protos = ['tcp', 'udp', 'sctp'];
  const pm = (config.port_mappings ?? [])
    .filter((m: { host_port?: number }) => (m.host_port ?? 0) > 0)
    .map((m: { host_port: number; container_port: number; protocol?: number | string; host_ip?: string }) => ({
      hostPort: m.host_port, containerPort: m.container_port,
      protocol: typeof m.protocol === 'string' ? m.protocol.toLowerCase() : protos[m.protocol ?? 0] ?? 'tcp',
      ...(m.host_ip ? { hostIP: m.host_ip } : {}),
    }));
  if (pm.length) rc['portMappings'] = pm;
  const ann = config.annotations ?? {};
  const bw: Record<string, number> = {};
  if (ann['kubernetes.io/ingress-bandwidth']) { bw['ingressRate'] = parseQuantity(ann['kubernetes.io/ingress-bandwidth']); bw['ingressBurst'] = 2 ** 32 - 1; }
  if (ann['kubernetes.io/egress-bandwidth']) { bw['egressRate'] = parseQuantity(ann['kubernetes.io/egress-bandwidth']); bw['egressBurst'] = 2 ** 32 - 1; }
  if (Object.keys(bw).length) rc['bandwidth'] = bw;
  const dns = config.dns_config;
  if (dns && (dns.servers?.length || dns.searches?.length || dns.options?.length)) rc['dns'] = { servers: dns.servers ?? [], searches: dns.searches ?? [], options: dns.options ?? [] };
  rc['io.kubernetes.cri.pod-annotations'] = ann;
  return rc;
}
