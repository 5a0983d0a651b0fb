// Picks a port the OS considers free on a host, for TCP and UDP alike (gossip uses both).
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * The kernel's range for the local ports of outgoing connections (Linux), if it can be read. A
 * port from it that a node saves and listens on again after a restart (its raft and gossip
 * ports) can meanwhile be taken by any outgoing connection on the host, and the restart then
 * fails with EADDRINUSE (seen in CI: a restarted manager's port was taken within 2 s).
 */
function ephemeralRange(): [number, number] | undefined {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return lo && hi ? [lo, hi] : undefined;
  } catch {
    return undefined;
  }
}

/** Lowest port picked below the ephemeral range (above the well-known and common service ports). */
const PICK_FROM = 10_000;

async function canBind(port: number, host: string, udpToo: boolean): Promise<number | undefined> {
  const got = await new Promise<number | undefined>((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen(port, host, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  if (got === undefined || !udpToo) return got;
  return new Promise<number | undefined>((resolve) => {
    const u = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    u.once('error', () => resolve(undefined));
    u.bind(got, host, () => u.close(() => resolve(got)));
  });
}

/**
 * A free port, chosen below the kernel's ephemeral range when there is room (so no outgoing
 * connection can take it later), else by the OS.
 */
export async function freePort(host: string, udpToo = false): Promise<number> {
  const range = ephemeralRange();
  if (range && range[0] > PICK_FROM + 1000) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const p = await canBind(PICK_FROM + Math.floor(Math.random() * (range[0] - PICK_FROM)), host, udpToo);
      if (p !== undefined) return p;
    }
  }
  for (let attempt = 0; attempt < 20; attempt++) {
    const p = await canBind(0, host, udpToo);
    if (p !== undefined) return p;
  }
  throw new Error(`no free port found on ${host}`);
}

export function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(addr);
  if (!m) throw new Error(`${JSON.stringify(addr)} is not HOST:PORT`);
  return { host: m[1]!, port: Number(m[2]) };
}

export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
