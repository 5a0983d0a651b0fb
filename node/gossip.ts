// Gossip on every node, keyed with the cluster's gossip key (handed out in the agent's session).
// Node ids are the member names, so managers can read each node's alive/suspect/dead state.
import { Keyring } from '../gossip/keyring.js';
import { makeConfig, type PresetName } from '../gossip/config.js';
import { Memberlist } from '../gossip/memberlist.js';
import type { Log } from '../proto/log.js';
import { gossipProbeRtt, gossipSuspicions, sources } from '../manager/metrics.js';

export type GossipState = 'alive' | 'suspect' | 'dead' | 'left';

export class NodeGossip {
  private constructor(readonly ml: Memberlist, private readonly log: Log) {}

  static async start(p: { nodeId: string; clusterId: string; host: string; port: number; key: Buffer; preset: PresetName; log: Log; onChange?(): void }): Promise<NodeGossip> {
    const ml = await Memberlist.create({
      config: makeConfig(p.nodeId, p.preset, { label: `shoal/${p.clusterId}` }),
      bindAddr: p.host,
      bindPort: p.port,
      keyring: new Keyring([p.key]),
      onProbeRtt: (ms) => gossipProbeRtt.observe(ms / 1000),
      log: p.log,
    });
    const g = new NodeGossip(ml, p.log);
    sources.gossip = () => {
      const by: Record<string, number> = { alive: 0, suspect: 0, dead: 0, left: 0 };
      for (const m of ml.members()) by[m.state] = (by[m.state] ?? 0) + 1;
      return by;
    };
    ml.on('event', (e: { type: string; name: string }) => {
      if (e.type === 'suspect') gossipSuspicions.inc();
      if (e.type === 'dead' || e.type === 'leave' || e.type === 'join' || e.type === 'alive') p.log(`gossip: ${e.name} ${e.type}`, { nodeId: e.name });
      p.onChange?.();
    });
    return g;
  }

  get addr(): string {
    return this.ml.addr;
  }

  state(nodeId: string): GossipState | undefined {
    const m = this.ml.members().find((x) => x.name === nodeId);
    if (!m) return undefined;
    return m.state as GossipState;
  }

  /** Joins through the given seeds when this node sees no other live member. */
  async ensureJoined(seeds: string[]): Promise<void> {
    const others = seeds.filter((s) => s && s !== this.ml.addr);
    if (others.length === 0) return;
    if (this.ml.liveMembers().length > 1) return;
    try {
      const r = await this.ml.join(others);
      if (r.contacted === 0) this.log(`gossip: could not reach any seed (${r.errors.join('; ')})`);
    } catch (e) {
      this.log(`gossip: join failed: ${(e as Error).message}`);
    }
  }

  async leave(): Promise<void> {
    try {
      await this.ml.leave();
    } catch {
      // already down
    }
  }

  async stop(): Promise<void> {
    delete sources.gossip;
    await this.ml.shutdown();
  }
}
