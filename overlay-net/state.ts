// The cluster view the plugin holds: validated on arrival (a bad update is refused whole and
// changes nothing), updated by full states and versioned deltas, and persisted (fsynced) with
// the pods' endpoints so a restarted plugin re-establishes and cleans the data path at once.
import type { Attachment, ClusterState, Network, Node, Service, UpdateStateRequest } from '../proto/network/types.js';
import { contains, overlaps, parseCidr, parseIp } from './ipv4.js';

export class StateError extends Error {
  constructor(msg: string, readonly kind: 'invalid' | 'version') {
    super(msg);
  }
}

export function emptyState(): ClusterState {
  return { node_id: '', networks: [], nodes: [], services: [], attachments: [], vip_range: '', dns_upstreams: [] };
}

/** Normalises what proto-loader or JSON gives (missing repeated fields) into full objects. */
export function normState(s: Partial<ClusterState> | undefined): ClusterState {
  const x = s ?? {};
  return {
    node_id: x.node_id ?? '',
    networks: (x.networks ?? []).map((n) => ({ id: n.id ?? '', name: n.name ?? '', vni: Number(n.vni ?? 0), subnet: n.subnet ?? '', internal: !!n.internal, node_subnets: (n.node_subnets ?? []).map((ns) => ({ node_id: ns.node_id ?? '', subnet: ns.subnet ?? '' })) })),
    nodes: (x.nodes ?? []).map((n) => ({ id: n.id ?? '', underlay_addr: n.underlay_addr ?? '' })),
    services: (x.services ?? []).map((s) => ({
      id: s.id ?? '', name: s.name ?? '', endpoint_mode: Number(s.endpoint_mode ?? 0),
      vips: (s.vips ?? []).map((v) => ({ network_id: v.network_id ?? '', address: v.address ?? '' })),
      network_ids: [...(s.network_ids ?? [])],
      ports: (s.ports ?? []).map((p) => ({ protocol: Number(p.protocol ?? 0), target_port: Number(p.target_port ?? 0), published_port: Number(p.published_port ?? 0), mode: Number(p.mode ?? 0) })),
      backends: (s.backends ?? []).map((b) => ({ task_id: b.task_id ?? '', node_id: b.node_id ?? '', ready: !!b.ready, name: b.name ?? '', addresses: (b.addresses ?? []).map((a) => ({ network_id: a.network_id ?? '', address: a.address ?? '' })) })),
    })),
    attachments: (x.attachments ?? []).map((a) => ({ task_id: a.task_id ?? '', pod_namespace: a.pod_namespace ?? '', pod_name: a.pod_name ?? '', networks: (a.networks ?? []).map((n) => ({ network_id: n.network_id ?? '', address: n.address ?? '' })) })),
    vip_range: x.vip_range ?? '',
    dns_upstreams: [...(x.dns_upstreams ?? [])],
  };
}

function upsert<T extends { id: string }>(list: T[], items: T[], removed: string[]): T[] {
  const m = new Map(list.map((x) => [x.id, x]));
  for (const id of removed) m.delete(id);
  for (const it of items) m.set(it.id, it);
  return [...m.values()];
}

/** The state after `req` is applied to `cur` (at version `curVersion`); throws StateError. */
export function applyUpdate(cur: ClusterState, curVersion: number, req: Partial<UpdateStateRequest>): { state: ClusterState; version: number } {
  const version = Number(req.version ?? 0);
  const inc = normState(req.state);
  let next: ClusterState;
  if (req.full) {
    if (!(version > 0)) throw new StateError('a full state needs a version > 0', 'invalid');
    next = inc;
  } else {
    const base = Number(req.base_version ?? 0);
    if (base !== curVersion) throw new StateError(`delta applies on version ${base} but the plugin holds version ${curVersion}; send a full state`, 'version');
    if (!(version > base)) throw new StateError(`delta version ${version} must be greater than its base version ${base}`, 'invalid');
    if (inc.node_id && cur.node_id && inc.node_id !== cur.node_id) throw new StateError(`delta is for node ${inc.node_id} but the plugin serves node ${cur.node_id}; send a full state`, 'invalid');
    next = {
      node_id: inc.node_id || cur.node_id,
      networks: upsert(cur.networks, inc.networks, req.removed_networks ?? []),
      nodes: upsert(cur.nodes, inc.nodes, req.removed_nodes ?? []),
      services: upsert(cur.services, inc.services, req.removed_services ?? []),
      attachments: upsertAttachments(cur.attachments, inc.attachments, req.removed_attachments ?? []),
      vip_range: inc.vip_range || cur.vip_range,
      dns_upstreams: inc.dns_upstreams.length ? inc.dns_upstreams : cur.dns_upstreams,
    };
  }
  validateState(next);
  return { state: next, version };
}

function upsertAttachments(list: Attachment[], items: Attachment[], removed: string[]): Attachment[] {
  const m = new Map(list.map((x) => [x.task_id, x]));
  for (const id of removed) m.delete(id);
  for (const it of items) m.set(it.task_id, it);
  return [...m.values()];
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const DNS_LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

function checkId(what: string, id: string): void {
  if (!ID_RE.test(id)) throw new StateError(`${what} id "${id}" is not valid (letters, digits, _ . -; 1-128 characters)`, 'invalid');
}

function checkIp(what: string, s: string): number {
  try {
    return parseIp(s);
  } catch (e) {
    throw new StateError(`${what}: ${(e as Error).message}`, 'invalid');
  }
}

/** Every reference resolves, every address and range parses and fits; throws StateError naming the first problem. */
export function validateState(s: ClusterState): void {
  if (!s.node_id) throw new StateError('state.node_id is empty: the plugin must know which node it serves', 'invalid');
  checkId('node', s.node_id);
  const nodes = new Map<string, Node>();
  for (const n of s.nodes) {
    checkId('node', n.id);
    if (nodes.has(n.id)) throw new StateError(`node ${n.id} is listed twice`, 'invalid');
    checkIp(`node ${n.id} underlay_addr`, n.underlay_addr);
    nodes.set(n.id, n);
  }
  let vipRange;
  if (s.vip_range) {
    try { vipRange = parseCidr(s.vip_range); } catch (e) { throw new StateError(`vip_range: ${(e as Error).message}`, 'invalid'); }
  }
  for (const u of s.dns_upstreams) checkIp('dns_upstreams', u.replace(/:\d+$/, ''));
  const nets = new Map<string, Network>();
  const vnis = new Map<number, string>();
  const subnets: { id: string; c: ReturnType<typeof parseCidr> }[] = [];
  for (const n of s.networks) {
    checkId('network', n.id);
    if (nets.has(n.id)) throw new StateError(`network ${n.id} is listed twice`, 'invalid');
    if (!Number.isInteger(n.vni) || n.vni < 1 || n.vni > 0xffffff) throw new StateError(`network ${n.id}: vni ${n.vni} out of range 1-16777215`, 'invalid');
    const other = vnis.get(n.vni);
    if (other) throw new StateError(`networks ${other} and ${n.id} share vni ${n.vni}`, 'invalid');
    vnis.set(n.vni, n.id);
    let c;
    try { c = parseCidr(n.subnet); } catch (e) { throw new StateError(`network ${n.id} subnet: ${(e as Error).message}`, 'invalid'); }
    for (const o of subnets) if (overlaps(o.c, c)) throw new StateError(`network ${n.id} subnet ${n.subnet} overlaps network ${o.id}`, 'invalid');
    if (vipRange && overlaps(vipRange, c)) throw new StateError(`network ${n.id} subnet ${n.subnet} overlaps the vip_range ${s.vip_range}`, 'invalid');
    subnets.push({ id: n.id, c });
    const seen = new Set<string>();
    const nodeSubs: ReturnType<typeof parseCidr>[] = [];
    for (const ns of n.node_subnets) {
      if (seen.has(ns.node_id)) throw new StateError(`network ${n.id}: node ${ns.node_id} has two subnets`, 'invalid');
      seen.add(ns.node_id);
      let sc;
      try { sc = parseCidr(ns.subnet); } catch (e) { throw new StateError(`network ${n.id} node ${ns.node_id} subnet: ${(e as Error).message}`, 'invalid'); }
      if (sc.bits < c.bits || !contains(c, sc.base)) throw new StateError(`network ${n.id}: node ${ns.node_id} subnet ${ns.subnet} is not inside ${n.subnet}`, 'invalid');
      if (sc.bits > 30) throw new StateError(`network ${n.id}: node ${ns.node_id} subnet ${ns.subnet} is too small (at most /30)`, 'invalid');
      for (const o of nodeSubs) if (overlaps(o, sc)) throw new StateError(`network ${n.id}: node subnet ${ns.subnet} overlaps another node's`, 'invalid');
      nodeSubs.push(sc);
    }
    nets.set(n.id, n);
  }
  const names = new Set<string>();
  const ids = new Set<string>();
  for (const sv of s.services) {
    checkId('service', sv.id);
    if (ids.has(sv.id)) throw new StateError(`service ${sv.id} is listed twice`, 'invalid');
    ids.add(sv.id);
    if (!DNS_LABEL_RE.test(sv.name)) throw new StateError(`service ${sv.id}: name "${sv.name}" is not a DNS label`, 'invalid');
    if (names.has(sv.name.toLowerCase())) throw new StateError(`two services are named ${sv.name}`, 'invalid');
    names.add(sv.name.toLowerCase());
    for (const nid of sv.network_ids) if (!nets.has(nid)) throw new StateError(`service ${sv.name}: unknown network ${nid}`, 'invalid');
    for (const v of sv.vips) {
      if (!nets.has(v.network_id)) throw new StateError(`service ${sv.name}: VIP on unknown network ${v.network_id}`, 'invalid');
      const ip = checkIp(`service ${sv.name} VIP`, v.address);
      if (vipRange && !contains(vipRange, ip)) throw new StateError(`service ${sv.name}: VIP ${v.address} is outside vip_range ${s.vip_range}`, 'invalid');
    }
    for (const p of sv.ports) {
      for (const [k, v] of [['target_port', p.target_port], ['published_port', p.published_port]] as const) {
        if (!Number.isInteger(v) || v < 1 || v > 65535) throw new StateError(`service ${sv.name}: ${k} ${v} out of range 1-65535`, 'invalid');
      }
      if (p.protocol !== 0 && p.protocol !== 1) throw new StateError(`service ${sv.name}: unknown protocol ${p.protocol}`, 'invalid');
    }
    for (const b of sv.backends) {
      checkId('task', b.task_id);
      for (const a of b.addresses) {
        if (!nets.has(a.network_id)) throw new StateError(`service ${sv.name} task ${b.task_id}: unknown network ${a.network_id}`, 'invalid');
        checkIp(`service ${sv.name} task ${b.task_id} address`, a.address);
      }
    }
  }
  const tasks = new Set<string>();
  for (const a of s.attachments) {
    checkId('task', a.task_id);
    if (tasks.has(a.task_id)) throw new StateError(`attachment for task ${a.task_id} is listed twice`, 'invalid');
    tasks.add(a.task_id);
    if (a.networks.length === 0) throw new StateError(`attachment for task ${a.task_id} names no network`, 'invalid');
    const seen = new Set<string>();
    for (const na of a.networks) {
      const net = nets.get(na.network_id);
      if (!net) throw new StateError(`attachment for task ${a.task_id}: unknown network ${na.network_id}`, 'invalid');
      if (seen.has(na.network_id)) throw new StateError(`attachment for task ${a.task_id}: network ${na.network_id} twice`, 'invalid');
      seen.add(na.network_id);
      const ip = checkIp(`attachment for task ${a.task_id}`, na.address);
      if (!contains(parseCidr(net.subnet), ip)) throw new StateError(`attachment for task ${a.task_id}: ${na.address} is not in network ${net.name || net.id} (${net.subnet})`, 'invalid');
    }
  }
}

export function serviceByName(s: ClusterState, name: string): Service | undefined {
  const l = name.toLowerCase();
  return s.services.find((x) => x.name.toLowerCase() === l);
}
