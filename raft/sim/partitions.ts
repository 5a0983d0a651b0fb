// Random network partitions for the fault scheduler: symmetric splits, one-way cuts, the
// leader isolated, and a bridge node that alone sees both halves. All randomness from the PRNG
// handed in, in a fixed order (the schedule must replay from the seed).

import type { NodeId } from '../types.js';
import { Partition } from './network.js';
import type { Prng } from './prng.js';

/** A random partition of `members` (at least 2), or null when the drawn kind needs more nodes. */
export function randomPartition(r: Prng, members: NodeId[], leader: NodeId | null): Partition | null {
  const shuffled = r.shuffle([...members]);
  const kind = r.int(0, 3);
  if (kind === 0) {
    const cut = r.int(1, shuffled.length - 1);
    return Partition.symmetric(shuffled.slice(0, cut), shuffled.slice(cut));
  }
  if (kind === 1) {
    const cut = r.int(1, shuffled.length - 1);
    return Partition.oneWay(shuffled.slice(0, cut), shuffled.slice(cut));
  }
  if (kind === 2) {
    const who = leader ?? shuffled[0];
    return Partition.isolate(who, members.filter((m) => m !== who));
  }
  if (shuffled.length < 3) return null;
  const bridge = shuffled[0];
  const rest = shuffled.slice(1);
  const cut = r.int(1, rest.length - 1);
  return Partition.bridge(rest.slice(0, cut), rest.slice(cut), bridge);
}
