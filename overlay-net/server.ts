// Serves the NetworkPlugin gRPC service (proto/network/network.proto) for a NetworkPlugin.
import * as grpc from '@grpc/grpc-js';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { CNI_CODE_METADATA, networkServiceDefinition, type PodRef } from '../proto/network/types.js';
import { CNI, PluginError } from './errors.js';
import type { NetworkPlugin } from './plugin.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
function handler<Req, Res>(f: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, cb) => {
    f(call.request).then((res) => cb(null, res), (e: unknown) => {
      const err = e instanceof PluginError ? e : new PluginError(CNI.DATAPATH_FAILURE, (e as Error).message ?? String(e));
      const md = new grpc.Metadata();
      md.set(CNI_CODE_METADATA, String(err.cniCode));
      cb({ code: err.grpcCode, details: err.message, metadata: md });
    });
  };
}

function podOf(req: any): PodRef {
  const p = req?.pod ?? {};
  return {
    container_id: p.container_id ?? '', netns: p.netns ?? '', ifname: p.ifname ?? '', args: p.args ?? {},
    pod_annotations: p.pod_annotations ?? {}, network_name: p.network_name ?? '', cni_version: p.cni_version ?? '', config_json: p.config_json ?? '',
  };
}

export async function serveNetworkPlugin(plugin: NetworkPlugin, socketPath: string): Promise<grpc.Server> {
  const server = new grpc.Server();
  server.addService(networkServiceDefinition(), {
    Add: handler(async (req: any) => plugin.add(podOf(req))),
    Del: handler(async (req: any) => { await plugin.del(podOf(req)); return {}; }),
    Check: handler(async (req: any) => { await plugin.check(podOf(req)); return {}; }),
    Status: handler(async () => plugin.status()),
    GC: handler(async (req: any) => ({ removed: await plugin.gc(req?.valid_attachments ?? []) })),
    UpdateState: handler(async (req: any) => plugin.updateState(req)),
  });
  mkdirSync(dirname(socketPath), { recursive: true });
  rmSync(socketPath, { force: true }); // a stale socket of an earlier run
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(new Error(`cannot listen on unix://${socketPath}: ${err.message}`)) : resolve()));
  });
  chmodSync(socketPath, 0o600);
  return server;
}
