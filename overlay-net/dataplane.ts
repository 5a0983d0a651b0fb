// The node's side of the data path: per network a bridge (the pods' gateway and the resolver's
// address) and a VXLAN device (own VNI, UDP 4789, learning off, the node subnet's first address)
// with, for every peer on that network, a static neighbour entry (peer's VXLAN address -> its
// MAC), a static FDB entry (MAC -> peer's underlay address) and a route to the peer's subnet.
// Reconciled from what the kernel holds: whatever carries shoal's names and is not wanted goes.
import { fmtCidr, fmtIp, nth } from './ipv4.js';
import { VXLAN_OVERHEAD, VXLAN_PORT, bridgeName, isOurLink, vtepMac, vxlanName } from './names.js';
import { bridgeBatch, exec, ipBatch, ipJson } from './sys.js';
import type { LocalNet } from './view.js';

interface LinkJson {
  ifname: string;
  mtu?: number;
  address?: string;
  master?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number; learning?: boolean } };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

export interface Underlay { address: string; ifname: string; mtu: number }

/** The interface holding the node's underlay address, and its MTU. */
export async function findUnderlay(address: string): Promise<Underlay> {
  const links = await ipJson<LinkJson[]>(['addr', 'show']);
  for (const l of links) {
    if (l.addr_info?.some((a) => a.family === 'inet' && a.local === address)) return { address, ifname: l.ifname, mtu: l.mtu ?? 1500 };
  }
  throw new Error(`no interface of this network namespace has the underlay address ${address}; give --underlay-addr an address of this node (ip -4 addr)`);
}

export function overlayMtu(u: Underlay): number {
  return u.mtu - VXLAN_OVERHEAD;
}

/** Deterministic MACs: the gateway's from its address, so pods' ARP caches survive a rebuild. */
export function gatewayMac(gateway: string): string {
  return '02:52:' + gateway.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join(':');
}

export interface HostReconcileInput {
  underlay: Underlay;
  dnsAddress: string;
  nets: LocalNet[];
  /** Host ends of pods' veths that belong to known endpoints (others are removed). */
  keepVeths: Set<string>;
}

/** Brings the node's links, addresses, neighbours, FDB entries and routes to what `p` wants. */
export async function reconcileHost(p: HostReconcileInput): Promise<{ removed: string[] }> {
  const mtu = overlayMtu(p.underlay);
  const links = await ipJson<LinkJson[]>(['-d', 'addr', 'show']);
  const byName = new Map(links.map((l) => [l.ifname, l]));
  const want = new Map<string, LocalNet>();
  for (const n of p.nets) {
    want.set(bridgeName(n.net.vni), n);
    want.set(vxlanName(n.net.vni), n);
  }
  const removed: string[] = [];
  const cmds: string[] = [];
  // Leftovers: our names that nothing wants, and devices whose parameters changed.
  for (const l of links) {
    if (!isOurLink(l.ifname)) continue;
    const n = want.get(l.ifname);
    let keep: boolean;
    if (l.ifname.startsWith('shv-')) keep = p.keepVeths.has(l.ifname);
    else if (!n) keep = false;
    else if (l.ifname.startsWith('shvx-')) {
      const d = l.linkinfo?.info_data;
      keep = l.linkinfo?.info_kind === 'vxlan' && d?.id === n.net.vni && d?.local === p.underlay.address && d?.port === VXLAN_PORT && d?.learning === false;
    } else keep = l.linkinfo?.info_kind === 'bridge';
    if (!keep) {
      cmds.push(`link del ${l.ifname}`);
      removed.push(l.ifname);
      byName.delete(l.ifname);
    }
  }
  for (const n of p.nets) {
    const br = bridgeName(n.net.vni);
    const vx = vxlanName(n.net.vni);
    if (!byName.has(br)) cmds.push(`link add ${br} address ${gatewayMac(n.gateway)} mtu ${mtu} type bridge`);
    else cmds.push(`link set ${br} mtu ${mtu}`);
    if (!byName.has(vx)) cmds.push(`link add ${vx} address ${vtepMac(p.underlay.address)} mtu ${mtu} type vxlan id ${n.net.vni} local ${p.underlay.address} dev ${p.underlay.ifname} dstport ${VXLAN_PORT} nolearning`);
    else cmds.push(`link set ${vx} mtu ${mtu}`);
    // Addresses: exactly the wanted ones.
    const wantAddrs = new Map([[br, [`${n.gateway}/${n.nodeSubnet.bits}`, `${p.dnsAddress}/32`]], [vx, [`${n.vtep}/32`]]]);
    for (const [dev, addrs] of wantAddrs) {
      const have = (byName.get(dev)?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
      for (const a of have) if (!addrs.includes(a)) cmds.push(`addr del ${a} dev ${dev}`);
      for (const a of addrs) if (!have.includes(a)) cmds.push(`addr add ${a} dev ${dev}${a.startsWith(p.dnsAddress + '/') ? ' scope link' : ''}`);
    }
    cmds.push(`link set ${br} up`, `link set ${vx} up`);
  }
  await ipBatch(cmds);
  // Peers, per VXLAN device.
  const ipCmds: string[] = [];
  const fdbCmds: string[] = [];
  for (const n of p.nets) {
    const vx = vxlanName(n.net.vni);
    const [neighs, fdb, routes] = await Promise.all([
      ipJson<{ dst: string; lladdr?: string; state?: string[] }[]>(['neigh', 'show', 'dev', vx]),
      exec(['bridge', '-j', 'fdb', 'show', 'dev', vx]).then((o) => (o.trim() ? JSON.parse(o) : []) as { mac: string; dst?: string; flags?: string[] }[]),
      ipJson<{ dst: string; gateway?: string }[]>(['route', 'show', 'dev', vx]),
    ]);
    const wantNeigh = new Map(n.peers.map((x) => [x.vtep, vtepMac(x.underlay)]));
    const wantFdb = new Map(n.peers.map((x) => [vtepMac(x.underlay), x.underlay]));
    const wantRoute = new Map(n.peers.map((x) => [fmtCidr(x.subnet), x.vtep]));
    for (const e of neighs) if (wantNeigh.get(e.dst) !== e.lladdr) ipCmds.push(`neigh del ${e.dst} dev ${vx}`);
    for (const [dst, mac] of wantNeigh) if (!neighs.some((e) => e.dst === dst && e.lladdr === mac && e.state?.includes('PERMANENT'))) ipCmds.push(`neigh replace ${dst} lladdr ${mac} dev ${vx} nud permanent`);
    for (const e of fdb) {
      if (!e.dst) continue; // the device's own entries
      if (wantFdb.get(e.mac) !== e.dst) fdbCmds.push(`fdb del ${e.mac} dev ${vx} dst ${e.dst} self`);
    }
    for (const [mac, dst] of wantFdb) if (!fdb.some((e) => e.mac === mac && e.dst === dst)) fdbCmds.push(`fdb append ${mac} dev ${vx} dst ${dst} self permanent`);
    for (const r of routes) {
      if (!r.gateway) continue; // the kernel's own
      if (wantRoute.get(r.dst) !== r.gateway) ipCmds.push(`route del ${r.dst} dev ${vx}`);
    }
    for (const [dst, gw] of wantRoute) if (!routes.some((r) => r.dst === dst && r.gateway === gw)) ipCmds.push(`route replace ${dst} via ${gw} dev ${vx} onlink`);
  }
  await bridgeBatch(fdbCmds);
  await ipBatch(ipCmds);
  return { removed };
}

/** Whether ip forwarding is on in this namespace; turns it on (the overlay routes between the
 * bridge and the VXLAN device). */
export async function enableForwarding(): Promise<void> {
  const { readFile, writeFile } = await import('node:fs/promises');
  const cur = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
  if (cur !== '1') await writeFile('/proc/sys/net/ipv4/ip_forward', '1\n');
}

export { fmtIp, nth };
