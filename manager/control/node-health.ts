// A node's health from gossip, with a grace period before "down". Gossip finds a silent node
// dead in a few seconds, faster than a shoald restart takes on a loaded machine; marking it down
// at once made the orchestrator replace the tasks of a node that was only restarting. So, as
// Swarm (a node is down after its heartbeat period x 3, ~15 s) and Kubernetes (40 s, then
// eviction) do, a node gossip reports dead or left is first `unknown` (no new tasks go there; its
// tasks stay), and `down` (its tasks orphaned and replaced elsewhere) only once it has stayed
// gone for the grace. Back within the grace, it is ready again and nothing moved.

import type { NodeObject, NodeState } from './model.js';

/**
 * How long a node gossip reports gone stays `unknown` before it is `down`: SwarmKit's
 * dispatcher heartbeat period (5 s) x its grace multiplier (3). Manager option nodeDownGraceMs.
 */
export const NODE_DOWN_GRACE_MS = 15_000;

export type GossipState = 'alive' | 'suspect' | 'dead' | 'left' | undefined;

export interface HealthVerdict {
  /** The state to write (undefined: leave the node as it is). */
  state?: NodeState;
  message?: string;
  /** Decide again at this time (the grace runs out). */
  recheckAt?: number;
}

/**
 * True if the node counts as gone: gossip reports it dead or left, or this manager's gossip does
 * not know it while the node is `unknown` because an earlier leader's gossip saw it go (a new
 * leader whose gossip has not heard of a dead member must not keep its tasks waiting forever).
 */
export function isGone(n: NodeObject, g: GossipState): boolean {
  if (g === 'dead' || g === 'left') return true;
  return g === undefined && n.status.state === 'unknown' && n.status.message.startsWith(GONE_PREFIX);
}

const GONE_PREFIX = 'gossip reports the node';

/**
 * What the leader writes for a node: `goneSince` is when this manager first saw it gone (kept by
 * the caller; undefined while it is alive).
 */
export function nodeHealth(n: NodeObject, g: GossipState, goneSince: number | undefined, now: number, graceMs: number): HealthVerdict {
  if (g === 'alive' || g === 'suspect') return n.status.state === 'ready' ? {} : { state: 'ready', message: '' };
  if (!isGone(n, g) || n.status.state === 'down') return {};
  const since = goneSince ?? now;
  const at = since + graceMs;
  const how = g ?? 'gone (this manager\'s gossip does not know it)';
  const when = new Date(since).toISOString();
  if (now >= at) return { state: 'down', message: `${GONE_PREFIX} ${how} since ${when} (down after a ${graceMs / 1000} s grace)` };
  const verdict: HealthVerdict = { recheckAt: at };
  // Written once when it goes; the message says when its tasks move unless it returns.
  if (n.status.state !== 'unknown' || !n.status.message.startsWith(GONE_PREFIX)) {
    verdict.state = 'unknown';
    verdict.message = `${GONE_PREFIX} ${how} since ${when}; its tasks are replaced elsewhere at ${new Date(at).toISOString()} unless it returns`;
  }
  return verdict;
}
