// What a lab of M managers and W workers consists of, decided before anything is created, so the
// state file names every object before it exists and `lab down` can always find it.
import { join, resolve } from 'node:path';
import { MAX_NODES, SUBNET_BITS, SUBNET_PREFIX, bridgeNetns, bridgePort, hostAddress, hostNetns, labName, managerName, workerName } from './names.js';
import type { LabState, LabNode } from './state.js';

export function planLab(labDir: string, managers: number, workers: number): LabState {
  if (!Number.isInteger(managers) || managers < 1) throw new Error(`--managers must be a whole number of at least 1 (got ${managers})`);
  if (!Number.isInteger(workers) || workers < 0) throw new Error(`--workers must be a whole number of at least 0 (got ${workers})`);
  if (managers + workers > MAX_NODES) throw new Error(`a lab holds at most ${MAX_NODES} nodes (asked for ${managers + workers})`);
  const dir = resolve(labDir);
  const name = labName(dir);
  const nodes: LabNode[] = [];
  const add = (node: string, role: 'manager' | 'worker') => {
    const i = nodes.length;
    nodes.push({
      name: node,
      role,
      netns: hostNetns(name, node),
      port: bridgePort(node),
      address: hostAddress(i),
      stateDir: join(dir, 'nodes', node),
      logFile: join(dir, 'logs', `${node}.log`),
      argv: [],
    });
  };
  for (let i = 1; i <= managers; i++) add(managerName(i), 'manager');
  for (let i = 1; i <= workers; i++) add(workerName(i), 'worker');
  return {
    version: 1,
    name,
    labDir: dir,
    bridgeNetns: bridgeNetns(name),
    subnet: `${SUBNET_PREFIX}0/${SUBNET_BITS}`,
    phase: 'building',
    createdAt: new Date().toISOString(),
    nodes,
  };
}

export function findNode(s: LabState, node: string): LabNode {
  const n = s.nodes.find((x) => x.name === node);
  if (!n) throw new Error(`no lab node named "${node}"; the lab's nodes are: ${s.nodes.map((x) => x.name).join(', ')}`);
  return n;
}
