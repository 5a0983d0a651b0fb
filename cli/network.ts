// `shoal network create|ls|inspect|rm` and the network flags of `service create|update`
// (--network, --endpoint-mode, --publish), through the control API.
import { CliError, call, controlClient, type Target } from './client.js';
import { table } from './format.js';
import { subcommandsOf, unknownWord } from './help.js';
import type { Flags } from './service.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

export const NETWORK_FLAGS = ['subnet', 'internal', 'network', 'network-add', 'network-rm', 'endpoint-mode', 'publish', 'publish-add', 'publish-rm'];
export const NETWORK_BOOL = ['internal'];

export function networkJson(n: any) {
  return {
    id: n.id,
    name: n.name,
    subnet: n.subnet,
    vni: Number(n.vni),
    internal: !!n.internal,
    labels: n.labels ?? {},
    nodeSubnets: (n.node_subnets ?? []).map((s: any) => ({ nodeId: s.node_id, node: s.hostname || null, subnet: s.subnet })),
    services: n.services ?? [],
    addressesInUse: Number(n.addresses_in_use ?? 0),
    createdAt: Number(n.created_at_ms) ? new Date(Number(n.created_at_ms)).toISOString() : null,
    version: Number(n.version),
  };
}

/**
 * One --publish value, as `docker service create --publish` takes it: `8080:80`, `8080:80/udp`,
 * `8080:80,mode=host`, or `published=8080,target=80[,protocol=udp][,mode=host]`.
 */
export function parsePublish(v: string): { protocol: string; target_port: number; published_port: number; publish_mode: string } {
  const bad = () => new CliError(`--publish must be PUBLISHED:TARGET[/tcp|udp][,mode=ingress|host] or published=N,target=N[,protocol=tcp|udp][,mode=ingress|host], got ${JSON.stringify(v)}`, 2);
  const parts = v.split(',');
  const out = { protocol: 'tcp', target_port: 0, published_port: 0, publish_mode: 'ingress' };
  const num = (s: string | undefined) => {
    if (!s || !/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) throw bad();
    return Number(s);
  };
  for (const [i, p] of parts.entries()) {
    const m = /^(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(p);
    if (i === 0 && m) {
      out.published_port = num(m[1]);
      out.target_port = num(m[2]);
      if (m[3]) out.protocol = m[3];
      continue;
    }
    const kv = /^(published|target|protocol|mode)=(.+)$/.exec(p);
    if (!kv) throw bad();
    if (kv[1] === 'published') out.published_port = num(kv[2]);
    else if (kv[1] === 'target') out.target_port = num(kv[2]);
    else if (kv[1] === 'protocol') out.protocol = kv[2]!;
    else out.publish_mode = kv[2]!;
  }
  if (!out.published_port || !out.target_port) throw bad();
  return out;
}

/** The network fields of a new service's spec from its flags. */
export function networkingFromFlags(f: Flags): { networks: string[]; endpoint_mode: string; ports: ReturnType<typeof parsePublish>[] } {
  return { networks: f.all('network'), endpoint_mode: f.one('endpoint-mode') ?? '', ports: f.all('publish').map(parsePublish) };
}

/**
 * `service update` network flags over the current spec (as the API returned it: network ids).
 * `idOf` finds a network's id from the name or id given to --network-rm.
 */
export async function updateNetworking(f: Flags, sp: any, idOf: (ref: string) => Promise<string>): Promise<void> {
  if (f.has('network-add') || f.has('network-rm')) {
    const rm = new Set<string>();
    for (const r of f.all('network-rm')) rm.add(await idOf(r));
    sp.networks = (sp.networks ?? []).filter((n: string) => !rm.has(n)).concat(f.all('network-add'));
  }
  if (f.has('endpoint-mode')) sp.endpoint_mode = f.one('endpoint-mode');
  if (f.has('publish-add') || f.has('publish-rm')) {
    const rm = new Set(f.all('publish-rm').map((x) => (/^\d+(\/(tcp|udp))?$/.test(x) ? (x.includes('/') ? x : `${x}/tcp`) : x)));
    for (const x of rm) if (!/^\d+\/(tcp|udp)$/.test(x)) throw new CliError(`--publish-rm takes a published port, PORT[/tcp|udp], got ${JSON.stringify(x)}`, 2);
    sp.ports = (sp.ports ?? []).filter((p: any) => !rm.has(`${p.published_port}/${p.protocol || 'tcp'}`)).concat(f.all('publish-add').map(parsePublish));
  }
}

export async function networkCommand(t: Target, sub: string | undefined, rest: string[], f: Flags, json: boolean): Promise<string> {
  // A mistyped subcommand is a usage error, even with no shoald to ask.
  if (!subcommandsOf('network')!.includes(sub ?? '')) throw new CliError(`${unknownWord('network command', sub ?? '', subcommandsOf('network')!)}\n(shoal network --help)`, 2);
  const c = controlClient(t);
  const out = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  switch (sub) {
    case 'create': {
      if (rest.length !== 1) throw new CliError('usage: shoal network create [--subnet CIDR] [--internal] [--label K=V]... NAME', 2);
      const labels: Record<string, string> = {};
      for (const l of f.all('label')) {
        const i = l.indexOf('=');
        if (i <= 0) throw new CliError(`--label needs KEY=VALUE, got ${JSON.stringify(l)}`, 2);
        labels[l.slice(0, i)] = l.slice(i + 1);
      }
      const n = networkJson(await call(c, 'CreateNetwork', { name: rest[0], subnet: f.one('subnet') ?? '', internal: f.has('internal'), labels }));
      return json ? out(n) : `${n.id}\n`;
    }
    case 'ls': {
      const list = ((await call(c, 'ListNetworks', {})).networks ?? []).map(networkJson);
      if (json) return out(list);
      if (f.has('quiet')) return list.map((n: any) => n.id + '\n').join('');
      return table(['ID', 'NAME', 'SUBNET', 'VNI', 'INTERNAL', 'NODES', 'SERVICES'], list.map((n: any) => [n.id.slice(0, 12), n.name, n.subnet, String(n.vni), n.internal ? 'yes' : '', String(n.nodeSubnets.length), n.services.join(',')]));
    }
    case 'inspect': {
      if (rest.length === 0) throw new CliError('usage: shoal network inspect NETWORK...', 2);
      const list = [];
      for (const id of rest) list.push(networkJson(await call(c, 'GetNetwork', { id })));
      return out(list.length === 1 && !json ? list[0] : list);
    }
    case 'rm': {
      if (rest.length === 0) throw new CliError('usage: shoal network rm NETWORK...', 2);
      for (const id of rest) await call(c, 'RemoveNetwork', { id });
      return json ? out({ removed: rest }) : rest.map((x) => `${x}\n`).join('');
    }
    default:
      throw new CliError(`${unknownWord('network command', sub ?? '', subcommandsOf('network')!)}\n(shoal network --help)`, 2);
  }
}
