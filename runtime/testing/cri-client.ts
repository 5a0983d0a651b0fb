// A promise-based CRI client over a Unix socket (tests and benchmarks use it the way the agent
// or crictl would: through gRPC only).
import * as grpc from '@grpc/grpc-js';
import { loadProto } from '../../proto/load.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Call = (req?: any) => Promise<any>;
export interface CriClient {
  rt: Record<string, Call>;
  img: Record<string, Call>;
  /** The generated RuntimeService client, for streaming calls. */
  raw: any;
  close(): void;
}

export function criClient(socketPath: string): CriClient {
  const pkg = loadProto('cri/api.proto') as any;
  const v1 = pkg.runtime.v1;
  const addr = `unix://${socketPath}`;
  const rs = new v1.RuntimeService(addr, grpc.credentials.createInsecure());
  const is = new v1.ImageService(addr, grpc.credentials.createInsecure());
  const wrap = (client: any): Record<string, Call> => new Proxy({}, {
    get: (_t, name: string) => (req: any = {}) => new Promise((resolve, reject) => {
      client[name](req, { deadline: Date.now() + 120_000 }, (err: Error | null, res: any) => (err ? reject(err) : resolve(res)));
    }),
  });
  return { rt: wrap(rs), img: wrap(is), raw: rs, close: () => { rs.close(); is.close(); } };
}
