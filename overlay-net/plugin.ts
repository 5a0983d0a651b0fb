// The built-in network plugin: the cluster view pushed by the agent, the pods it attached, and
// the kernel's data path made to match both. Every operation runs one at a time (a queue), so a
// pod's ADD never interleaves with a state update that rewrites the same rules.
import { existsSync } from 'node:fs';
import type { Attachment, ClusterState, PodRef, Result, UpdateStateRequest, ValidAttachment } from '../proto/network/types.js';
import { Resolver } from './dns.js';
import { CNI, PluginError } from './errors.js';
import { contains, fmtIp, parseCidr, parseIp } from './ipv4.js';
import { DEFAULT_DNS_ADDRESS, vethName } from './names.js';
import { deleteTableScript, hostRuleset, podRuleset, portRules } from './nft-rules.js';
import { enableForwarding, findUnderlay, overlayMtu, reconcileHost, type Underlay } from './dataplane.js';
import { applyPodTable, endpointKey, hostMac, inspect, plumb, podIfnames, podMac, unplumb, type Endpoint, type EndpointIface } from './pod.js';
import { StateError, applyUpdate } from './state.js';
import { loadSaved, save } from './store.js';
import { ipJson, nft } from './sys.js';
import { localNets, podVips, resolveName } from './view.js';

export interface PluginOptions {
  stateDir: string;
  underlayAddr: string;
  dnsAddress?: string;
  dnsPort?: number;
  log?: (msg: string) => void;
}

/** The pod annotation naming the task (the agent sets it in PodSandboxConfig.annotations). */
export const TASK_ANNOTATION = 'shoal.io/task-id';
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

/** Every network's subnet and the VIP range, merged so nft gets no overlapping set elements. */
function clusterRanges(s: ClusterState): string[] {
  const all = [...s.networks.map((n) => n.subnet), ...(s.vip_range ? [s.vip_range] : [])];
  return all.filter((c, i) => !all.some((o, j) => j !== i && o !== c && contains(parseCidr(o), parseCidr(c).base) && parseCidr(o).bits <= parseCidr(c).bits) && all.indexOf(c) === i);
}

export class NetworkPlugin {
  private state: ClusterState;
  private version: number;
  private endpoints = new Map<string, Endpoint>();
  private underlay?: Underlay;
  private queue: Promise<unknown> = Promise.resolve();
  private hostRules = '';
  private hostLinksSig = '';
  private podRules = new Map<string, string>();
  readonly dnsAddress: string;
  readonly resolver: Resolver;
  private readonly log: (m: string) => void;

  constructor(private readonly o: PluginOptions) {
    this.log = o.log ?? ((m) => process.stderr.write(`shoal-net: ${m}\n`));
    const saved = loadSaved(o.stateDir);
    this.state = saved.state;
    this.version = saved.version;
    for (const e of saved.endpoints) this.endpoints.set(endpointKey(e.containerId, e.ifname), e);
    this.dnsAddress = o.dnsAddress ?? DEFAULT_DNS_ADDRESS;
    this.resolver = new Resolver({
      address: this.dnsAddress,
      port: o.dnsPort,
      lookup: (client, name) => this.lookup(client, name),
      upstreams: () => this.state.dns_upstreams,
      log: this.log,
    });
  }

  /** Finds the underlay, turns forwarding on and reconciles the kernel with what was saved:
   * leftovers of an earlier run or crash go, the wanted pieces are (re)made. */
  async start(): Promise<void> {
    parseIp(this.o.underlayAddr);
    this.underlay = await findUnderlay(this.o.underlayAddr);
    await enableForwarding();
    await this.serial(() => this.reconcile(true));
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const r = this.queue.then(f, f);
    this.queue = r.catch(() => undefined);
    return r;
  }

  private persist(): void {
    save(this.o.stateDir, { version: this.version, state: this.state, endpoints: [...this.endpoints.values()] });
  }

  // --- the cluster view ----------------------------------------------------------------------

  updateState(req: Partial<UpdateStateRequest>): Promise<{ version: number }> {
    return this.serial(async () => {
      let next;
      try {
        next = applyUpdate(this.state, this.version, req);
      } catch (e) {
        if (e instanceof StateError) throw new PluginError(CNI.STATE_REJECTED, e.message, e.kind === 'version' ? 9 /* FAILED_PRECONDITION */ : 3 /* INVALID_ARGUMENT */);
        throw e;
      }
      if (this.state.node_id && next.state.node_id !== this.state.node_id && this.endpoints.size > 0) {
        throw new PluginError(CNI.STATE_REJECTED, `this plugin serves node ${this.state.node_id} and holds ${this.endpoints.size} pod(s); a state for node ${next.state.node_id} is refused`, 3);
      }
      this.state = next.state;
      this.version = next.version;
      this.persist();
      await this.reconcile(false);
      return { version: this.version };
    });
  }

  status(): { ready: boolean; message: string; state_version: number; node_id: string; dns_servers: string[] } {
    const ready = this.version > 0 && !!this.underlay;
    return {
      ready,
      message: ready ? '' : 'no cluster state yet: the node agent has not pushed one (UpdateState)',
      state_version: this.version,
      node_id: this.state.node_id,
      dns_servers: [this.dnsAddress],
    };
  }

  // --- reconcile -----------------------------------------------------------------------------

  private async reconcile(force: boolean): Promise<void> {
    const underlay = this.underlay!;
    // Pods whose namespace is gone (removed without DEL, or the runtime crashed): forget them.
    let dropped = false;
    // A pod whose namespace went away takes its veths with it; a namespace file can outlive its
    // namespace (an unmounted bind mount), so a pod with none of its host ends left is gone too.
    const links = new Set((await ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname));
    for (const [k, ep] of this.endpoints) {
      if (!existsSync(ep.netns) || !ep.ifaces.some((i) => links.has(i.hostVeth))) {
        await unplumb({ netns: '', ifaces: ep.ifaces }).catch((e) => this.log(`removing ${ep.containerId}'s interfaces: ${(e as Error).message}`));
        this.endpoints.delete(k);
        this.podRules.delete(k);
        dropped = true;
        this.log(`pod ${ep.containerId} (task ${ep.taskId}): its network namespace ${ep.netns} is gone; forgot it`);
      }
    }
    if (dropped) this.persist();
    const nets = localNets(this.state);
    const keepVeths = new Set([...this.endpoints.values()].flatMap((e) => e.ifaces.map((i) => i.hostVeth)));
    const sig = JSON.stringify([nets, [...keepVeths].sort()]);
    if (force || sig !== this.hostLinksSig) {
      const { removed } = await reconcileHost({ underlay, dnsAddress: this.dnsAddress, nets, keepVeths });
      if (removed.length) this.log(`removed leftover interfaces: ${removed.join(', ')}`);
      this.hostLinksSig = sig;
    }
    const rules = hostRuleset({ underlay: underlay.address, dnsAddress: this.dnsAddress, nets, ports: portRules(this.state, nets, this.log), clusterRanges: clusterRanges(this.state) });
    if (force || rules !== this.hostRules) {
      await nft(rules);
      this.hostRules = rules;
    }
    for (const [k, ep] of this.endpoints) await this.applyPodRules(k, ep, force);
    if (nets.length > 0) await this.resolver.ensureBound().catch((e) => this.log((e as Error).message));
  }

  private async applyPodRules(key: string, ep: Endpoint, force: boolean): Promise<void> {
    const script = podRuleset(podVips(this.state, ep.ifaces.map((i) => i.networkId)));
    if (!force && this.podRules.get(key) === script) return;
    try {
      await applyPodTable(ep.netns, script);
      this.podRules.set(key, script);
    } catch (e) {
      this.podRules.delete(key);
      this.log(`pod ${ep.containerId}: VIP rules not applied: ${(e as Error).message}`);
    }
  }

  // --- pods (CNI) ----------------------------------------------------------------------------

  private findAttachment(pod: PodRef): Attachment | undefined {
    const byTask = pod.pod_annotations?.[TASK_ANNOTATION];
    const atts = this.state.attachments;
    if (byTask) return atts.find((a) => a.task_id === byTask);
    const uid = pod.args?.K8S_POD_UID;
    if (uid) {
      const a = atts.find((x) => x.task_id === uid);
      if (a) return a;
    }
    const ns = pod.args?.K8S_POD_NAMESPACE;
    const name = pod.args?.K8S_POD_NAME;
    if (ns && name) return atts.find((x) => x.pod_namespace === ns && x.pod_name === name);
    return undefined;
  }

  private podId(pod: PodRef): string {
    const a = pod.args ?? {};
    return pod.pod_annotations?.[TASK_ANNOTATION] ? `task ${pod.pod_annotations[TASK_ANNOTATION]}` : a.K8S_POD_UID ? `pod uid ${a.K8S_POD_UID}` : a.K8S_POD_NAME ? `pod ${a.K8S_POD_NAMESPACE ?? ''}/${a.K8S_POD_NAME}` : 'a pod with no task annotation, K8S_POD_UID or K8S_POD_NAME';
  }

  private checkPodRef(pod: PodRef, needNetns: boolean): void {
    if (!pod.container_id) throw new PluginError(CNI.INVALID_ENV, 'CNI_CONTAINERID is empty');
    if (!IFNAME_RE.test(pod.ifname ?? '')) throw new PluginError(CNI.INVALID_ENV, `CNI_IFNAME "${pod.ifname ?? ''}" is not a valid interface name (1-15 of A-Z a-z 0-9 _ . -)`);
    if (needNetns) {
      if (!pod.netns) throw new PluginError(CNI.INVALID_ENV, 'CNI_NETNS is empty');
      if (!pod.netns.startsWith('/')) throw new PluginError(CNI.INVALID_ENV, `CNI_NETNS "${pod.netns}" is not an absolute path`);
      if (!existsSync(pod.netns)) throw new PluginError(CNI.INVALID_ENV, `CNI_NETNS ${pod.netns} does not exist`);
    }
  }

  add(pod: PodRef): Promise<{ result: Result; task_id: string }> {
    return this.serial(async () => {
      this.checkPodRef(pod, true);
      if (this.version === 0) throw new PluginError(CNI.TRY_AGAIN_LATER, 'the network plugin has no cluster state yet (the node agent pushes it); try again later');
      const key = endpointKey(pod.container_id, pod.ifname);
      const have = this.endpoints.get(key);
      if (have) {
        if (have.netns === pod.netns) return { result: this.result(have, pod.cni_version), task_id: have.taskId };
        throw new PluginError(CNI.INVALID_CONFIG, `container ${pod.container_id} already has ${pod.ifname} in ${have.netns}; DEL it first`);
      }
      const att = this.findAttachment(pod);
      if (!att) throw new PluginError(CNI.TRY_AGAIN_LATER, `no network attachment for ${this.podId(pod)} on node ${this.state.node_id}: the agent pushes a task's attachment before it runs the pod; try again later`);
      const nets = new Map(localNets(this.state).map((n) => [n.net.id, n]));
      const names = podIfnames(pod.ifname, att.networks.length);
      const used = new Map<string, [string, Endpoint]>();
      for (const [k, e] of this.endpoints) for (const i of e.ifaces) used.set(i.address, [k, e]);
      const wanted = new Set(this.state.attachments.map((a) => a.task_id));
      // Pods holding one of this task's addresses whose own task the agent no longer attaches.
      const stale = new Map<string, Endpoint>();
      const mtu = overlayMtu(this.underlay!);
      const ifaces: EndpointIface[] = att.networks.map((na, idx) => {
        const n = nets.get(na.network_id);
        if (!n) throw new PluginError(CNI.TRY_AGAIN_LATER, `task ${att.task_id}: network ${na.network_id} has no subnet for node ${this.state.node_id} yet; try again later`);
        const ip = parseIp(na.address);
        const last = (n.nodeSubnet.base + 2 ** (32 - n.nodeSubnet.bits) - 1) >>> 0;
        if (!contains(n.nodeSubnet, ip) || ip === n.nodeSubnet.base || ip === n.nodeSubnet.base + 1 || ip === last) {
          throw new PluginError(CNI.INVALID_CONFIG, `task ${att.task_id}: address ${na.address} is not a task address of this node's subnet ${fmtIp(n.nodeSubnet.base)}/${n.nodeSubnet.bits} of network ${n.net.name || n.net.id}`);
        }
        const holder = used.get(na.address);
        if (holder) {
          const [hk, other] = holder;
          // The agent still attaches the other task: its pod is live; the agent waits for it to go
          // before it pushes another task with the address, so this is a caller's mistake.
          if (wanted.has(other.taskId)) throw new PluginError(CNI.INVALID_CONFIG, `task ${att.task_id}: address ${na.address} is still used by task ${other.taskId}'s pod (container ${other.containerId}) on this node, whose attachment the agent still holds; DEL that pod first`);
          stale.set(hk, other);
        }
        const podIfname = names[idx]!;
        const hostVeth = vethName(pod.container_id, podIfname);
        return { networkId: n.net.id, vni: n.net.vni, podIfname, hostVeth, address: na.address, prefix: n.nodeSubnet.bits, gateway: n.gateway, podMac: podMac(na.address), hostMac: hostMac(hostVeth) };
      });
      // A pod of a task the agent no longer attaches (it gave the address to this task: it knows
      // of no pod of its own holding it) is one nobody will DEL: e.g. its runtime was killed
      // between this ADD and recording the pod. Its interfaces go and the address is this task's.
      for (const [hk, old] of stale) {
        try {
          await unplumb(old);
        } catch (e) {
          throw new PluginError(CNI.DATAPATH_FAILURE, `task ${att.task_id}: address ${old.ifaces.map((i) => i.address).join(', ')} is held by the stale pod ${old.containerId} of task ${old.taskId} (no longer attached by the agent), whose interfaces could not be removed: ${(e as Error).message}`);
        }
        this.endpoints.delete(hk);
        this.podRules.delete(hk);
        this.hostLinksSig = '';
        this.log(`pod ${old.containerId} (task ${old.taskId}) held ${old.ifaces.map((i) => i.address).join(', ')}, but the agent no longer attaches task ${old.taskId} and gave the address to task ${att.task_id}: removed its interfaces (a pod nobody tears down, e.g. its runtime was killed while creating it)`);
      }
      const ep: Endpoint = { containerId: pod.container_id, ifname: pod.ifname, netns: pod.netns, taskId: att.task_id, ifaces, mtu };
      // Recorded before anything is made: a crash half-way leaves a record the next reconcile or
      // DEL cleans up, never an interface nobody knows.
      this.endpoints.set(key, ep);
      this.persist();
      try {
        for (const [idx, iface] of ifaces.entries()) {
          await plumb({ netns: pod.netns, mtu, dnsAddress: this.dnsAddress, vipRange: this.state.vip_range, iface, net: nets.get(iface.networkId)!, first: idx === 0 });
        }
        await applyPodTable(pod.netns, podRuleset(podVips(this.state, ifaces.map((i) => i.networkId))));
      } catch (e) {
        await unplumb(ep).catch(() => undefined);
        this.endpoints.delete(key);
        this.persist();
        throw new PluginError(CNI.DATAPATH_FAILURE, `attaching task ${att.task_id} (container ${pod.container_id}): ${(e as Error).message}`);
      }
      this.podRules.set(key, podRuleset(podVips(this.state, ifaces.map((i) => i.networkId))));
      this.hostLinksSig = ''; // the set of veths to keep changed
      return { result: this.result(ep, pod.cni_version), task_id: att.task_id };
    });
  }

  private result(ep: Endpoint, cniVersion: string): Result {
    const interfaces = ep.ifaces.flatMap((i) => [
      { name: i.hostVeth, mac: i.hostMac, sandbox: '', mtu: ep.mtu },
      { name: i.podIfname, mac: i.podMac, sandbox: ep.netns, mtu: ep.mtu },
    ]);
    const nets = new Map(this.state.networks.map((n) => [n.id, n]));
    const ips = ep.ifaces.map((i, idx) => ({ address: `${i.address}/${i.prefix}`, gateway: i.gateway, interface: idx * 2 + 1 }));
    const routes = ep.ifaces.map((i) => ({ dst: nets.get(i.networkId)?.subnet ?? '', gw: i.gateway })).filter((r) => r.dst);
    const first = ep.ifaces[0]!;
    if (!nets.get(first.networkId)?.internal) routes.unshift({ dst: '0.0.0.0/0', gw: first.gateway });
    else if (this.state.vip_range) routes.push({ dst: this.state.vip_range, gw: first.gateway });
    return { cni_version: cniVersion || '1.0.0', interfaces, ips, routes, dns: { nameservers: [this.dnsAddress], domain: '', search: [], options: [] } };
  }

  del(pod: PodRef): Promise<void> {
    return this.serial(async () => {
      this.checkPodRef(pod, false);
      const key = endpointKey(pod.container_id, pod.ifname);
      const ep = this.endpoints.get(key);
      if (!ep) {
        // Nothing recorded (ADD never got far, or a DEL already ran): remove what our names would be.
        const names = podIfnames(pod.ifname, 4).map((n) => vethName(pod.container_id, n));
        await unplumb({ netns: '', ifaces: names.map((hostVeth) => ({ hostVeth } as EndpointIface)) });
        return;
      }
      try {
        await unplumb({ netns: pod.netns || ep.netns, ifaces: ep.ifaces });
      } catch (e) {
        throw new PluginError(CNI.DATAPATH_FAILURE, `removing container ${pod.container_id}'s interfaces: ${(e as Error).message}`);
      }
      this.endpoints.delete(key);
      this.podRules.delete(key);
      this.hostLinksSig = '';
      this.persist();
    });
  }

  check(pod: PodRef): Promise<void> {
    return this.serial(async () => {
      this.checkPodRef(pod, true);
      const ep = this.endpoints.get(endpointKey(pod.container_id, pod.ifname));
      if (!ep) throw new PluginError(CNI.UNKNOWN_CONTAINER, `container ${pod.container_id} has no ${pod.ifname} attached by this plugin`);
      if (ep.netns !== pod.netns) throw new PluginError(CNI.INVALID_CONFIG, `container ${pod.container_id} was attached in ${ep.netns}, not ${pod.netns}`);
      const problems = await inspect(ep);
      if (problems.length) throw new PluginError(CNI.DATAPATH_FAILURE, `container ${pod.container_id}: ${problems.join('; ')}`);
    });
  }

  gc(valid: ValidAttachment[]): Promise<ValidAttachment[]> {
    return this.serial(async () => {
      const keep = new Set(valid.map((v) => endpointKey(v.container_id, v.ifname)));
      const removed: ValidAttachment[] = [];
      for (const [k, ep] of [...this.endpoints]) {
        if (keep.has(k)) continue;
        await unplumb(ep).catch((e) => this.log(`gc ${ep.containerId}: ${(e as Error).message}`));
        this.endpoints.delete(k);
        this.podRules.delete(k);
        removed.push({ container_id: ep.containerId, ifname: ep.ifname });
      }
      if (removed.length) {
        this.hostLinksSig = '';
        this.persist();
      }
      return removed;
    });
  }

  // --- DNS -----------------------------------------------------------------------------------

  private lookup(client: string, name: string): { known: boolean; addrs: string[] } | undefined {
    let ep: Endpoint | undefined;
    for (const e of this.endpoints.values()) if (e.ifaces.some((i) => i.address === client)) { ep = e; break; }
    if (!ep) return undefined;
    const addrs = resolveName(this.state, ep.ifaces.map((i) => i.networkId), name);
    return addrs ? { known: true, addrs } : { known: false, addrs: [] };
  }

  /** Stops serving DNS. The data path stays: pods keep their network while the plugin is away. */
  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
    await this.resolver.close();
  }

  /** Removes everything this plugin made on the node (tests, and `shoal-net --teardown`). */
  teardown(): Promise<void> {
    return this.serial(async () => {
      for (const ep of this.endpoints.values()) await unplumb(ep).catch(() => undefined);
      this.endpoints.clear();
      this.podRules.clear();
      await reconcileHost({ underlay: this.underlay!, dnsAddress: this.dnsAddress, nets: [], keepVeths: new Set() });
      await nft(deleteTableScript()).catch(() => undefined);
      this.hostRules = '';
      this.hostLinksSig = '';
      await this.resolver.close();
      this.persist();
    });
  }
}
