// The driver's side of plugin registration: a Registration service (the kubelet's
// pluginregistration) on <registry-dir>/<name>-reg.sock, the name CSI's node-driver-registrar
// uses. The node's registry calls GetInfo, learns the CSI endpoint, and tells the outcome.
import type * as grpc from '@grpc/grpc-js';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { PluginType, registrationService, type RegistrationStatus } from '../proto/pluginregistration/v1/registration.js';
import { serveUnix } from './server.js';

/** CSI versions the driver speaks (the registry picks one). */
export const CSI_VERSIONS = ['1.0.0'];

export interface RegistrationServer { socket: string; server: grpc.Server; status: () => RegistrationStatus | undefined; close(): Promise<void> }

export async function serveRegistration(registryDir: string, name: string, csiSocket: string, log: (m: string) => void): Promise<RegistrationServer> {
  const socket = join(registryDir, `${name}-reg.sock`);
  let last: RegistrationStatus | undefined;
  const server = await serveUnix(socket, (s) => s.addService(registrationService().service, {
    GetInfo: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) =>
      cb(null, { type: PluginType.CSI, name, endpoint: csiSocket, supported_versions: CSI_VERSIONS }),
    NotifyRegistrationStatus: (call: grpc.ServerUnaryCall<RegistrationStatus, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      last = call.request;
      log(last.plugin_registered ? `registered with the node (${socket})` : `the node refused the registration: ${last.error}`);
      cb(null, {});
    },
  }));
  return {
    socket, server, status: () => last,
    close: () => new Promise<void>((resolve) => {
      // The socket goes first: the registry sees the plugin leave even if shutdown lingers.
      try { unlinkSync(socket); } catch { /* gone */ }
      server.tryShutdown(() => resolve());
    }),
  };
}
