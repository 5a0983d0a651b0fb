// CA.GetDataKey: a manager hands the secrets data key to another manager (its certificate says
// manager and the cluster still wants it to be one: a demoted manager, a worker, a removed node or
// a caller without a certificate is refused by the authorizer before this runs).
import type { MethodSpec } from '../security/authz.js';
import type { DataKeyKeeper } from './keeper.js';

export function dataKeyTable(keeper: DataKeyKeeper, log: (m: string) => void): Record<string, MethodSpec> {
  return {
    GetDataKey: {
      roles: ['manager'],
      unary: async (_req, ctx) => {
        const k = keeper.key();
        log(`secrets: handed data key ${k.id} to manager ${ctx.identity!.nodeId}`);
        return { key: k.key, key_id: k.id };
      },
    },
  };
}
