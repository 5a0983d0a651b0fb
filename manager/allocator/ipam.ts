// The allocator's address decisions: network subnets and VNIs, each node's subnet of a network,
// task addresses, service VIPs. Pure: an IpamPlan reads a snapshot of what the store holds and
// returns decisions; the leader commits them through raft before any task uses them. A new
// leader builds its plan from the store, which holds every committed decision, so no address is
// ever handed out twice across a failover (an uncommitted decision was never used by anyone).
//
// Layout (DESIGN.md §7): networks from the pool 10.0.0.0/8 (a /16 each unless the user gives a
// subnet), a /24 of the network per node that runs its tasks, VIPs from their own range
// (10.255.0.0/16 by default, kept out of network allocation). In a node's /24, .0 is the node's
// VXLAN endpoint, .1 the pods' gateway, .255 the broadcast address: tasks get .2 to .254.
import { contains, fmtCidr, fmtIp, overlaps, parseCidr, parseIp, size, type Cidr } from './ipv4.js';

export interface IpamConfig {
  pool: string;
  /** Size of the subnet a network gets when its spec names none. */
  networkBits: number;
  nodeSubnetBits: number;
  vipRange: string;
  /** Ranges never allocated (the nodes' own underlay subnets, for instance). */
  reserved: string[];
}

export const DEFAULT_IPAM_CONFIG: IpamConfig = { pool: '10.0.0.0/8', networkBits: 16, nodeSubnetBits: 24, vipRange: '10.255.0.0/16', reserved: [] };
/** VXLAN network identifiers from here up (Docker's overlay starts at 4096 too). */
export const FIRST_VNI = 4096;
export const MAX_VNI = 0xffffff;

export interface NetworkAlloc { id: string; name: string; subnet: string; vni: number; nodeSubnets: { nodeId: string; subnet: string }[] }
export interface TaskAddress { taskId: string; networkId: string; address: string }
export interface ServiceVip { serviceId: string; networkId: string; address: string }

export interface IpamSnapshot {
  config?: Partial<IpamConfig>;
  networks: NetworkAlloc[];
  taskAddresses: TaskAddress[];
  vips: ServiceVip[];
}

export type IpamErrorCode = 'invalid' | 'outside-pool' | 'overlap' | 'exhausted' | 'unknown-network' | 'in-use' | 'duplicate';

export class IpamError extends Error {
  constructor(readonly code: IpamErrorCode, msg: string) {
    super(msg);
  }
}

export type Decision =
  | { kind: 'network'; networkId: string; subnet: string; vni: number }
  | { kind: 'node-subnet'; networkId: string; nodeId: string; subnet: string }
  | { kind: 'node-subnet-release'; networkId: string; nodeId: string; subnet: string }
  | { kind: 'task-address'; taskId: string; networkId: string; address: string }
  | { kind: 'task-release'; taskId: string; networkId: string; address: string }
  | { kind: 'vip'; serviceId: string; networkId: string; address: string }
  | { kind: 'vip-release'; serviceId: string; networkId: string; address: string }
  | { kind: 'network-release'; networkId: string; subnet: string; vni: number };

function cidr(what: string, s: string): Cidr {
  try {
    return parseCidr(s);
  } catch (e) {
    throw new IpamError('invalid', `${what}: ${(e as Error).message}`);
  }
}

/** Decisions over one snapshot. Methods check and record; `decisions()` is what to commit. */
export class IpamPlan {
  readonly config: IpamConfig;
  private readonly pool: Cidr;
  private readonly vipRange: Cidr;
  private readonly reserved: Cidr[];
  private readonly networks = new Map<string, NetworkAlloc>();
  private readonly taskAddrs = new Map<string, TaskAddress>(); // `${task}/${net}`
  private readonly usedAddrs = new Map<string, string>(); // `${net}/${addr}` -> task
  private readonly vips = new Map<string, ServiceVip>(); // `${service}/${net}`
  private readonly usedVips = new Map<number, string>();
  private readonly out: Decision[] = [];

  constructor(snap: IpamSnapshot) {
    this.config = { ...DEFAULT_IPAM_CONFIG, ...(snap.config ?? {}) };
    this.pool = cidr('pool', this.config.pool);
    this.vipRange = cidr('vip range', this.config.vipRange);
    this.reserved = this.config.reserved.map((r) => cidr('reserved range', r));
    if (this.config.nodeSubnetBits > 30 || this.config.nodeSubnetBits < this.pool.bits) throw new IpamError('invalid', `node subnets of /${this.config.nodeSubnetBits} do not fit the pool ${this.config.pool}`);
    for (const n of snap.networks) this.networks.set(n.id, { ...n, nodeSubnets: [...n.nodeSubnets] });
    for (const a of snap.taskAddresses) {
      this.taskAddrs.set(`${a.taskId}/${a.networkId}`, a);
      this.usedAddrs.set(`${a.networkId}/${a.address}`, a.taskId);
    }
    for (const v of snap.vips) {
      this.vips.set(`${v.serviceId}/${v.networkId}`, v);
      this.usedVips.set(parseIp(v.address), v.serviceId);
    }
  }

  decisions(): Decision[] {
    return [...this.out];
  }

  /** A network's subnet and VNI: the user's subnet (validated) or the first free /networkBits. */
  createNetwork(p: { id: string; name: string; subnet?: string }): { subnet: string; vni: number } {
    if (this.networks.has(p.id)) throw new IpamError('duplicate', `network ${p.id} already has a subnet`);
    const c = p.subnet ? this.validateSubnet(p.subnet, p.name) : this.freeNetworkSubnet(p.name);
    const used = new Set([...this.networks.values()].map((n) => n.vni));
    let vni = FIRST_VNI;
    while (used.has(vni)) vni++;
    if (vni > MAX_VNI) throw new IpamError('exhausted', `no VXLAN network identifier is free for network ${p.name}`);
    const subnet = fmtCidr(c);
    this.networks.set(p.id, { id: p.id, name: p.name, subnet, vni, nodeSubnets: [] });
    this.out.push({ kind: 'network', networkId: p.id, subnet, vni });
    return { subnet, vni };
  }

  /** Checks a subnet a user asked for; returns it parsed, or throws naming the problem. */
  validateSubnet(subnet: string, name: string): Cidr {
    const c = cidr(`network ${name} subnet`, subnet);
    if (!contains(this.pool, c.base) || c.bits < this.pool.bits) throw new IpamError('outside-pool', `network ${name}: subnet ${subnet} is outside the address pool ${this.config.pool}`);
    if (c.bits > this.config.nodeSubnetBits) throw new IpamError('invalid', `network ${name}: subnet ${subnet} is smaller than one node's share (/${this.config.nodeSubnetBits}); use /${this.config.nodeSubnetBits} or larger`);
    if (overlaps(c, this.vipRange)) throw new IpamError('overlap', `network ${name}: subnet ${subnet} overlaps the service VIP range ${this.config.vipRange}`);
    for (const r of this.reserved) if (overlaps(c, r)) throw new IpamError('overlap', `network ${name}: subnet ${subnet} overlaps the reserved range ${fmtCidr(r)}`);
    for (const n of this.networks.values()) if (overlaps(c, parseCidr(n.subnet))) throw new IpamError('overlap', `network ${name}: subnet ${subnet} overlaps network ${n.name} (${n.subnet})`);
    return c;
  }

  private freeNetworkSubnet(name: string): Cidr {
    const bits = this.config.networkBits;
    const step = 2 ** (32 - bits);
    const taken = [...[...this.networks.values()].map((n) => parseCidr(n.subnet)), this.vipRange, ...this.reserved];
    for (let base = this.pool.base; base < this.pool.base + size(this.pool); base += step) {
      const c = { base: base >>> 0, bits };
      if (!taken.some((x) => overlaps(x, c))) return c;
    }
    throw new IpamError('exhausted', `no /${bits} is free in the address pool ${this.config.pool} for network ${name}; remove unused networks or give a smaller --subnet`);
  }

  private net(id: string): NetworkAlloc {
    const n = this.networks.get(id);
    if (!n) throw new IpamError('unknown-network', `unknown network ${id}`);
    return n;
  }

  /** The node's subnet of the network: the one it has, or the first free one. */
  nodeSubnet(networkId: string, nodeId: string): string {
    const n = this.net(networkId);
    const have = n.nodeSubnets.find((x) => x.nodeId === nodeId);
    if (have) return have.subnet;
    const whole = parseCidr(n.subnet);
    const bits = this.config.nodeSubnetBits;
    const taken = n.nodeSubnets.map((x) => parseCidr(x.subnet));
    for (let base = whole.base; base < whole.base + size(whole); base += 2 ** (32 - bits)) {
      const c = { base: base >>> 0, bits };
      if (taken.some((x) => overlaps(x, c))) continue;
      const subnet = fmtCidr(c);
      n.nodeSubnets.push({ nodeId, subnet });
      this.out.push({ kind: 'node-subnet', networkId, nodeId, subnet });
      return subnet;
    }
    throw new IpamError('exhausted', `network ${n.name} (${n.subnet}) has no /${bits} left for node ${nodeId}: all ${size(whole) / 2 ** (32 - bits)} node subnets are taken; give the network a larger subnet`);
  }

  /** A task's address on a network, from its node's subnet (allocated if the node has none). */
  taskAddress(networkId: string, nodeId: string, taskId: string): string {
    const have = this.taskAddrs.get(`${taskId}/${networkId}`);
    if (have) return have.address;
    const n = this.net(networkId);
    const sub = parseCidr(this.nodeSubnet(networkId, nodeId));
    const last = sub.base + size(sub) - 1;
    for (let ip = sub.base + 2; ip < last; ip++) {
      const a = fmtIp(ip >>> 0);
      if (this.usedAddrs.has(`${networkId}/${a}`)) continue;
      const rec = { taskId, networkId, address: a };
      this.taskAddrs.set(`${taskId}/${networkId}`, rec);
      this.usedAddrs.set(`${networkId}/${a}`, taskId);
      this.out.push({ kind: 'task-address', ...rec });
      return a;
    }
    throw new IpamError('exhausted', `node ${nodeId}'s subnet ${fmtCidr(sub)} of network ${n.name} is full (${size(sub) - 3} task addresses in use)`);
  }

  /** A service's VIP on a network, from the VIP range. */
  vip(serviceId: string, networkId: string): string {
    const have = this.vips.get(`${serviceId}/${networkId}`);
    if (have) return have.address;
    this.net(networkId);
    const r = this.vipRange;
    // .0 and the last address are skipped (network and broadcast of the range).
    for (let ip = r.base + 1; ip < r.base + size(r) - 1; ip++) {
      if (this.usedVips.has(ip)) continue;
      const rec = { serviceId, networkId, address: fmtIp(ip >>> 0) };
      this.vips.set(`${serviceId}/${networkId}`, rec);
      this.usedVips.set(ip, serviceId);
      this.out.push({ kind: 'vip', ...rec });
      return rec.address;
    }
    throw new IpamError('exhausted', `the service VIP range ${this.config.vipRange} is full (${size(r) - 2} VIPs in use)`);
  }

  /** Frees a task's addresses (all networks). */
  releaseTask(taskId: string): void {
    for (const [k, a] of [...this.taskAddrs]) {
      if (a.taskId !== taskId) continue;
      this.taskAddrs.delete(k);
      this.usedAddrs.delete(`${a.networkId}/${a.address}`);
      this.out.push({ kind: 'task-release', ...a });
    }
  }

  releaseService(serviceId: string): void {
    for (const [k, v] of [...this.vips]) {
      if (v.serviceId !== serviceId) continue;
      this.vips.delete(k);
      this.usedVips.delete(parseIp(v.address));
      this.out.push({ kind: 'vip-release', ...v });
    }
  }

  /** Frees a node's subnet of a network; refused while a task address in it is allocated. */
  releaseNodeSubnet(networkId: string, nodeId: string): void {
    const n = this.net(networkId);
    const i = n.nodeSubnets.findIndex((x) => x.nodeId === nodeId);
    if (i < 0) return;
    const sub = parseCidr(n.nodeSubnets[i]!.subnet);
    const inUse = [...this.taskAddrs.values()].filter((a) => a.networkId === networkId && contains(sub, parseIp(a.address)));
    if (inUse.length) throw new IpamError('in-use', `node ${nodeId}'s subnet ${fmtCidr(sub)} of network ${n.name} still holds ${inUse.length} task address(es) (e.g. task ${inUse[0]!.taskId}); release the tasks first`);
    const [rm] = n.nodeSubnets.splice(i, 1);
    this.out.push({ kind: 'node-subnet-release', networkId, nodeId, subnet: rm!.subnet });
  }

  /** Frees a network; refused while tasks or VIPs use it. */
  removeNetwork(networkId: string): void {
    const n = this.net(networkId);
    const tasks = [...this.taskAddrs.values()].filter((a) => a.networkId === networkId);
    const vips = [...this.vips.values()].filter((v) => v.networkId === networkId);
    if (tasks.length || vips.length) throw new IpamError('in-use', `network ${n.name} is in use (${tasks.length} task address(es), ${vips.length} VIP(s)); remove its services first`);
    this.networks.delete(networkId);
    this.out.push({ kind: 'network-release', networkId, subnet: n.subnet, vni: n.vni });
  }
}

