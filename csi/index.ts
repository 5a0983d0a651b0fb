// The built-in CSI driver as a module: startDriver() serves it on a Unix socket (and registers
// it when given a registry directory), the way shoal-csi does as its own process.
import type * as grpc from '@grpc/grpc-js';
import { defaultOptions, Driver, type DriverOptions } from './driver.js';
import { NodeWatch } from './node-watch.js';
import { serveRegistration, type RegistrationServer } from './registration.js';
import { serveCsi, clearStaleSocket, type CallLog } from './server.js';

export { DEFAULT_NAME, DRIVER_VERSION } from './driver.js';
export type { DriverOptions } from './driver.js';

export interface StartOptions extends Partial<DriverOptions> {
  nodeId: string;
  poolDir: string;
  /** The CSI socket path. */
  socket: string;
  /** The node's plugins_registry/ directory: register there. */
  registryDir?: string;
  log?: (msg: string) => void;
  callLog?: CallLog;
}

export interface RunningDriver {
  driver: Driver;
  server: grpc.Server;
  registration?: RegistrationServer;
  /** Stops serving. Staged and published volumes stay as they are (mounts outlive the driver). */
  close(): Promise<void>;
}

export async function startDriver(o: StartOptions): Promise<RunningDriver> {
  const log = o.log ?? ((m: string) => process.stderr.write(`shoal-csi: ${m}\n`));
  const driver = new Driver(defaultOptions(o));
  driver.init();
  const swept = driver.pool.sweepTmp(driver.opts.nodeId, 60 * 60_000);
  if (swept.length > 0) log(`removed ${swept.length} leftover(s) of interrupted work from ${driver.pool.dir}/.tmp: ${swept.join(', ')}`);
  const watch = new NodeWatch(driver);
  watch.log = log;
  watch.start();
  const server = await serveCsi(driver, o.socket, o.callLog);
  const registration = o.registryDir ? await serveRegistration(o.registryDir, driver.opts.name, o.socket, log) : undefined;
  return {
    driver, server, registration,
    close: async () => {
      await registration?.close();
      await watch.stop();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      try { clearStaleSocket(o.socket); } catch { /* not ours */ }
    },
  };
}
