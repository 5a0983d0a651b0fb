// Serves the driver's Identity, Controller and Node services on a Unix socket. A handler's
// CsiError becomes its gRPC status; anything else becomes INTERNAL with the error's message.
import * as grpc from '@grpc/grpc-js';
import { existsSync, lstatSync, mkdirSync, unlinkSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import { csiServices } from '../proto/csi/v1/csi.js';
import { controllerHandlers } from './controller.js';
import type { Driver } from './driver.js';
import { CsiError } from './errors.js';
import { identityHandlers } from './identity.js';
import { nodeHandlers } from './node.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Handler = (req: any) => Promise<unknown>;

export interface CallLog { (method: string, ms: number, err?: CsiError | Error): void }

function wrap(name: string, fn: Handler, log?: CallLog): grpc.handleUnaryCall<unknown, unknown> {
  return (call, cb) => {
    const t0 = Date.now();
    fn(call.request).then(
      (r) => { log?.(name, Date.now() - t0); cb(null, r); },
      (e: Error) => {
        log?.(name, Date.now() - t0, e);
        const code = e instanceof CsiError ? e.code : grpc.status.INTERNAL;
        cb({ code, details: e.message, metadata: new grpc.Metadata(), name: 'Error', message: e.message });
      },
    );
  };
}

function service(handlers: Record<string, Handler>, log?: CallLog): grpc.UntypedServiceImplementation {
  return Object.fromEntries(Object.entries(handlers).map(([k, f]) => [k, wrap(k, f, log)]));
}

/** Removes a socket file left by a process that died (never a regular file: that is a mistake of the caller's). */
export function clearStaleSocket(path: string): void {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  unlinkSync(path);
}

export async function serveUnix(path: string, add: (s: grpc.Server) => void): Promise<grpc.Server> {
  mkdirSync(dirname(path), { recursive: true });
  clearStaleSocket(path);
  const server = new grpc.Server();
  add(server);
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  chmodSync(path, 0o600);
  return server;
}

export function serveCsi(d: Driver, socket: string, log?: CallLog): Promise<grpc.Server> {
  const s = csiServices();
  return serveUnix(socket, (server) => {
    server.addService(s.Identity.service, service(identityHandlers(d), log));
    server.addService(s.Controller.service, service(controllerHandlers(d), log));
    server.addService(s.Node.service, service(nodeHandlers(d), log));
  });
}
