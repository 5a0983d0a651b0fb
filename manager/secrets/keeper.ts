// The data key as the manager role holds it: loaded from the state dir, or (a manager that joined
// or was just promoted, or whose key file is gone) fetched from another manager over mTLS with this
// manager's own certificate, retried until one answers. Until then the calls that need it (secret
// create, and sending a secret to a node) answer UNAVAILABLE saying why.
import * as grpc from '@grpc/grpc-js';
import { caDef } from '../../proto/services.js';
import { CHANNEL_OPTIONS, clientCredentials, type TlsIdentity } from '../security/credentials.js';
import { unavailable } from '../security/errors.js';
import { DataKey, DataKeyError, loadDataKey, saveDataKey } from './datakey.js';
import type { UnlockKey } from './unlock-key.js';

export interface KeeperOptions {
  stateDir: string;
  /** Other managers to fetch the key from (host:port of their API). */
  managers(): string[];
  tls(): TlsIdentity;
  log(m: string): void;
  retryMs?: number;
  /** The key already in memory (opened by `shoal unlock`, or fetched during the join). */
  initial?: DataKey;
  /** Opens a key file sealed under it (autolock). */
  unlockKey?: UnlockKey;
  /** Keeps a fetched key on disk (default: in clear; shoald: as the cluster's autolock wants it). */
  persist?(k: DataKey): void;
}

export class DataKeyKeeper {
  private k?: DataKey;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private fetching?: Promise<DataKey | undefined>;

  constructor(private readonly o: KeeperOptions) {}

  get present(): boolean {
    return !!this.k;
  }

  /** The key if held, else undefined (key() throws instead). */
  peek(): DataKey | undefined {
    return this.k;
  }

  /** The key, or UNAVAILABLE naming what is missing. */
  key(): DataKey {
    if (this.k) return this.k;
    throw unavailable('this manager does not hold the secrets data key yet (it is fetched from another manager after a join or promotion); retry in a moment, or ask another manager');
  }

  /** Loads the key file; without one, fetches the key from another manager in the background. */
  start(): void {
    try {
      this.k = this.o.initial ?? loadDataKey(this.o.stateDir, this.o.unlockKey);
    } catch (e) {
      this.o.log(`secrets: ${(e as Error).message}`);
      return;
    }
    if (!this.k) void this.fetch();
  }

  /** One round over the other managers; on failure, tries again later until stopped. */
  fetch(): Promise<DataKey | undefined> {
    if (this.k) return Promise.resolve(this.k);
    this.fetching ??= (async () => {
      const got = await fetchDataKey(this.o.managers(), this.o.tls(), this.o.log).catch((e) => {
        this.o.log(`secrets: fetching the data key failed: ${(e as Error).message}`);
        return undefined;
      });
      this.fetching = undefined;
      if (this.stopped) return undefined;
      if (got) {
        this.k = got;
        if (this.o.persist) this.o.persist(got);
        else saveDataKey(this.o.stateDir, got);
        this.o.log(`secrets: holding data key ${got.id} (fetched from another manager)`);
      } else {
        this.timer = setTimeout(() => void this.fetch(), this.o.retryMs ?? 2000);
      }
      return got;
    })();
    return this.fetching;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

/** Asks each manager in turn for the data key (CA.GetDataKey, manager certificate). */
export async function fetchDataKey(addrs: string[], tls: TlsIdentity, log: (m: string) => void): Promise<DataKey | undefined> {
  for (const addr of addrs) {
    const Ctor = grpc.makeGenericClientConstructor(caDef(), 'CA');
    const c = new Ctor(addr, clientCredentials(tls), CHANNEL_OPTIONS) as grpc.Client & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    try {
      const r = await new Promise<{ key: Buffer; key_id: string }>((res, rej) => c.GetDataKey!({}, { deadline: Date.now() + 10_000 }, (e: grpc.ServiceError | null, x: { key: Buffer; key_id: string }) => (e ? rej(e) : res(x))));
      const k = new DataKey(Buffer.from(r.key));
      if (k.id !== r.key_id) throw new DataKeyError(`the key ${addr} sent does not match its id ${r.key_id}`);
      return k;
    } catch (e) {
      log(`secrets: getting the data key from ${addr} failed: ${(e as grpc.ServiceError).details ?? (e as Error).message}`);
    } finally {
      c.close();
    }
  }
  return undefined;
}
