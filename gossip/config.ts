// Every protocol knob, with the formula it feeds and the trade-off it makes,
// plus the named presets. Formulas live in timing.ts.

export interface GossipConfig {
  /** Unique member name in the pool. */
  name: string;
  /**
   * Time between probes of one member (round-robin over a shuffled list).
   * Shorter = faster first detection and more ping traffic (2 packets per
   * interval per member at rest). Scaled by Lifeguard awareness (× score+1).
   */
  probeIntervalMs: number;
  /**
   * How long to wait for a direct ack before asking `indirectChecks` members
   * to probe for us. Should be above the 99th-percentile RTT. Not scaled by
   * awareness: a slow node waits longer for indirect acks instead, which is scaled.
   */
  probeTimeoutMs: number;
  /** k: members asked to ping a target that missed its direct ack. */
  indirectChecks: number;
  /** Period of the extra gossip round that pushes pending updates. */
  gossipIntervalMs: number;
  /** Members contacted per gossip round. */
  gossipNodes: number;
  /**
   * Dead members stay gossip targets (so a wrongly declared node hears it and
   * refutes) and stay in the list for this long; then they are reaped.
   */
  gossipToTheDeadMs: number;
  /**
   * Suspicion timeout: min = suspicionMult · max(1, log10 N) · probeInterval.
   * Also sets k = suspicionMult − 2 confirmations to reach min.
   */
  suspicionMult: number;
  /** max suspicion timeout = this · min (a lone, unconfirmed suspicion). */
  suspicionMaxTimeoutMult: number;
  /** Each update is sent retransmitMult · ceil(log10(N + 1)) times. */
  retransmitMult: number;
  /** Full-state TCP sync with one random member (scaled above 32 members). 0 disables. */
  pushPullIntervalMs: number;
  /**
   * Every this often, push/pull with one random dead member (serf's
   * reconnect): the only way two sides of a healed partition, each holding
   * the other dead, find each other again. 0 disables.
   */
  reconnectIntervalMs: number;
  /** Dead members are kept (for reconnect and for `members()`) this long, then forgotten. */
  reconnectTimeoutMs: number;
  /** Deadline for one TCP stream (join, push/pull). */
  tcpTimeoutMs: number;
  /** Lifeguard awareness ceiling: probe interval stretches up to this factor. */
  awarenessMaxMultiplier: number;
  /** Path-MTU budget for one UDP datagram, including encryption and label overhead. */
  udpBufferSize: number;
  /** Largest metadata blob a member may carry. */
  metaMaxSize: number;
  /**
   * A dead member's name may be taken by an alive message from a different
   * address once it has been dead this long (a node that came back on a new
   * address). A left member's name may be taken at once. Alive members never
   * change address: that is a conflict, reported and refused.
   */
  deadNodeReclaimMs: number;
  /** Try a TCP ping in parallel with indirect probes (memberlist's fallback). */
  tcpFallbackProbe: boolean;
  /** Cluster label bound into every packet: pools with different labels never merge. */
  label: string;
}

export type PresetName = 'lan' | 'wan' | 'local' | 'serf-lan';

/**
 * memberlist's DefaultLANConfig, exactly (serf's `-profile=lan`). This is the
 * profile the serf comparison runs at. DESIGN.md §7's gossip row is this.
 */
const serfLan: Omit<GossipConfig, 'name'> = {
  probeIntervalMs: 1000,
  probeTimeoutMs: 500,
  indirectChecks: 3,
  gossipIntervalMs: 200,
  gossipNodes: 3,
  gossipToTheDeadMs: 30_000,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  retransmitMult: 4,
  pushPullIntervalMs: 30_000,
  reconnectIntervalMs: 30_000,
  reconnectTimeoutMs: 24 * 3600_000,
  tcpTimeoutMs: 10_000,
  awarenessMaxMultiplier: 8,
  udpBufferSize: 1400,
  metaMaxSize: 512,
  deadNodeReclaimMs: 0,
  tcpFallbackProbe: true,
  label: '',
};

/**
 * shoal's LAN default. Managers turn "dead" into "reschedule its tasks", so
 * the target is: every member knows a crashed peer is dead within 3.5 s at
 * N = 10, with no live member declared dead at 10 % packet loss.
 *
 * serf-lan cannot meet that: its minimum suspicion alone is 4 s at N ≤ 10,
 * after ~1.5 s to be probed and fail. What changes, and why it is safe:
 * - probeInterval 1 s → 500 ms, probeTimeout 500 → 250 ms: a crash is probed
 *   and suspected twice as fast. LAN RTTs are < 1 ms; 250 ms still absorbs GC
 *   and scheduling pauses, and Lifeguard awareness stretches the interval of
 *   a node that is itself slow. Cost: 2× ping traffic at rest (~70 B/s more).
 * - suspicionMult 4 → 3: min suspicion 1.5 s at N ≤ 10 (3 s at 100, 4.5 s at
 *   1000), reached after one independent confirmation (k = 1). A lone false
 *   suspicion still waits max = 6 · min (9 s at N ≤ 10, 18 s at N = 100),
 *   which is many probe rounds for the buddy rule to reach the suspect and
 *   its refutation to spread. A false confirmation needs a second member to
 *   independently fail a direct, 3 indirect and a TCP probe in that window.
 * The simulator (gossip/sim) checks both halves: N = 100 at 10 % loss for
 * 10 minutes declares no live member dead.
 * Everything else is memberlist's LAN value.
 */
const lan: Omit<GossipConfig, 'name'> = {
  ...serfLan,
  probeIntervalMs: 500,
  probeTimeoutMs: 250,
  suspicionMult: 3,
};

/** memberlist's DefaultWANConfig: long timeouts for high, variable RTTs. */
const wan: Omit<GossipConfig, 'name'> = {
  ...serfLan,
  probeIntervalMs: 5000,
  probeTimeoutMs: 3000,
  gossipIntervalMs: 500,
  gossipNodes: 4,
  gossipToTheDeadMs: 60_000,
  suspicionMult: 6,
  pushPullIntervalMs: 60_000,
  reconnectIntervalMs: 60_000,
  tcpTimeoutMs: 30_000,
};

/** memberlist's DefaultLocalConfig: one machine (tests, the lab). */
const local: Omit<GossipConfig, 'name'> = {
  ...serfLan,
  probeTimeoutMs: 200,
  indirectChecks: 1,
  gossipIntervalMs: 100,
  gossipToTheDeadMs: 15_000,
  suspicionMult: 3,
  retransmitMult: 2,
  pushPullIntervalMs: 15_000,
  reconnectIntervalMs: 15_000,
  tcpTimeoutMs: 1000,
};

export const presets: Readonly<Record<PresetName, Readonly<Omit<GossipConfig, 'name'>>>> = {
  lan,
  wan,
  local,
  'serf-lan': serfLan,
};

export function isPresetName(s: string): s is PresetName {
  return Object.prototype.hasOwnProperty.call(presets, s);
}

/** A full config from a preset plus overrides, validated. */
export function makeConfig(
  name: string,
  preset: PresetName = 'lan',
  overrides: Partial<Omit<GossipConfig, 'name'>> = {},
): GossipConfig {
  if (!isPresetName(preset)) {
    throw new Error(`gossip config: unknown preset "${preset}"; use one of ${Object.keys(presets).join(', ')}`);
  }
  const cfg: GossipConfig = { ...presets[preset], ...overrides, name };
  validateConfig(cfg);
  return cfg;
}

export function validateConfig(cfg: GossipConfig): void {
  const bad = (field: string, why: string): never => {
    throw new Error(`gossip config: ${field} ${why}`);
  };
  if (typeof cfg.name !== 'string' || cfg.name.length === 0 || cfg.name.length > 128) {
    bad('name', `must be a non-empty string of at most 128 characters, got ${JSON.stringify(cfg.name)}`);
  }
  const positive: (keyof GossipConfig)[] = [
    'probeIntervalMs', 'probeTimeoutMs', 'gossipIntervalMs', 'tcpTimeoutMs', 'suspicionMult',
    'suspicionMaxTimeoutMult', 'retransmitMult', 'awarenessMaxMultiplier', 'udpBufferSize',
  ];
  for (const f of positive) {
    const v = cfg[f];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) bad(f, `must be a positive number, got ${String(v)}`);
  }
  const nonNegative: (keyof GossipConfig)[] = [
    'indirectChecks', 'gossipNodes', 'gossipToTheDeadMs', 'pushPullIntervalMs', 'metaMaxSize', 'deadNodeReclaimMs',
    'reconnectIntervalMs', 'reconnectTimeoutMs',
  ];
  for (const f of nonNegative) {
    const v = cfg[f];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) bad(f, `must be a number >= 0, got ${String(v)}`);
  }
  if (cfg.probeTimeoutMs >= cfg.probeIntervalMs) {
    bad('probeTimeoutMs', `(${cfg.probeTimeoutMs}) must be below probeIntervalMs (${cfg.probeIntervalMs}): indirect probes need the rest of the interval`);
  }
  if (cfg.suspicionMaxTimeoutMult < 1) bad('suspicionMaxTimeoutMult', 'must be >= 1');
  if (!Number.isInteger(cfg.awarenessMaxMultiplier)) bad('awarenessMaxMultiplier', 'must be an integer');
  if (cfg.udpBufferSize < 256 || cfg.udpBufferSize > 65_000) {
    bad('udpBufferSize', `must be within 256..65000 bytes, got ${cfg.udpBufferSize}`);
  }
  if (cfg.metaMaxSize > 1024) bad('metaMaxSize', `must be at most 1024 bytes so an alive message fits one packet, got ${cfg.metaMaxSize}`);
  if (typeof cfg.label !== 'string' || Buffer.byteLength(cfg.label) > 255) {
    bad('label', 'must be a string of at most 255 bytes');
  }
}
