// grpc-js sets TCP_NODELAY on the sockets it dials but not on the ones its server accepts, so
// a server answering several concurrent calls on one connection meets Nagle's algorithm: a small
// response waits for the ACK of the previous one, which the peer delays up to 40 ms. grpc-js
// builds its http2 server from a private options object; Node's net.Server honours `noDelay` in
// it. We set it when that object exists (checked by a test) and otherwise leave the server as is.
import type * as grpc from '@grpc/grpc-js';

export function enableNoDelay(server: grpc.Server): boolean {
  const opts = (server as unknown as { commonServerOptions?: Record<string, unknown> }).commonServerOptions;
  if (!opts || typeof opts !== 'object') return false;
  opts.noDelay = true;
  return true;
}
