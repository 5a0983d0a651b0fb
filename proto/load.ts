// Finds and loads shoal's .proto files. Compiled code lives under dist/ (or a private build
// folder during development), so the proto/ folder is found by walking up from this module.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

let protoRoot: string | undefined;

/** Absolute path of the repository's proto/ folder. */
export function protoDir(): string {
  if (protoRoot) return protoRoot;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'proto'))) {
      protoRoot = join(dir, 'proto');
      return protoRoot;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the proto/ folder above ' + fileURLToPath(import.meta.url) + '; run from a shoal checkout or install');
    dir = up;
  }
}

/**
 * Loads a .proto (path relative to proto/) as a grpc-js package definition. Field names keep
 * their .proto spelling (snake_case), 64-bit integers become strings only when they exceed
 * Number.MAX_SAFE_INTEGER would be lossy: we use `longs: Number` for simplicity of use, as
 * shoal's 64-bit fields (timestamps in ns, byte counts) stay well below 2^53.
 */
export function loadProto(relPath: string): grpc.GrpcObject {
  const def = protoLoader.loadSync(join(protoDir(), relPath), {
    keepCase: true,
    longs: Number,
    enums: Number,
    defaults: true,
    oneofs: true,
    includeDirs: [protoDir()],
  });
  return grpc.loadPackageDefinition(def);
}
