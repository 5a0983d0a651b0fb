// The process's Prometheus metrics (prom-client), in one registry: what each part counts as it
// works (histograms and counters fed where the work happens) and what is read when scraped (gauges
// whose values come from the live objects through `sources`). Names follow Prometheus'
// conventions: a shoal_ prefix, the unit in the name, _total for counters. shoald serves them on
// --metrics-addr (loopback by default).
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'shoal_' });

const r = [registry];
const LATENCY = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Live values read at scrape time; each part sets the ones it owns (absent: not reported). */
export const sources: {
  raft?(): { term: number; commit: number; applied: number; leader: boolean };
  store?(): { objects: Record<string, number>; watches: number };
  gossip?(): Record<string, number>;
  dispatcher?(): { sessions: number };
  scheduler?(): { pending: number };
  agent?(): Record<string, number>;
} = {};

export const raftLeaderChanges = new Counter({ name: 'shoal_raft_leader_changes_total', help: 'Leadership changes this manager saw', registers: r });
export const raftProposals = new Counter({ name: 'shoal_raft_proposals_total', help: 'Store transactions proposed through this manager, by result', labelNames: ['result'], registers: r });
export const raftSave = new Histogram({ name: 'shoal_raft_wal_save_seconds', help: 'Time to write (and fsync when needed) one batch of raft state to the WAL', buckets: LATENCY, registers: r });
export const raftSnapshot = new Histogram({ name: 'shoal_raft_snapshot_duration_seconds', help: 'Time to encode and write a store snapshot', buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30], registers: r });
export const reconcilePasses = new Counter({ name: 'shoal_reconcile_passes_total', help: 'Passes of the leader\'s reconcile loops, by loop and result', labelNames: ['loop', 'result'], registers: r });
export const reconcileDuration = new Histogram({ name: 'shoal_reconcile_duration_seconds', help: 'Time of one reconcile pass (decide and commit), by loop', labelNames: ['loop'], buckets: LATENCY, registers: r });
export const decisions = new Counter({ name: 'shoal_leader_changes_committed_total', help: 'Store operations the leader\'s loops committed (task creates, updates, deletes)', registers: r });
export const heartbeatsMissed = new Counter({ name: 'shoal_dispatcher_heartbeats_missed_total', help: 'Agent sessions ended because their heartbeats stopped', registers: r });
export const gossipProbeRtt = new Histogram({ name: 'shoal_gossip_probe_rtt_seconds', help: 'Round trip of direct gossip probes (ping to ack)', buckets: LATENCY, registers: r });
export const gossipSuspicions = new Counter({ name: 'shoal_gossip_suspicions_total', help: 'Members this node heard suspected', registers: r });
export const criCalls = new Histogram({ name: 'shoal_cri_call_duration_seconds', help: 'CRI calls of the agent to its runtime, by method and outcome', labelNames: ['method', 'result'], buckets: LATENCY, registers: r });
export const imagePulls = new Histogram({ name: 'shoal_image_pull_duration_seconds', help: 'Image pulls through the CRI', buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300], registers: r });
export const imagePullBytes = new Counter({ name: 'shoal_image_pull_bytes_total', help: 'Bytes of images pulled (the image size the runtime reports)', registers: r });

new Gauge({
  name: 'shoal_raft_term', help: 'Current raft term', registers: r,
  collect() { const v = sources.raft?.(); if (v) this.set(v.term); },
});
new Gauge({
  name: 'shoal_raft_commit_index', help: 'Raft commit index', registers: r,
  collect() { const v = sources.raft?.(); if (v) this.set(v.commit); },
});
new Gauge({
  name: 'shoal_raft_applied_index', help: 'Raft index the store has applied', registers: r,
  collect() { const v = sources.raft?.(); if (v) this.set(v.applied); },
});
new Gauge({
  name: 'shoal_raft_is_leader', help: '1 on the raft leader', registers: r,
  collect() { const v = sources.raft?.(); if (v) this.set(v.leader ? 1 : 0); },
});
new Gauge({
  name: 'shoal_store_objects', help: 'Objects in the replicated store, by kind', labelNames: ['kind'], registers: r,
  collect() { this.reset(); const v = sources.store?.(); if (v) for (const [k, n] of Object.entries(v.objects)) this.set({ kind: k }, n); },
});
new Gauge({
  name: 'shoal_store_watches', help: 'Open watches on the store', registers: r,
  collect() { const v = sources.store?.(); if (v) this.set(v.watches); },
});
new Gauge({
  name: 'shoal_gossip_members', help: 'Gossip members by state', labelNames: ['state'], registers: r,
  collect() { this.reset(); const v = sources.gossip?.(); if (v) for (const [s, n] of Object.entries(v)) this.set({ state: s }, n); },
});
new Gauge({
  name: 'shoal_dispatcher_sessions', help: 'Agent sessions open on this manager', registers: r,
  collect() { const v = sources.dispatcher?.(); if (v) this.set(v.sessions); },
});
new Gauge({
  name: 'shoal_scheduler_pending_tasks', help: 'Tasks waiting for a node', registers: r,
  collect() { const v = sources.scheduler?.(); if (v) this.set(v.pending); },
});
new Gauge({
  name: 'shoal_agent_tasks', help: 'Tasks on this node, by the state its agent last reported', labelNames: ['state'], registers: r,
  collect() { this.reset(); const v = sources.agent?.(); if (v) for (const [s, n] of Object.entries(v)) this.set({ state: s }, n); },
});

/** Serves GET /metrics on host:port. Resolves with the server, or rejects if it cannot bind. */
export function serveMetrics(host: string, port: number): Promise<Server> {
  const srv = createServer((req, res) => {
    if (req.method !== 'GET' || !req.url?.startsWith('/metrics')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(e as Error).message}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => {
      srv.off('error', reject);
      resolve(srv);
    });
  });
}
