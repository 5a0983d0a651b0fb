// Task logs through the managers, as `docker service logs` gets them: the lines live in the CRI
// log files on the nodes. Every agent keeps a LogSubscriptions stream open to the manager it has
// its session with; a client asks any manager (Control.Logs), which asks every manager
// (LogBroker.SubscribeLocal, itself included) for the tasks whose agents are connected there;
// each of those subscribes the agents, which publish the lines back in batches (PublishLogs).
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Manager } from '../control/manager.js';
import { CHANNEL_OPTIONS, clientCredentials } from '../security/credentials.js';
import type { MethodSpec } from '../security/authz.js';
import { taskDisplayName, type TaskObject } from './model.js';
import { logBrokerDef } from '../../proto/services.js';

export interface LogLineWire {
  task_id: string;
  task_name: string;
  node_id: string;
  node_hostname: string;
  container: string;
  stream: string;
  time_ns: number;
  line: string;
  warning: string;
  done_node: string;
}

interface AgentLink {
  nodeId: string;
  send(sub: { id: string; task_ids: string[]; follow: boolean; tail: number; close: boolean }): void;
}

interface Sub {
  nodeId: string;
  onEntries(e: { task_id: string; container: string; stream: string; time_ns: number; line: string }[]): void;
  onDone(err: string): void;
}

export { logBrokerDef };

/** The LogBroker service's table: manager-only, served on every manager. */
export function logBrokerTable(b: LogBroker): Record<string, MethodSpec> {
  return {
    SubscribeLocal: {
      roles: ['manager'],
      stream: async (call) => {
        const req = call.request as { task_ids: string[]; follow: boolean; tail: number };
        let cancel: (() => void) | undefined;
        call.on('cancelled', () => cancel?.());
        await b.serveLocal((l) => call.write(l), (f) => (cancel = f), req.task_ids ?? [], !!req.follow, Number(req.tail) || 0);
        call.end();
      },
    },
  };
}

export class LogBroker {
  private readonly agents = new Map<string, AgentLink>();
  private readonly subs = new Map<string, Sub>();

  constructor(private readonly mgr: Manager, private readonly log: (m: string) => void) {}

  /** Dispatcher.LogSubscriptions: an agent's stream; subscriptions for its node go down it. */
  agentStream(call: grpc.ServerWritableStream<any, any>, nodeId: string, ended: Promise<void>): Promise<void> {
    const link: AgentLink = { nodeId, send: (sub) => call.write(sub) };
    this.agents.set(nodeId, link);
    const done = () => {
      if (this.agents.get(nodeId) === link) this.agents.delete(nodeId);
      // Whatever this agent was sending is cut short: tell the listeners.
      for (const [id, s] of this.subs) if (s.nodeId === nodeId) {
        this.subs.delete(id);
        s.onDone('the node\'s session with this manager ended');
      }
    };
    return new Promise((resolve) => {
      const finish = () => {
        done();
        resolve();
      };
      call.on('cancelled', finish);
      call.on('error', finish);
      call.on('close', finish);
      void ended.then(() => {
        finish();
        call.end();
      });
    });
  }

  /** Dispatcher.PublishLogs: a batch of lines (or the end) for one subscription. */
  publish(nodeId: string, req: { subscription_id: string; entries: any[]; done: boolean; err: string }): { cancelled: boolean } {
    const s = this.subs.get(req.subscription_id);
    if (!s || s.nodeId !== nodeId) return { cancelled: true };
    if (req.entries?.length) s.onEntries(req.entries);
    if (req.done || req.err) {
      this.subs.delete(req.subscription_id);
      s.onDone(req.err ?? '');
    }
    return { cancelled: false };
  }

  /**
   * LogBroker.SubscribeLocal: lines of the given tasks whose nodes' agents are connected to this
   * manager. Ends (when not following) once every such node has sent all of its lines, each
   * node's end marked with a `done_node` line.
   */
  serveLocal(write: (l: Partial<LogLineWire>) => void, onCancel: (f: () => void) => void, taskIds: string[], follow: boolean, tail: number): Promise<void> {
    const byNode = new Map<string, TaskObject[]>();
    for (const id of taskIds) {
      const t = this.mgr.raft.store.get('task', id) as TaskObject | undefined;
      if (!t?.nodeId || !this.agents.has(t.nodeId)) continue;
      let l = byNode.get(t.nodeId);
      if (!l) byNode.set(t.nodeId, (l = []));
      l.push(t);
    }
    return new Promise((resolve) => {
      let open = byNode.size;
      if (open === 0) return resolve();
      const mine: string[] = [];
      let cancelled = false;
      onCancel(() => {
        cancelled = true;
        for (const id of mine) {
          const s = this.subs.get(id);
          if (!s) continue;
          this.subs.delete(id);
          this.agents.get(s.nodeId)?.send({ id, task_ids: [], follow: false, tail: 0, close: true });
        }
        resolve();
      });
      for (const [nodeId, ts] of byNode) {
        const id = randomBytes(9).toString('hex');
        mine.push(id);
        const names = new Map(ts.map((t) => [t.id, taskDisplayName(t)]));
        const hostname = this.mgr.node(nodeId)?.status.hostname ?? '';
        this.subs.set(id, {
          nodeId,
          onEntries: (es) => {
            if (cancelled) return;
            for (const e of es) write({ task_id: e.task_id, task_name: names.get(e.task_id) ?? e.task_id, node_id: nodeId, node_hostname: hostname, container: e.container, stream: e.stream, time_ns: Number(e.time_ns), line: e.line });
          },
          onDone: (err) => {
            if (cancelled) return;
            if (err) write({ node_id: nodeId, node_hostname: hostname, warning: `logs from node ${hostname}: ${err}` });
            write({ node_id: nodeId, node_hostname: hostname, done_node: nodeId });
            if (--open === 0) resolve();
          },
        });
        this.agents.get(nodeId)!.send({ id, task_ids: ts.map((t) => t.id), follow, tail, close: false });
      }
    });
  }

  /** Control.Logs: the lines of `tasks` from whichever managers their agents are connected to. */
  async serveClient(call: grpc.ServerWritableStream<any, any>, tasks: TaskObject[], o: { follow: boolean; tail: number }): Promise<void> {
    const nodes = new Set(tasks.map((t) => t.nodeId!));
    const done = new Set<string>();
    const ids = tasks.map((t) => t.id);
    const cancels: (() => void)[] = [];
    let closed = false;
    call.on('cancelled', () => {
      closed = true;
      for (const c of cancels) c();
    });
    const write = (l: Partial<LogLineWire>) => {
      if (closed) return;
      if (l.done_node) {
        done.add(l.done_node);
        return;
      }
      call.write(l);
    };
    const managers = this.mgr.nodes().filter((n) => n.status.raft && n.status.role === 'manager');
    await Promise.all(managers.map(async (m) => {
      if (m.id === this.mgr.o.nodeId) {
        await this.serveLocal(write, (f) => cancels.push(f), ids, o.follow, o.tail);
        return;
      }
      await this.remote(m.status.addr, write, (f) => cancels.push(f), ids, o).catch((e) => {
        this.log(`logs: asking manager ${m.status.hostname} failed: ${(e as Error).message}`);
      });
    }));
    if (closed) return;
    for (const n of nodes) {
      if (done.has(n)) continue;
      const h = this.mgr.node(n)?.status.hostname ?? n;
      write({ node_id: n, node_hostname: h, warning: `node ${h} has no session with any manager (down or unreachable): its tasks' logs are not available now` });
    }
    call.end();
  }

  private remote(addr: string, write: (l: Partial<LogLineWire>) => void, onCancel: (f: () => void) => void, ids: string[], o: { follow: boolean; tail: number }): Promise<void> {
    const Ctor = grpc.makeGenericClientConstructor(logBrokerDef(), 'LogBroker');
    const c = new Ctor(addr, clientCredentials(this.mgr.o.tls()), CHANNEL_OPTIONS) as grpc.Client & Record<string, any>;
    return new Promise<void>((resolve, reject) => {
      const s = c.SubscribeLocal({ task_ids: ids, follow: o.follow, tail: o.tail }) as grpc.ClientReadableStream<LogLineWire>;
      onCancel(() => s.cancel());
      s.on('data', (l: LogLineWire) => write(l));
      s.on('end', () => {
        c.close();
        resolve();
      });
      s.on('error', (e: grpc.ServiceError) => {
        c.close();
        if (e.code === grpc.status.CANCELLED) resolve();
        else reject(new Error(e.details ?? e.message));
      });
    });
  }
}
