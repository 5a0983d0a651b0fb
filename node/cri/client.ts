// The agent's CRI client: Kubernetes' runtime.v1 RuntimeService and ImageService over a Unix
// socket (the built-in shoal-runtime, or containerd's CRI socket). The agent reaches containers
// only through these calls; the contract is proto/cri/api.proto.
import * as grpc from '@grpc/grpc-js';
import { loadProto } from '../../proto/load.js';
import { criCalls } from '../../manager/metrics.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type CriCall = (req?: any, timeoutMs?: number) => Promise<any>;

export interface CriClient {
  runtime: Record<string, CriCall>;
  image: Record<string, CriCall>;
  endpoint: string;
  close(): void;
}

let defs: { rs: grpc.ServiceClientConstructor; is: grpc.ServiceClientConstructor } | undefined;

/** `unix:///path.sock` or a plain absolute path. */
export function criClient(endpoint: string, defaultTimeoutMs = 120_000): CriClient {
  if (!defs) {
    const v1 = (loadProto('cri/api.proto') as any).runtime.v1;
    defs = { rs: v1.RuntimeService, is: v1.ImageService };
  }
  const addr = endpoint.startsWith('unix://') ? endpoint : `unix://${endpoint}`;
  // A local socket: when the runtime restarts, reconnect within a second (grpc's default back-off
  // grows to two minutes), and keep each client's connection its own, so a new client never
  // inherits a shared one still backing off from the runtime that went away.
  const opts = {
    'grpc.max_receive_message_length': 64 << 20,
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1000,
    'grpc.use_local_subchannel_pool': 1,
  };
  const rs = new defs.rs(addr, grpc.credentials.createInsecure(), opts);
  const is = new defs.is(addr, grpc.credentials.createInsecure(), opts);
  const wrap = (client: any, service: string): Record<string, CriCall> =>
    new Proxy({}, {
      get: (_t, name: string) => (req: any = {}, timeoutMs = defaultTimeoutMs) =>
        new Promise((resolve, reject) => {
          const end = criCalls.startTimer({ method: name });
          client[name](req, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: any) => {
            end({ result: err ? 'error' : 'ok' });
            if (!err) return resolve(res);
            // Name the call and the runtime in the error: the agent's messages end up in `service ps`.
            reject(Object.assign(new Error(`${service}.${name}: ${err.details || err.message}`), { code: err.code, details: err.details }));
          });
        }),
    });
  return { runtime: wrap(rs, 'RuntimeService'), image: wrap(is, 'ImageService'), endpoint: addr, close: () => { rs.close(); is.close(); } };
}

export const CONTAINER_STATE = { created: 0, running: 1, exited: 2, unknown: 3 } as const;
export const SANDBOX_READY = 0;
