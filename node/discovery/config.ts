// Which DHT shoald uses: `--dht-bootstrap host:port[,...]` (default: Hyperswarm's public bootstrap
// nodes) and `--dht=false` (no DHT at all: managers do not announce, joins need an address).
import HyperDHT from 'hyperdht';

export interface DhtConfig {
  /** host:port of the bootstrap nodes; never empty (an empty list would make hyperdht fall back
   * to its public nodes without saying so). */
  bootstrap: string[];
  /** True when `bootstrap` is Hyperswarm's public list (the default). */
  public: boolean;
}

/** Set in the environment of test runs (package.json's `test`): shoald then refuses the public
 * bootstrap nodes, so a test that forgets `--dht=false` or `--dht-bootstrap` sends nothing out. */
export const NO_PUBLIC_DHT_ENV = 'SHOAL_NO_PUBLIC_DHT';

/** Hyperswarm's public bootstrap nodes, as hyperdht ships them (`IP@name:port`). */
export function publicBootstrap(): string[] {
  return [...HyperDHT.BOOTSTRAP];
}

export class DhtConfigError extends Error {
  override name = 'DhtConfigError';
}

/** Parses `host:port[,host:port...]`; the error names the bad entry and what was expected. */
export function parseBootstrapList(list: string): string[] {
  const entries = list.split(',').map((s) => s.trim());
  if (entries.length === 0 || entries.every((e) => e === '')) throw new DhtConfigError('--dht-bootstrap is empty: give host:port[,host:port...] of the DHT bootstrap nodes');
  return entries.map((e) => {
    if (e === '') throw new DhtConfigError(`--dht-bootstrap ${list} holds an empty entry: give host:port[,host:port...]`);
    if (e.startsWith('[') || (e.match(/:/g) ?? []).length > 1) throw new DhtConfigError(`--dht-bootstrap entry ${e}: IPv6 addresses are not supported by the DHT (hyperdht is IPv4 only); give an IPv4 address or a host name`);
    const m = /^([A-Za-z0-9.-]+):(\d+)$/.exec(e);
    if (!m) throw new DhtConfigError(`--dht-bootstrap entry ${e} is not host:port`);
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new DhtConfigError(`--dht-bootstrap entry ${e}: the port must be 1-65535`);
    const host = m[1]!;
    if (/^[\d.]+$/.test(host) && !/^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(host)) throw new DhtConfigError(`--dht-bootstrap entry ${e}: ${host} is not an IPv4 address`);
    return `${host}:${port}`;
  });
}

/**
 * The DHT shoald runs with, from its flags: undefined when it is off (`--dht=false`, or the public
 * default refused by SHOAL_NO_PUBLIC_DHT). `warning` is for the log.
 */
export function resolveDht(o: { enabled: boolean; bootstrap?: string; env?: NodeJS.ProcessEnv }): { dht?: DhtConfig; warning?: string } {
  if (!o.enabled) return {};
  if (o.bootstrap !== undefined) return { dht: { bootstrap: parseBootstrapList(o.bootstrap), public: false } };
  if (o.env?.[NO_PUBLIC_DHT_ENV] === '1') {
    return { warning: `${NO_PUBLIC_DHT_ENV}=1: refusing Hyperswarm's public bootstrap nodes; the DHT is off (give --dht-bootstrap host:port for a private DHT, or --dht=false)` };
  }
  return { dht: { bootstrap: publicBootstrap(), public: true } };
}

/** `--dht=true|false` (or `--dht true|false`). */
export function parseDhtFlag(v: string): boolean {
  if (v === 'true' || v === '1' || v === 'yes') return true;
  if (v === 'false' || v === '0' || v === 'no') return false;
  throw new DhtConfigError(`--dht must be true or false, got ${v}`);
}

/** A HyperDHT node on the configured bootstrap nodes (never the library's silent default). */
export function openDht(cfg: DhtConfig, opts: { host?: string } = {}): HyperDHT {
  if (cfg.bootstrap.length === 0) throw new DhtConfigError('no DHT bootstrap nodes configured');
  return new HyperDHT({ bootstrap: cfg.bootstrap, ...(opts.host ? { host: opts.host } : {}) });
}

/** Whether the node reached the DHT: its routing table holds at least one other node. */
export function dhtReached(dht: HyperDHT): boolean {
  return dht.table.toArray().length > 0;
}

export function describeBootstrap(cfg: DhtConfig): string {
  return cfg.public ? "Hyperswarm's public bootstrap nodes" : cfg.bootstrap.join(',');
}
