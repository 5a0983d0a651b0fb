// A sweep worker thread: runs its share of seeds and posts one result per seed.
import { parentPort, workerData } from 'node:worker_threads';
import { runSeed } from './simulator.js';
import { toItem, type WorkerJob } from './sweep.js';

const job = workerData as WorkerJob;
if (!parentPort) throw new Error('raft/sim/worker.js must run as a worker thread (see sweep.ts)');
for (const seed of job.seeds) parentPort.postMessage(toItem(runSeed({ seed, steps: job.steps, nodes: job.nodes, tornWrites: job.tornWrites, disk: job.disk })));
