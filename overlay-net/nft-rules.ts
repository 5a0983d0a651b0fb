// The nftables rulesets, as text for `nft -f`, generated whole from the cluster view. Each is
// applied in one transaction that deletes and recreates shoal's own table, so a ruleset is never
// half-applied and nothing outside the table is touched.
import type { ClusterState } from '../proto/network/types.js';
import { Protocol, PublishMode } from '../proto/network/types.js';
import { fmtCidr } from './ipv4.js';
import { NFT_TABLE, bridgeName, vxlanName } from './names.js';
import { backendAddrs, type LocalNet, type PodVip } from './view.js';

/** Conntrack mark bit of connections the routing mesh DNATed: masqueraded into the overlay so
 * the answer comes back through the node that accepted them. */
export const MESH_MARK = '0x00100000';

/** Deletes our table if it exists, then the new ruleset: one transaction. */
function replaceTable(body: string): string {
  return `table ip ${NFT_TABLE}\ndelete table ip ${NFT_TABLE}\ntable ip ${NFT_TABLE} {\n${body}}\n`;
}

export function deleteTableScript(): string {
  return `table ip ${NFT_TABLE}\ndelete table ip ${NFT_TABLE}\n`;
}

function set(items: string[]): string {
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`;
}

function q(name: string): string {
  return `"${name}"`;
}

/** numgen round robin over `addrs` (at least one). */
function spread(addrs: string[]): string {
  if (addrs.length === 1) return addrs[0]!;
  return `numgen inc mod ${addrs.length} map { ${addrs.map((a, i) => `${i} : ${a}`).join(', ')} }`;
}

export interface PortRule { proto: 'tcp' | 'udp'; port: number; target: number; backends: string[]; mesh: boolean }

/** The published ports this node accepts: ingress ports to ready tasks on any node (on the
 * service's first network this node serves and that is not internal; refused while there is
 * none), host-mode ports to its own ready tasks (not published at all where none runs). The
 * first service to claim a port keeps it. */
export function portRules(s: ClusterState, nets: LocalNet[], log: (m: string) => void = () => {}): PortRule[] {
  const usable = new Map(nets.filter((n) => !n.net.internal).map((n) => [n.net.id, n]));
  const taken = new Map<string, string>();
  const out: PortRule[] = [];
  for (const svc of [...s.services].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    for (const p of svc.ports) {
      const proto = p.protocol === Protocol.UDP ? 'udp' : 'tcp';
      const key = `${proto}/${p.published_port}`;
      const netId = svc.network_ids.find((id) => usable.has(id));
      if (!netId) { log(`service ${svc.name}: port ${key} not published here: none of its networks is served by this node (or all are internal)`); continue; }
      const other = taken.get(key);
      if (other) { log(`service ${svc.name}: port ${key} is already published by ${other}; skipped`); continue; }
      taken.set(key, svc.name);
      const mesh = p.mode !== PublishMode.HOST;
      const backends = backendAddrs(s, svc, netId, mesh ? undefined : s.node_id);
      // Host mode: only where a ready task runs; elsewhere the port stays the node's own.
      if (!mesh && backends.length === 0) continue;
      out.push({ proto, port: p.published_port, target: p.target_port, backends, mesh });
    }
  }
  return out;
}

/** The node's table: published ports, masquerade, isolation between networks, internal
 * networks kept inside. */
export function hostRuleset(p: { underlay: string; dnsAddress: string; nets: LocalNet[]; ports: PortRule[]; clusterRanges: string[] }): string {
  const ours = p.nets.flatMap((n) => [bridgeName(n.net.vni), vxlanName(n.net.vni)]);
  const dnat: string[] = [];
  const rejects: string[] = [];
  for (const r of p.ports) {
    const match = `ip daddr ${p.underlay} ${r.proto} dport ${r.port}`;
    if (r.backends.length === 0) { rejects.push(`${match} reject`); continue; }
    dnat.push(`${match} ${r.mesh ? `ct mark set ct mark or ${MESH_MARK} ` : ''}dnat to ${spread(r.backends)} : ${r.target}`);
  }
  let b = '';
  b += `  chain prerouting {\n    type nat hook prerouting priority -100; policy accept;\n${dnat.map((l) => `    ${l}\n`).join('')}  }\n`;
  b += `  chain output {\n    type nat hook output priority -100; policy accept;\n${dnat.map((l) => `    ${l}\n`).join('')}  }\n`;
  b += `  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n`;
  b += `    ct mark and ${MESH_MARK} == ${MESH_MARK} masquerade\n`;
  for (const n of p.nets) {
    if (n.net.internal) continue;
    // The way out: pods' traffic to anything that is not the overlay leaves with the node's address.
    b += `    ip saddr ${fmtCidr(n.subnet)} oifname != ${ours.length ? set(ours.map(q)) : '""'} masquerade\n`;
  }
  b += '  }\n';
  // Ports with no ready task anywhere: refused at once rather than left to time out.
  b += `  chain input {\n    type filter hook input priority filter; policy accept;\n`;
  for (const l of rejects) b += `    ${l}\n`;
  const internal = p.nets.filter((n) => n.net.internal).flatMap((n) => [bridgeName(n.net.vni), vxlanName(n.net.vni)]);
  if (internal.length) {
    // Pods of internal networks reach the resolver and nothing else of the node.
    b += `    iifname ${set(internal.map(q))} ip daddr ${p.dnsAddress} meta l4proto { tcp, udp } th dport 53 accept\n`;
    b += `    iifname ${set(internal.map(q))} ct state established,related accept\n`;
    b += `    iifname ${set(internal.map(q))} drop\n`;
  }
  b += '  }\n';
  b += `  chain forward {\n    type filter hook forward priority filter; policy accept;\n`;
  if (ours.length) {
    b += `    iifname ${set(ours.map(q))} jump overlay\n`;
    b += `    oifname ${set(ours.map(q))} jump overlay\n`;
  }
  b += '  }\n';
  b += `  chain overlay {\n`;
  b += `    ct state established,related accept\n`;
  b += `    ct status dnat accept\n`;
  for (const n of p.nets) {
    const mine = set([bridgeName(n.net.vni), vxlanName(n.net.vni)].map(q));
    b += `    iifname ${mine} oifname ${mine} accept\n`;
  }
  // Cluster addresses (other networks, VIPs of no network of the pod) never take the way out.
  if (p.clusterRanges.length) b += `    ip daddr ${set(p.clusterRanges)} drop\n`;
  for (const n of p.nets) {
    const mine = set([bridgeName(n.net.vni), vxlanName(n.net.vni)].map(q));
    if (!n.net.internal && ours.length) b += `    iifname ${mine} oifname != ${set(ours.map(q))} accept\n`;
  }
  b += `    drop\n  }\n`;
  return replaceTable(b);
}

/** A pod's table: its VIPs DNATed to ready backends (in the pod's own namespace, as Swarm's VIP
 * mode does, so answers come straight back), VIPs with none refused. */
export function podRuleset(vips: PodVip[]): string {
  let b = `  chain output {\n    type nat hook output priority -100; policy accept;\n`;
  for (const v of vips) if (v.backends.length) b += `    ip daddr ${v.vip} dnat to ${spread(v.backends)}\n`;
  b += '  }\n';
  const none = vips.filter((v) => v.backends.length === 0).map((v) => v.vip);
  b += `  chain filter_output {\n    type filter hook output priority filter; policy accept;\n`;
  if (none.length) {
    b += `    ip daddr ${set(none)} meta l4proto tcp reject with tcp reset\n`;
    b += `    ip daddr ${set(none)} reject\n`;
  }
  b += '  }\n';
  return replaceTable(b);
}
