// Output: aligned tables for people, JSON for scripts.
export function table(headers: string[], rows: string[][]): string {
  const w = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(w[i]!))).join('   ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** A node as `node ls/inspect --format json` prints it. */
/** A proto map of int64 (strings or Longs on the wire) as numbers. */
export function numbers(m: Record<string, unknown> | undefined): Record<string, number> {
  return Object.fromEntries(Object.entries(m ?? {}).map(([k, v]) => [k, Number(v)]));
}

export function nodeJson(n: any) {
  return {
    id: n.id,
    hostname: n.hostname,
    role: n.role,
    desiredRole: n.desired_role,
    status: n.status,
    statusMessage: n.status_message,
    availability: n.availability,
    addr: n.addr,
    labels: n.labels ?? {},
    managerStatus: n.manager_status ? { raftId: Number(n.manager_status.raft_id), addr: n.manager_status.addr, leader: n.manager_status.leader, reachability: n.manager_status.reachability, voter: n.manager_status.voter, locked: !!n.manager_status.locked } : null,
    gossipAddr: n.gossip_addr,
    certSerial: n.cert_serial,
    certNotAfter: n.cert_not_after_ms ? new Date(Number(n.cert_not_after_ms)).toISOString() : null,
    resources: {
      capacity: { cpus: Number(n.capacity?.cpu_millis ?? 0) / 1000, memoryBytes: Number(n.capacity?.memory_bytes ?? 0) },
      reserved: { cpus: Number(n.reserved?.cpu_millis ?? 0) / 1000, memoryBytes: Number(n.reserved?.memory_bytes ?? 0) },
    },
    runtime: n.runtime_name ? `${n.runtime_name} ${n.runtime_version}` : null,
    runningTasks: Number(n.running_tasks ?? 0),
    tasks: numbers(n.tasks_by_state),
    gossip: n.gossip_state || null,
    // Registered through the node's plugins_registry/ (CSI drivers: their node id and topology).
    plugins: (n.plugins ?? []).map((p: any) => ({ kind: p.kind, name: p.name, endpoint: p.endpoint, version: p.version, registeredAt: p.registered_at, ...(p.csi_node_id ? { csi: { nodeId: p.csi_node_id, topology: p.csi_topology ?? {}, maxVolumes: Number(p.csi_max_volumes ?? 0) } } : {}) })),
    pluginRefusals: n.plugin_refusals ?? [],
  };
}
