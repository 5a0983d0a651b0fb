// shoal-cni's verbs that go to the network plugin over gRPC.
import * as grpc from '@grpc/grpc-js';
import { CNI_CODE_METADATA, networkPluginClient, type PodRef } from '../../proto/network/types.js';
import { CODE, CniError, formatResult, parseCniArgs, type NetConf } from './protocol.js';

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new CniError(CODE.INVALID_ENV, `${name} is not set`);
  return v;
}

/** Turns a gRPC failure into the CNI code the plugin named, or one that fits. */
function fromGrpc(e: grpc.ServiceError, socket: string): CniError {
  const code = Number(e.metadata?.get(CNI_CODE_METADATA)?.[0] ?? NaN);
  if (Number.isInteger(code)) return new CniError(code, e.details || e.message);
  if (e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED) {
    return new CniError(CODE.TRY_AGAIN_LATER, `the network plugin at ${socket} is not answering (${e.details || e.message}); is shoald (or shoal-net) running?`);
  }
  return new CniError(CODE.IO_FAILURE, `network plugin at ${socket}: ${e.details || e.message}`);
}

export async function run(command: string, conf: NetConf): Promise<Record<string, unknown> | undefined> {
  const client = networkPluginClient(conf.socket, 60_000);
  try {
    const pod = (needNetns: boolean): PodRef => ({
      container_id: need('CNI_CONTAINERID'),
      netns: needNetns ? need('CNI_NETNS') : process.env.CNI_NETNS ?? '',
      ifname: need('CNI_IFNAME'),
      args: parseCniArgs(process.env.CNI_ARGS),
      pod_annotations: conf.podAnnotations,
      network_name: conf.name,
      cni_version: conf.cniVersion,
      config_json: conf.raw,
    });
    switch (command) {
      case 'ADD': {
        const r = await client.add({ pod: pod(true) });
        return formatResult(r.result, conf.cniVersion);
      }
      case 'DEL':
        await client.del({ pod: pod(false) });
        return undefined;
      case 'CHECK':
        await client.check({ pod: pod(true) });
        return undefined;
      case 'STATUS': {
        const s = await client.status();
        if (!s.ready) throw new CniError(CODE.NOT_AVAILABLE, `the network plugin is not ready: ${s.message}`);
        return undefined;
      }
      case 'GC':
        await client.gc({ valid_attachments: conf.validAttachments });
        return undefined;
      default:
        throw new CniError(CODE.INVALID_ENV, `CNI_COMMAND "${command}" is not one of ADD, DEL, CHECK, VERSION, STATUS, GC`);
    }
  } catch (e) {
    if (e instanceof CniError) throw e;
    if ((e as grpc.ServiceError).code !== undefined) throw fromGrpc(e as grpc.ServiceError, conf.socket);
    throw new CniError(CODE.IO_FAILURE, (e as Error).message);
  } finally {
    client.close();
  }
}

