// Test helper: a CSI call must fail with this gRPC status code (and a message matching `msg`).
import * as grpc from '@grpc/grpc-js';
import { CsiCallError } from '../client.js';

export async function expectCode(p: Promise<unknown>, code: keyof typeof grpc.status, msg?: RegExp): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof CsiCallError)) throw e;
    if (e.code !== grpc.status[code]) throw new Error(`expected ${code}, got ${e.codeName}: ${e.details}`);
    if (msg && !msg.test(e.details)) throw new Error(`${code} as expected, but the message ${JSON.stringify(e.details)} does not match ${msg}`);
    return e.details;
  }
  throw new Error(`expected ${code}, but the call succeeded`);
}
