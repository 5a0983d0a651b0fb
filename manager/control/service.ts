// The control API for nodes and the cluster (proto/control/control.proto), manager-only. Writes
// run on the raft leader (followers forward them with the caller's identity); reads wait for a
// ReadIndex round so any manager answers with the latest committed state.
import type { MethodSpec } from '../security/authz.js';
import { invalid, notFound, precondition, unavailable } from '../security/errors.js';
import { unseal } from '../ca/seal.js';
import { tokenRecord } from '../ca/cluster-init.js';
import { caDigest } from '../ca/tokens.js';
import { updateNode, type Manager } from './manager.js';
import { AVAILABILITIES, clusterInput, nodeInput, type Availability, type NodeObject } from './model.js';
import { quorumCheck } from './quorum.js';
import { nodePluginsToWire } from './plugins.js';
import { controlDef } from '../../proto/services.js';
// Servers and older callers take the contracts from here; clients import proto/services.js.
export { caDef, controlDef, dispatcherDef, localDef, raftMembershipDef } from '../../proto/services.js';
import { isTerminal, type TaskObject } from '../services/model.js';

const M: ('manager')[] = ['manager'];
/** How long PromoteNode waits for the node to become a voter before answering. */
const PROMOTE_WAIT_MS = 25_000; // under the 30 s a follower gives a forwarded call
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._\/-]{0,252}$/;

export function nodeToWire(mgr: Manager, n: NodeObject) {
  const r = n.status.raft;
  const voters = mgr.raft.confState().voters;
  return {
    id: n.id,
    hostname: n.status.hostname,
    role: n.status.role,
    desired_role: n.spec.desiredRole,
    status: n.status.state,
    status_message: n.status.message,
    availability: n.spec.availability,
    addr: n.status.addr,
    labels: n.labels,
    manager_status: r ? { raft_id: r.id, addr: r.addr, leader: mgr.raft.leader() === r.id, reachability: mgr.reachability(r.id), voter: voters.includes(r.id), locked: !!n.status.description?.locked } : null,
    gossip_addr: n.status.gossipAddr,
    cert_serial: n.status.certSerial,
    cert_not_after_ms: n.status.certNotAfter,
    created_version: n.createdVersion,
    version: n.version,
    ...nodeLoad(mgr, n),
    ...nodePluginsToWire(n.status.description),
  };
}

/** The cluster's key figures without Prometheus: tasks by state, nodes by gossip state, services. */
function clusterFigures(mgr: Manager) {
  const tasks: Record<string, number> = {};
  for (const t of mgr.raft.store.list('task') as TaskObject[]) tasks[t.status.state] = (tasks[t.status.state] ?? 0) + 1;
  const members: Record<string, number> = {};
  for (const n of mgr.nodes()) {
    const s = mgr.o.gossip?.(n.id) ?? 'unknown';
    members[s] = (members[s] ?? 0) + 1;
  }
  return { tasks_by_state: tasks, members_by_state: members, service_count: mgr.raft.store.list('service').length };
}

/** A node's capacity (as its agent reports it), what its placed tasks reserve, and its runtime. */
function nodeLoad(mgr: Manager, n: NodeObject) {
  const d = n.status.description;
  let cpu = 0;
  let mem = 0;
  let running = 0;
  const byState: Record<string, number> = {};
  for (const t of mgr.raft.store.list('task', { nodeId: n.id }) as TaskObject[]) {
    byState[t.status.state] = (byState[t.status.state] ?? 0) + 1;
    if (!t.spec?.template || isTerminal(t.status.state) || t.status.state === 'new' || t.status.state === 'pending') continue;
    cpu += t.spec.template.resources.reservations.cpuMillis ?? 0;
    mem += t.spec.template.resources.reservations.memoryBytes ?? 0;
    if (t.status.state === 'running') running++;
  }
  return {
    capacity: { cpu_millis: d?.cpuMillis ?? 0, memory_bytes: d?.memoryBytes ?? 0 },
    reserved: { cpu_millis: cpu, memory_bytes: mem },
    runtime_name: d?.runtimeName ?? '',
    runtime_version: d?.runtimeVersion ?? '',
    running_tasks: running,
    tasks_by_state: byState,
    gossip_state: mgr.o.gossip?.(n.id) ?? '',
  };
}

export function resolveNode(mgr: Manager, ref: string): NodeObject {
  if (!ref) throw invalid('give a node id, a unique id prefix or a hostname');
  const all = mgr.nodes();
  const exact = all.find((n) => n.id === ref);
  if (exact) return exact;
  const byPrefix = all.filter((n) => n.id.startsWith(ref));
  if (byPrefix.length === 1) return byPrefix[0]!;
  const byHost = all.filter((n) => n.status.hostname === ref);
  if (byHost.length === 1) return byHost[0]!;
  if (byPrefix.length > 1 || byHost.length > 1) throw invalid(`${JSON.stringify(ref)} matches several nodes (${[...byPrefix, ...byHost].map((n) => n.id).join(', ')}); use a longer id prefix`);
  throw notFound(`no node ${JSON.stringify(ref)}: "shoal node ls" lists the nodes`);
}

/**
 * Waits until this manager's replica holds every write committed before the call (ReadIndex).
 * A manager that just started (or an election in progress) knows no leader for a moment: the
 * round is retried for a few seconds before the caller is told.
 */
export async function readLatest(mgr: Manager): Promise<void> {
  const end = Date.now() + 8_000;
  for (;;) {
    try {
      await mgr.raft.linearizableRead();
      return;
    } catch (e) {
      if (Date.now() > end) throw unavailable(`cannot read the latest cluster state: ${(e as Error).message}; quorum may be lost`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export function controlTable(mgr: Manager, log: (m: string) => void): Record<string, MethodSpec> {
  const read = () => readLatest(mgr);
  const cluster = () => {
    const c = mgr.cluster();
    if (!c) throw unavailable('this manager has not loaded the cluster object yet; retry');
    return c;
  };
  const reachable = (raftId: number) => mgr.reachability(raftId) === 'reachable' && (() => {
    const n = mgr.nodes().find((x) => x.status.raft?.id === raftId);
    return !n || n.status.state !== 'down';
  })();

  const demote = async (n: NodeObject): Promise<NodeObject> => {
    if (n.spec.desiredRole === 'worker' && n.status.role === 'worker') throw precondition(`node ${n.id} is already a worker`);
    const r = n.status.raft;
    if (r) {
      const why = quorumCheck(mgr.raft.confState().voters, r.id, reachable);
      if (why) throw precondition(`cannot demote ${n.status.hostname} (${n.id}): ${why}`);
      if (r.id === mgr.raftId) {
        // The leader hands leadership to the most caught-up reachable voter, then the new leader
        // performs the demotion (the call is forwarded there).
        const st = mgr.raft.status();
        let best = 0;
        let bestMatch = -1;
        for (const v of mgr.raft.confState().voters) {
          if (v === mgr.raftId) continue;
          const p = st.progress?.get(v);
          if (p && p.recentActive && p.match > bestMatch) {
            best = v;
            bestMatch = p.match;
          }
        }
        if (!best) throw precondition(`cannot demote the leader ${n.id}: no other reachable manager can take over`);
        log(`control: demoting the leader: transferring leadership to raft member ${best}`);
        mgr.raft.transferLeader(best);
        const end = Date.now() + 10_000;
        while (mgr.raft.isLeader() || !mgr.raft.leader()) {
          if (Date.now() > end) throw unavailable('leadership transfer did not complete within 10 s; retry the demotion');
          await new Promise((res) => setTimeout(res, 50));
        }
        throw Object.assign(new Error('moved'), { retryOnLeader: true });
      }
      await mgr.raft.removeMember(r.id);
      log(`control: removed raft member ${r.id} (node ${n.id})`);
    }
    const res = await updateNode(mgr, n.id, (fresh) => nodeInput(fresh, { spec: { desiredRole: 'worker' }, status: { raft: undefined } }));
    if (!res) throw notFound(`node ${n.id} disappeared while being demoted`);
    return res;
  };

  const table: Record<string, MethodSpec> = {
    ListNodes: {
      roles: M,
      // The leader's view, like GetCluster's: a manager's reachability is what the leader's raft
      // sees of it. A follower has no raft progress and only gossip to go by, which shows a
      // manager that just died alive for seconds (while another is already shown leading).
      leader: true,
      unary: async () => {
        await read();
        return { nodes: mgr.nodes().sort((a, b) => a.createdVersion - b.createdVersion).map((n) => nodeToWire(mgr, n)) };
      },
    },
    GetNode: {
      roles: M,
      leader: true, // as ListNodes
      unary: async (req: { id: string }) => {
        await read();
        return nodeToWire(mgr, resolveNode(mgr, req.id));
      },
    },
    UpdateNode: {
      roles: M,
      leader: true,
      unary: async (req: { id: string; availability: string; label_add: Record<string, string>; label_rm: string[] }) => {
        const n = resolveNode(mgr, req.id);
        let availability = n.spec.availability;
        if (req.availability) {
          if (!AVAILABILITIES.includes(req.availability as Availability)) throw invalid(`availability must be one of ${AVAILABILITIES.join(', ')}, got ${JSON.stringify(req.availability)}`);
          availability = req.availability as Availability;
        }
        const labels = { ...n.labels };
        for (const [k, v] of Object.entries(req.label_add ?? {})) {
          if (!LABEL_KEY.test(k)) throw invalid(`label key ${JSON.stringify(k)} is not valid (letters, digits, . _ / -, at most 253 characters)`);
          labels[k] = String(v);
        }
        for (const k of req.label_rm ?? []) {
          if (!(k in labels)) throw invalid(`node ${n.id} has no label ${JSON.stringify(k)} to remove`);
          delete labels[k];
        }
        const res = await updateNode(mgr, n.id, (fresh) => {
          const l = { ...fresh.labels };
          for (const k of Object.keys(n.labels)) if (!(k in labels)) delete l[k];
          for (const [k, v] of Object.entries(labels)) l[k] = v;
          return nodeInput(fresh, { spec: { availability }, labels: l });
        });
        if (!res) throw notFound(`node ${n.id} was removed meanwhile`);
        return nodeToWire(mgr, res);
      },
    },
    RemoveNode: {
      roles: M,
      leader: true,
      unary: async (req: { id: string; force: boolean }) => {
        const n = resolveNode(mgr, req.id);
        if (n.status.role === 'manager' || n.spec.desiredRole === 'manager' || n.status.raft) {
          throw precondition(`node ${n.status.hostname} (${n.id}) is a manager: demote it first ("shoal node demote ${n.id}"), then remove it`);
        }
        if (n.status.state !== 'down' && !req.force) {
          // Gone but within the node-down grace, it says when it will be down.
          const why = n.status.state === 'unknown' && n.status.message ? ` (${n.status.message})` : '';
          throw precondition(`node ${n.status.hostname} (${n.id}) is ${n.status.state}${why}, not down: stop it (or run "shoal leave" on it) first and wait until it is down, or use --force`);
        }
        const c = cluster();
        const removed = { ...c.spec.removed };
        const now = Date.now();
        for (const [k, until] of Object.entries(removed)) if (until < now) delete removed[k];
        removed[n.id] = Math.max(n.status.certNotAfter || 0, now + 90 * 86400_000);
        await mgr.raft.propose([
          { op: 'delete', kind: 'node', id: n.id, expectVersion: n.version },
          { op: 'update', object: clusterInput(c, { removed }), expectVersion: c.version },
        ]);
        log(`control: removed node ${n.id} (${n.status.hostname}); its certificates are refused from now on`);
        return {};
      },
    },
    PromoteNode: {
      roles: M,
      leader: true,
      unary: async (req: { id: string }) => {
        const n = resolveNode(mgr, req.id);
        if (n.spec.desiredRole === 'manager') throw precondition(`node ${n.status.hostname} (${n.id}) is already a manager`);
        const res = await updateNode(mgr, n.id, (fresh) => nodeInput(fresh, { spec: { desiredRole: 'manager' } }));
        if (!res) throw notFound(`node ${n.id} was removed meanwhile`);
        log(`control: promoting node ${n.id}; it renews its certificate and joins raft`);
        // Success means a voter: wait for the node to join raft and catch up (bounded; the answer
        // then shows it still a learner, or not yet in raft, and the CLI says so).
        const end = Date.now() + PROMOTE_WAIT_MS;
        for (;;) {
          const cur = mgr.node(n.id);
          if (!cur) throw notFound(`node ${n.id} was removed meanwhile`);
          const r = cur.status.raft;
          if ((r && mgr.raft.confState().voters.includes(r.id)) || Date.now() > end || !mgr.isLeader()) return nodeToWire(mgr, cur);
          await new Promise((res2) => setTimeout(res2, 200));
        }
      },
    },
    DemoteNode: {
      roles: M,
      leader: true,
      unary: async (req: { id: string }, ctx) => {
        const n = resolveNode(mgr, req.id);
        try {
          return nodeToWire(mgr, await demote(n));
        } catch (e) {
          if ((e as { retryOnLeader?: boolean }).retryOnLeader) return mgr.forwarder.forward(controlDef(), 'DemoteNode', req, ctx.identity!);
          throw e;
        }
      },
    },
    GetCluster: {
      roles: M,
      // The leader's view: only it knows each manager's progress (match) and reachability.
      leader: true,
      unary: async () => {
        await read();
        const c = cluster();
        const st = mgr.raft.status();
        const voters = mgr.raft.confState().voters;
        const learners = mgr.raft.confState().learners;
        const leader = mgr.leaderNode();
        const managers = mgr.nodes().filter((n) => n.status.raft).map((n) => {
          const r = n.status.raft!;
          return {
            raft_id: r.id,
            node_id: n.id,
            hostname: n.status.hostname,
            addr: r.addr,
            voter: voters.includes(r.id) && !learners.includes(r.id),
            leader: st.lead === r.id,
            reachability: mgr.reachability(r.id),
            match: st.progress?.get(r.id)?.match ?? 0,
          };
        });
        return {
          id: c.id,
          leader_node_id: leader?.id ?? '',
          leader_hostname: leader?.status.hostname ?? '',
          leader_raft_id: st.lead,
          term: st.term,
          commit: st.commit,
          applied: mgr.raft.store.applied,
          managers,
          ca_digest: caDigest(c.spec.ca.certPem),
          node_count: mgr.nodes().length,
          cert_validity_hours: c.spec.certSeconds ? Math.floor(c.spec.certSeconds / 3600) : c.spec.certDays * 24,
          cert_validity_seconds: c.spec.certSeconds ?? c.spec.certDays * 86400,
          answered_by: mgr.o.nodeId,
          autolock: !!c.spec.autolock,
          ...clusterFigures(mgr),
        };
      },
    },
    BackupCluster: {
      roles: M,
      stream: async (call) => {
        await read();
        const c = cluster();
        // The store's objects are immutable: this view is the state at one raft index.
        const data = mgr.raft.store.snapshot();
        const index = mgr.raft.store.applied;
        const term = mgr.raft.status().term;
        const CHUNK = 1 << 20;
        for (let off = 0; off < data.length || off === 0; off += CHUNK) {
          const part = data.subarray(off, off + CHUNK);
          if (!call.write(off === 0 ? { data: part, cluster_id: c.id, index, term, total_bytes: data.length } : { data: part })) await new Promise((r) => call.once('drain', r));
          if (data.length === 0) break;
        }
        log(`control: backup of the store at raft index ${index} (${data.length} bytes) sent`);
        call.end();
      },
    },
    GetJoinTokens: {
      roles: M,
      leader: true,
      unary: async (req: { rotate_worker: boolean; rotate_manager: boolean }) => {
        let c = cluster();
        if (req.rotate_worker || req.rotate_manager) {
          const tokens = { ...c.spec.tokens };
          const ca = mgr.rootCA(c);
          if (req.rotate_worker) tokens.worker = tokenRecord(ca).record;
          if (req.rotate_manager) tokens.manager = tokenRecord(ca).record;
          const res = await mgr.raft.propose([{ op: 'update', object: clusterInput(c, { tokens }), expectVersion: c.version }]);
          c = res.objects[0] as typeof c;
          log(`control: rotated the ${[req.rotate_worker && 'worker', req.rotate_manager && 'manager'].filter(Boolean).join(' and ')} join token`);
        }
        const addrs = mgr.nodes().filter((n) => n.status.raft).map((n) => n.status.addr);
        const key = mgr.rootCA(c).keyPem;
        return { worker: unseal(key, c.spec.tokens.worker.sealed), manager: unseal(key, c.spec.tokens.manager.sealed), manager_addrs: addrs };
      },
    },
  };
  return table;
}

