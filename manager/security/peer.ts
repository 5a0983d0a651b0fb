// Addresses as the managers see callers: the host of a gRPC peer or of a HOST:PORT.

/** The host part of a gRPC peer (`ipv4:10.0.0.1:5000`, `ipv6:[::1]:5000`) or of HOST:PORT. */
export function peerHost(peer: string): string {
  const p = peer.replace(/^ipv[46]:/, '');
  const m = /^\[(.*)\]:\d+$/.exec(p) ?? /^(.*):\d+$/.exec(p);
  return (m ? m[1]! : p).replace(/^::ffff:/, '');
}
