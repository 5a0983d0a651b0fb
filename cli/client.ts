// How the CLI reaches a cluster: the local daemon's Unix socket under the state dir, or mTLS to a
// manager (--host) with the identity stored in the state dir.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { controlDef, localDef } from '../proto/services.js';
import { CHANNEL_OPTIONS, clientCredentials } from '../manager/security/credentials.js';

export interface Target {
  stateDir: string;
  host?: string;
}

export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1, readonly grpcCode?: number) {
    super(message);
  }
}

type Client = grpc.Client & Record<string, any>;

export function socketPath(t: Target): string {
  return join(t.stateDir, 'shoald.sock');
}

function identityCreds(stateDir: string): grpc.ChannelCredentials {
  const d = join(stateDir, 'identity');
  if (!existsSync(join(d, 'node.json'))) throw new CliError(`no node identity in ${stateDir}: --host needs the state dir of a node that joined the cluster (a manager's, for control commands)`);
  return clientCredentials({ caPem: readFileSync(join(d, 'ca.crt'), 'utf8'), certPem: readFileSync(join(d, 'node.crt'), 'utf8'), keyPem: readFileSync(join(d, 'node.key'), 'utf8') });
}

export function localClient(t: Target): Client {
  const p = socketPath(t);
  if (!existsSync(p)) throw new CliError(`shoald is not running with state dir ${t.stateDir} (no socket ${p}): start it with "shoald --state-dir ${t.stateDir} ..." or pass --state-dir`);
  const Ctor = grpc.makeGenericClientConstructor(localDef(), 'Local');
  return new Ctor(`unix://${p}`, grpc.credentials.createInsecure()) as Client;
}

export function controlClient(t: Target): Client {
  const Ctor = grpc.makeGenericClientConstructor(controlDef(), 'Control');
  if (t.host) return new Ctor(t.host, identityCreds(t.stateDir), CHANNEL_OPTIONS) as Client;
  const p = socketPath(t);
  if (!existsSync(p)) throw new CliError(`shoald is not running with state dir ${t.stateDir} (no socket ${p}); pass --state-dir, or --host MANAGER:PORT`);
  return new Ctor(`unix://${p}`, grpc.credentials.createInsecure()) as Client;
}

/** Attempts at a call whose local-socket connection was closed before it spoke (see call). */
const LOCAL_CONNECT_ATTEMPTS = 5;

export async function call<T = any>(c: Client, method: string, req: unknown, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await new Promise<T>((resolve, reject) =>
        c[method]!(req, { deadline }, (e: grpc.ServiceError | null, r: T) => (e ? reject(e) : resolve(r))),
      );
    } catch (err) {
      const e = err as grpc.ServiceError;
      // shoald's local socket closes the connection idle longest when it is full (a local client
      // holding connections); a CLI descheduled between connecting and speaking can be that one.
      // The request was never sent (no connection was established), so it is safe to try again.
      // A refused or missing socket (shoald not running) fails at once.
      const closedBeforeSpeaking = e.code === grpc.status.UNAVAILABLE && c.getChannel().getTarget().startsWith('unix:')
        && /No connection established/.test(e.details ?? '') && !/ECONNREFUSED|ENOENT/.test(e.details ?? '');
      const pause = 100 * 2 ** attempt;
      if (!closedBeforeSpeaking || attempt >= LOCAL_CONNECT_ATTEMPTS || Date.now() + pause >= deadline) throw new CliError(explain(c, e), 1, e.code);
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}

/** A gRPC failure as an operator should read it: what could not be reached, and what to check. */
export function explain(c: grpc.Client, e: grpc.ServiceError): string {
  if (e.code !== grpc.status.UNAVAILABLE || !/No connection established|ECONNREFUSED|ENOENT|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|failed to connect/i.test(e.details ?? '')) return e.details || e.message;
  const target = c.getChannel().getTarget().replace(/^dns:/, '');
  const why = /ECONNREFUSED/.test(e.details) ? 'connection refused' : /ENOENT/.test(e.details) ? 'no such socket' : /UNREACH/.test(e.details) ? 'no route to it' : /ETIMEDOUT/.test(e.details) ? 'timed out' : 'no connection';
  return target.startsWith('unix:')
    ? `cannot reach shoald on ${target.replace(/^unix:(\/\/)?/, '')} (${why}): is it running with that --state-dir?`
    : `cannot reach the manager at ${target} (${why}): is shoald running there, and is the address right? (--host HOST:PORT, or --state-dir of a manager host)`;
}

/**
 * For commands that wait anyway (following a rollout): a call that meets a passing unavailability
 * (an election, a ReadIndex round that timed out on a loaded manager) is tried again until
 * `deadline`, instead of ending the whole wait.
 */
export async function callPatiently<T = any>(c: Client, method: string, req: unknown, deadline: number): Promise<T> {
  for (;;) {
    try {
      return await call<T>(c, method, req);
    } catch (e) {
      if (!(e instanceof CliError) || e.grpcCode !== grpc.status.UNAVAILABLE || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
