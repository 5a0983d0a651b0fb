// Builds a planned lab's network, recording progress in the state file as it goes.
import { createBridge, createHost } from './netns.js';
import { writeState, type LabState } from './state.js';

/** Test hook: `SHOAL_LAB_FAULT=after-host:N` (or `after-daemons:N`) makes `lab up` SIGKILL itself
 * once N hosts exist (or once its N daemons run), standing in for a crash (power loss, OOM kill)
 * half-way through bring-up. Unset, it does nothing. */
export function faultPoint(where: string, n: number): void {
  const f = process.env.SHOAL_LAB_FAULT;
  if (f && f === `${where}:${n}`) process.kill(process.pid, 'SIGKILL');
}

export function buildNetwork(s: LabState, log: (line: string) => void): void {
  createBridge(s.name);
  log(`bridge ${s.bridgeNetns} (subnet ${s.subnet}, reachable only from the lab's namespaces)`);
  let made = 0;
  for (const n of s.nodes) {
    createHost(s.name, n.name, n.address);
    made++;
    log(`host ${n.name}: netns ${n.netns}, ${n.address}`);
    faultPoint('after-host', made);
  }
  writeState(s);
}
