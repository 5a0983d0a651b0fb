// The CNI exec protocol (spec 1.0.0, with 1.1's STATUS and GC) as shoal-cni speaks it: the
// environment and config it reads, the result and error JSON it prints. Pure functions.
import type { Result } from '../../proto/network/types.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
/** Where the built-in plugin listens by default (shoald serves it under its state directory). */
export const DEFAULT_SOCKET = '/var/lib/shoal/plugins/network.sock';
export const POD_ANNOTATIONS_CAP = 'io.kubernetes.cri.pod-annotations';

export const CODE = { INCOMPATIBLE_VERSION: 1, UNSUPPORTED_FIELD: 2, UNKNOWN_CONTAINER: 3, INVALID_ENV: 4, IO_FAILURE: 5, DECODE_FAILURE: 6, INVALID_CONFIG: 7, TRY_AGAIN_LATER: 11, NOT_AVAILABLE: 50 } as const;

export class CniError extends Error {
  constructor(readonly code: number, msg: string, readonly details = '') {
    super(msg);
  }
}

export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  socket: string;
  podAnnotations: Record<string, string>;
  prevResult?: unknown;
  validAttachments: { container_id: string; ifname: string }[];
  raw: string;
}

function cmpVersion(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

export function versionAtLeast(v: string, min: string): boolean {
  return cmpVersion(v, min) >= 0;
}

/** Parses the network configuration from stdin (the runtime has already picked this plugin's
 * entry of the config list and added name, cniVersion, runtimeConfig and prevResult). */
export function parseNetConf(stdin: string, command: string): NetConf {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(stdin) as Record<string, unknown>;
  } catch (e) {
    throw new CniError(CODE.DECODE_FAILURE, `the network configuration on stdin is not JSON: ${(e as Error).message}`);
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw new CniError(CODE.DECODE_FAILURE, 'the network configuration on stdin must be a JSON object');
  const v = j.cniVersion;
  if (typeof v !== 'string' || !v) throw new CniError(CODE.INVALID_CONFIG, 'the network configuration has no cniVersion');
  if (!SUPPORTED_VERSIONS.includes(v)) throw new CniError(CODE.INCOMPATIBLE_VERSION, `incompatible CNI version ${v}: shoal-cni supports ${SUPPORTED_VERSIONS.join(', ')}`);
  if (command === 'CHECK' && !versionAtLeast(v, '0.4.0')) throw new CniError(CODE.INCOMPATIBLE_VERSION, `CHECK needs cniVersion 0.4.0 or later, the configuration says ${v}`);
  if ((command === 'STATUS' || command === 'GC') && !versionAtLeast(v, '1.1.0')) throw new CniError(CODE.INCOMPATIBLE_VERSION, `${command} needs cniVersion 1.1.0 or later, the configuration says ${v}`);
  if (typeof j.name !== 'string' || !j.name) throw new CniError(CODE.INVALID_CONFIG, 'the network configuration has no name');
  if (typeof j.type !== 'string' || !j.type) throw new CniError(CODE.INVALID_CONFIG, 'the network configuration has no type');
  const socket = j.socket ?? DEFAULT_SOCKET;
  if (typeof socket !== 'string' || !socket.startsWith('/')) throw new CniError(CODE.INVALID_CONFIG, `"socket" must be the absolute path of the network plugin's Unix socket, got ${JSON.stringify(j.socket)}`);
  const rc = j.runtimeConfig;
  let podAnnotations: Record<string, string> = {};
  if (rc !== undefined) {
    if (!rc || typeof rc !== 'object' || Array.isArray(rc)) throw new CniError(CODE.INVALID_CONFIG, 'runtimeConfig must be an object');
    const pa = (rc as Record<string, unknown>)[POD_ANNOTATIONS_CAP];
    if (pa !== undefined && pa !== null) {
      if (typeof pa !== 'object' || Array.isArray(pa)) throw new CniError(CODE.INVALID_CONFIG, `runtimeConfig["${POD_ANNOTATIONS_CAP}"] must be an object of strings`);
      podAnnotations = Object.fromEntries(Object.entries(pa as Record<string, unknown>).map(([k, x]) => [k, String(x)]));
    }
  }
  const va = j['cni.dev/valid-attachments'];
  const validAttachments: NetConf['validAttachments'] = [];
  if (command === 'GC' && va !== undefined) {
    if (!Array.isArray(va)) throw new CniError(CODE.INVALID_CONFIG, '"cni.dev/valid-attachments" must be an array');
    for (const x of va) {
      const o = x as Record<string, unknown>;
      if (typeof o?.containerID !== 'string' || typeof o?.ifname !== 'string') throw new CniError(CODE.INVALID_CONFIG, 'each of "cni.dev/valid-attachments" needs containerID and ifname strings');
      validAttachments.push({ container_id: o.containerID, ifname: o.ifname });
    }
  }
  return { cniVersion: v, name: j.name, type: j.type, socket, podAnnotations, prevResult: j.prevResult, validAttachments, raw: stdin };
}

/** CNI_ARGS: "K=V;K2=V2" (IgnoreUnknown and the like are kept, the plugin ignores them). */
export function parseCniArgs(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!s) return out;
  for (const pair of s.split(';')) {
    if (!pair) continue;
    const i = pair.indexOf('=');
    if (i <= 0) throw new CniError(CODE.INVALID_ENV, `CNI_ARGS: "${pair}" is not KEY=VALUE`);
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

/** The result JSON for `version` (0.3.x/0.4.0 add "version" to each IP; mtu is 1.1's). */
export function formatResult(r: Result, version: string): Record<string, unknown> {
  const pre1 = !versionAtLeast(version, '1.0.0');
  const v11 = versionAtLeast(version, '1.1.0');
  const dns: Record<string, unknown> = {};
  if (r.dns?.nameservers?.length) dns.nameservers = r.dns.nameservers;
  if (r.dns?.domain) dns.domain = r.dns.domain;
  if (r.dns?.search?.length) dns.search = r.dns.search;
  if (r.dns?.options?.length) dns.options = r.dns.options;
  return {
    cniVersion: version,
    interfaces: r.interfaces.map((i) => ({ name: i.name, ...(i.mac ? { mac: i.mac } : {}), ...(v11 && i.mtu ? { mtu: i.mtu } : {}), ...(i.sandbox ? { sandbox: i.sandbox } : {}) })),
    ips: r.ips.map((ip) => ({ ...(pre1 ? { version: '4' } : {}), address: ip.address, ...(ip.gateway ? { gateway: ip.gateway } : {}), ...(ip.interface >= 0 ? { interface: ip.interface } : {}) })),
    routes: r.routes.map((x) => ({ dst: x.dst, ...(x.gw ? { gw: x.gw } : {}) })),
    dns,
  };
}

export function errorJson(version: string, e: CniError): Record<string, unknown> {
  return { cniVersion: version, code: e.code, msg: e.message, ...(e.details ? { details: e.details } : {}) };
}

export function versionJson(requested: string | undefined): Record<string, unknown> {
  return { cniVersion: requested && SUPPORTED_VERSIONS.includes(requested) ? requested : '1.1.0', supportedVersions: SUPPORTED_VERSIONS };
}
