// Names of what the plugin makes in the kernel. Each is recognisable by its prefix, so a
// reconcile finds leftovers of any earlier run (crash included) and removes what is not wanted.
// Interface names stay within IFNAMSIZ (15 characters).
import { createHash } from 'node:crypto';
import { parseIp } from './ipv4.js';

export const BRIDGE_PREFIX = 'shbr-';
export const VXLAN_PREFIX = 'shvx-';
export const VETH_PREFIX = 'shv-';
/** The nftables table of shoal's own, in the node's namespace and in each pod's. */
export const NFT_TABLE = 'shoal';
/** The node-local resolver's address, on every shoal bridge; pods' resolv.conf points here (as
 * Kubernetes' NodeLocal DNSCache uses a link-local address on every node). */
export const DEFAULT_DNS_ADDRESS = '169.254.53.53';
export const VXLAN_PORT = 4789;
/** VXLAN over IPv4 adds 50 bytes (outer IPv4 20, UDP 8, VXLAN 8, inner Ethernet 14). */
export const VXLAN_OVERHEAD = 50;

export const bridgeName = (vni: number): string => `${BRIDGE_PREFIX}${vni}`;
export const vxlanName = (vni: number): string => `${VXLAN_PREFIX}${vni}`;

export function isOurLink(name: string): boolean {
  return /^shbr-\d{1,8}$/.test(name) || /^shvx-\d{1,8}$/.test(name) || /^shv-[0-9a-f]{10}$/.test(name);
}

/** The host end of a pod's veth on one network: stable for (container, ifname in the pod). */
export function vethName(containerId: string, podIfname: string): string {
  return VETH_PREFIX + createHash('sha256').update(`${containerId}\0${podIfname}`).digest('hex').slice(0, 10);
}

/** A node's VXLAN endpoint MAC, derived from its underlay address, so peers need only that
 * address: 02:53 (locally administered) then the four bytes of the IPv4 address. */
export function vtepMac(underlay: string): string {
  const n = parseIp(underlay);
  return ['02', '53', ...[n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
