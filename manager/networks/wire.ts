// A service's networks and endpoint as the control API carries them (ServiceSpec fields
// networks, endpoint_mode, ports) and as they are stored; syntax only: what the names refer to
// and whether a port is free is decided under the network lock (resolve.ts).
import { DEFAULT_ENDPOINT, portKey, type EndpointSpec, type PortSpec } from './model.js';

export interface WirePort {
  protocol?: string;
  target_port?: number | null;
  published_port?: number | null;
  publish_mode?: string;
}

export interface WireNetworking {
  networks?: string[];
  endpoint_mode?: string;
  ports?: WirePort[];
}

export class NetworkSpecError extends Error {}

const REF = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

function port(v: unknown, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new NetworkSpecError(`${what} must be a port number from 1 to 65535, got ${v}`);
  return n;
}

/** The networks (as written: names or ids) and the endpoint of a spec, checked. */
export function networkingFromWire(w: WireNetworking): { networks: string[]; endpoint: EndpointSpec } {
  const networks = w.networks ?? [];
  if (!Array.isArray(networks) || networks.some((n) => typeof n !== 'string' || !REF.test(n))) {
    throw new NetworkSpecError(`networks must be network names or ids (letters, digits, '_', '.', '-'), got ${JSON.stringify(networks)}`);
  }
  const mode = (w.endpoint_mode || DEFAULT_ENDPOINT.mode) as EndpointSpec['mode'];
  if (mode !== 'vip' && mode !== 'dnsrr') throw new NetworkSpecError(`endpoint mode ${JSON.stringify(w.endpoint_mode)} is not known: use vip or dnsrr`);
  const ports: PortSpec[] = [];
  const seen = new Set<string>();
  for (const [i, p] of (w.ports ?? []).entries()) {
    const where = `ports[${i}]`;
    const protocol = (p.protocol || 'tcp').toLowerCase() as PortSpec['protocol'];
    if (protocol !== 'tcp' && protocol !== 'udp') throw new NetworkSpecError(`${where}: protocol ${JSON.stringify(p.protocol)} is not known: use tcp or udp`);
    const publishMode = (p.publish_mode || 'ingress') as PortSpec['mode'];
    if (publishMode !== 'ingress' && publishMode !== 'host') throw new NetworkSpecError(`${where}: publish mode ${JSON.stringify(p.publish_mode)} is not known: use ingress or host`);
    const x: PortSpec = { protocol, targetPort: port(p.target_port, `${where} target port`), publishedPort: port(p.published_port, `${where} published port`), mode: publishMode };
    if (seen.has(portKey(x))) throw new NetworkSpecError(`port ${portKey(x)} is published twice by this service`);
    seen.add(portKey(x));
    ports.push(x);
  }
  return { networks: [...networks], endpoint: { mode, ports } };
}

export function networkingToWire(networks: string[] | undefined, e: EndpointSpec | undefined): Required<WireNetworking> {
  const ep = e ?? DEFAULT_ENDPOINT;
  return {
    networks: networks ?? [],
    endpoint_mode: ep.mode,
    ports: ep.ports.map((p) => ({ protocol: p.protocol, target_port: p.targetPort, published_port: p.publishedPort, publish_mode: p.mode })),
  };
}
