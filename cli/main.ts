#!/usr/bin/env node
// shoal: the CLI. A client of the control API only (plus the local daemon's init/join/leave).
// Commands and flags are documented in node/README.md.
import { CliError, call, controlClient, localClient, type Target } from './client.js';
import { nodeJson, numbers, table } from './format.js';
import { labMain, labTarget } from './lab.js';
import { SERVICE_BOOL, SERVICE_FLAGS, serviceCommand, taskCommand, type Flags } from './service.js';
import { NETWORK_BOOL, NETWORK_FLAGS, networkCommand } from './network.js';
import { closest, commandNames, helpFor, overview, subcommandsOf, unknownWord } from './help.js';
import { applyCommand, diffCommand, getCommand } from './apply.js';
import { eventsCommand } from './events.js';
import { readJoinToken, TOKEN_ENV, TokenInputError } from '../node/join-token-input.js';
import { encodeBackup } from '../proto/backup-file.js';
import { protoDir } from '../proto/load.js';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { FILE_FLAGS, fileCommand } from './secret.js';
import { VOLUME_FLAGS, volumeClassCommand, volumeCommand } from './volume.js';
import { clusterUpdate, unlock, unlockKey } from './autolock.js';

interface Parsed {
  args: string[];
  flags: Map<string, string[]>;
}

const BOOL = new Set(['rotate', 'quiet', 'force', 'help', 'lab', 'version', 'prune', ...SERVICE_BOOL, ...NETWORK_BOOL]);
const KNOWN = new Set(['cert-expiry', 'lab', 'lab-dir', 'state-dir', 'host', 'format', 'token', 'token-file', 'rotate', 'quiet', 'force', 'availability', 'label-add', 'label-rm', 'help', 'version', 'file', 'output', 'prune', 'stack', 'since', 'filter', 'autolock', 'key-file', ...SERVICE_FLAGS, ...FILE_FLAGS, ...NETWORK_FLAGS, ...VOLUME_FLAGS]);

function parse(argv: string[]): Parsed {
  const p: Parsed = { args: [], flags: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      p.args.push(...argv.slice(i + 1));
      break;
    }
    // `service create ... IMAGE CMD ARG...`: after the image, every word is the command's own
    // (as with `docker service create`), flags included.
    if (p.args.length === 3 && p.args[0] === 'service' && p.args[1] === 'create') {
      p.args.push(...argv.slice(i));
      break;
    }
    if (a.startsWith('--')) {
      let [k, v] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
      if (v === undefined) {
        if (BOOL.has(k)) v = 'true';
        // An unknown flag takes no value (it would swallow the next word, or end as "needs a
        // value"): run() names it as unknown, with the flag it was probably meant to be.
        else if (!KNOWN.has(k)) v = '';
        else {
          v = argv[++i];
          if (v === undefined) throw new CliError(`--${k} needs a value (or is not a shoal flag: "shoal help" lists the commands and their flags)`, 2);
        }
      }
      p.flags.set(k, [...(p.flags.get(k) ?? []), v]);
    } else if (a === '-q') p.flags.set('quiet', ['true']);
    else if (a === '-f' || a === '-o') {
      // apply/diff -f FILE (or - for standard input), get -o yaml|json
      const v = argv[++i];
      if (v === undefined) throw new CliError(`${a} needs a value (${a === '-f' ? 'a manifest FILE, DIR or - for standard input' : 'yaml or json'})`, 2);
      const k = a === '-f' ? 'file' : 'output';
      p.flags.set(k, [...(p.flags.get(k) ?? []), v]);
    }
    else p.args.push(a);
  }
  return p;
}

/**
 * `unknown flag "--replica": did you mean "--replicas"?` and where the flags are listed: the
 * command's own help when the line names a command (all ~90 flags inline would bury the answer).
 */
function unknownFlag(flag: string, args: string[]): string {
  const near = closest(`--${flag}`, [...KNOWN].map((x) => `--${x}`));
  const cmd = commandNames().includes(args[0] ?? '') ? [args[0]!, ...(subcommandsOf(args[0]!)?.includes(args[1] ?? '') ? [args[1]!] : [])] : [];
  const where = cmd.length ? `"shoal ${cmd.join(' ')} --help" lists its flags` : '"shoal help" lists the commands and their flags';
  return `unknown flag ${JSON.stringify(`--${flag}`)}${near ? `: did you mean ${JSON.stringify(near)}?` : ''}\n(${where})`;
}

/**
 * How to join, without putting the token on a command line (where `ps` shows it to every user):
 * the token in a file or in the environment of the new node.
 */
function joinHelp(role: string, token: string, addr: string): string {
  return `To add a ${role} to this cluster, put this token in a file on the new node (readable by root only):\n\n    ${token}\n\nand run there:\n\n    shoal join --token-file TOKEN_FILE ${addr}\n\n(or: SHOAL_JOIN_TOKEN=<token> shoal join ${addr}; or without the address, when the managers are on\nthe DHT: shoal join --token-file TOKEN_FILE)\n`;
}

/**
 * `shoal --version`: the version and where this `shoal` runs from (`npm link` makes the one on
 * the PATH point into whichever clone ran scripts/setup.sh last: this says which).
 */
function versionLine(): string {
  const root = dirname(protoDir()); // the checkout: where package.json and proto/ are
  let version = '?';
  try {
    version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    /* a copy without its package.json */
  }
  return `shoal ${version} (${root})\n`;
}

/** "90d", "2160h", "30m", "45s" -> seconds. */
function duration(s: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(s);
  if (!m) throw new CliError(`--cert-expiry must be a number with s, m, h or d (e.g. 2160h), got ${JSON.stringify(s)}`, 2);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

async function run(argv: string[]): Promise<string> {
  if (argv[0] === 'lab') {
    const code = await labMain(argv.slice(1));
    if (code !== 0) throw new CliError('', code);
    return '';
  }
  const p = parse(argv);
  const one = (k: string) => p.flags.get(k)?.at(-1);
  if (p.flags.has('version')) return versionLine();
  // Help needs no cluster: `shoal help [CMD [SUB]]` and `shoal CMD [SUB] --help` first (asked
  // for, whatever else is on the line); then a flag we do not know is an error, named with the
  // nearest known flag; then `shoal` or `shoal node` alone is help too.
  const asked = p.args[0] === 'help' ? p.args.slice(1) : p.flags.has('help') ? p.args.slice(0, 2) : undefined;
  if (!asked) {
    for (const k of p.flags.keys()) {
      if (!KNOWN.has(k)) throw new CliError(unknownFlag(k, p.args), 2);
    }
  }
  const helpPath = asked ?? (p.args.length === 0 ? [] : p.args.length === 1 && subcommandsOf(p.args[0]!) ? p.args : undefined);
  if (helpPath) {
    if (helpPath.length === 0) return overview(versionLine().split(' ')[1]!);
    const h = helpFor(helpPath);
    if (h.unknown) throw new CliError(`${h.unknown}\n(shoal help lists the commands)`, 2);
    return h.text!;
  }
  const t: Target = p.flags.has('lab') ? await labTarget(one('lab-dir')) : { stateDir: one('state-dir') ?? process.env.SHOAL_STATE_DIR ?? '/var/lib/shoal', host: one('host') ?? process.env.SHOAL_HOST };
  const format = one('format') ?? 'table';
  if (format !== 'table' && format !== 'json') throw new CliError(`--format must be table or json, got ${format}`, 2);
  const json = format === 'json';
  const out = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  const [cmd, sub, ...rest] = p.args;

  switch (cmd) {
    case 'init': {
      const exp = one('cert-expiry');
      const seconds = exp ? duration(exp) : 0;
      const r = await call(localClient(t), 'Init', { cert_expiry_seconds: seconds });
      if (json) return out({ nodeId: r.node_id, clusterId: r.cluster_id, addr: r.addr, workerToken: r.worker_token, managerToken: r.manager_token });
      return `Cluster ${r.cluster_id} initialized: this node (${r.node_id}) is now a manager.\n\n${joinHelp('worker', r.worker_token, r.addr)}\nTo add a manager, run "shoal join-token manager" and follow the instructions.\n`;
    }
    case 'join': {
      const addr = sub;
      let input;
      try {
        input = readJoinToken({ flag: one('token'), file: one('token-file'), env: process.env });
      } catch (e) {
        if (e instanceof TokenInputError) throw new CliError(e.message, 2);
        throw e;
      }
      if (!input) throw new CliError(`usage: shoal join (--token-file F | --token TOKEN) [MANAGER:PORT], or with the token in $${TOKEN_ENV}; without MANAGER:PORT the local shoald finds a manager on the DHT`, 2);
      if (rest.length > 0) throw new CliError(`shoal join takes one MANAGER:PORT, got also ${rest.join(' ')}`, 2);
      if (input.warning) process.stderr.write(`shoal: warning: ${input.warning}\n`);
      // Without an address the daemon looks the token's topic up on the DHT (node/discovery).
      if (!addr && !json) process.stderr.write('shoal: no manager address given: looking one up on the DHT with the token (up to ~40 s)...\n');
      // To the daemon over its local socket: the token never appears on a command line there.
      const r = await call(localClient(t), 'Join', { addr: addr ?? '', token: input.token }, 120_000);
      if (json) return out({ nodeId: r.node_id, role: r.role, clusterId: r.cluster_id });
      return `This node joined cluster ${r.cluster_id} as a ${r.role} (node ${r.node_id})${addr ? '' : ', through a manager found on the DHT'}.\n`;
    }
    case 'leave': {
      await call(localClient(t), 'Leave', { force: one('force') === 'true' });
      return json ? out({ left: true }) : 'Node left the cluster.\n';
    }
    case 'join-token': {
      if (sub !== 'worker' && sub !== 'manager') throw new CliError('usage: shoal join-token worker|manager [--rotate] [--quiet]', 2);
      const rotate = one('rotate') === 'true';
      const r = await call(controlClient(t), 'GetJoinTokens', { rotate_worker: rotate && sub === 'worker', rotate_manager: rotate && sub === 'manager' });
      const token = sub === 'worker' ? r.worker : r.manager;
      const addr = r.manager_addrs?.[0] ?? 'MANAGER:PORT';
      if (json) return out({ role: sub, token, addrs: r.manager_addrs });
      if (one('quiet') === 'true') return token + '\n';
      return `${rotate ? `Rotated the ${sub} join token.\n` : ''}${joinHelp(sub, token, addr)}`;
    }
    case 'cluster': {
      if (sub === 'backup') return backup(t, rest, json, out);
      if (sub === 'update') return clusterUpdate(t, flags(p), json);
      if (sub !== 'inspect') throw new CliError(`${unknownWord('cluster command', sub ?? '', subcommandsOf('cluster')!)}\n(shoal cluster --help)`, 2);
      const c = await call(controlClient(t), 'GetCluster', {});
      const v = {
        id: c.id,
        leader: { nodeId: c.leader_node_id, hostname: c.leader_hostname, raftId: Number(c.leader_raft_id) },
        raft: { term: Number(c.term), commit: Number(c.commit), applied: Number(c.applied) },
        // lag: entries the leader has committed that this manager is not known to hold yet.
        managers: (c.managers ?? []).map((m: any) => ({ nodeId: m.node_id, hostname: m.hostname, raftId: Number(m.raft_id), addr: m.addr, voter: m.voter, leader: m.leader, reachability: m.reachability, match: Number(m.match), lag: Math.max(0, Number(c.commit) - Number(m.match)) })),
        services: Number(c.service_count ?? 0),
        tasks: numbers(c.tasks_by_state),
        members: numbers(c.members_by_state),
        nodes: Number(c.node_count),
        caDigest: c.ca_digest,
        autolock: !!c.autolock,
        certValidityHours: Number(c.cert_validity_hours),
        certValiditySeconds: Number(c.cert_validity_seconds),
        answeredBy: c.answered_by,
      };
      if (json) return out(v);
      return `Cluster ${v.id}\nLeader: ${v.leader.hostname || '?'} (${v.leader.nodeId}, raft ${v.leader.raftId})\nRaft: term ${v.raft.term}, commit ${v.raft.commit}, applied ${v.raft.applied} (on ${v.answeredBy})\nNodes: ${v.nodes} (${counts(v.members)})\nServices: ${v.services}, tasks: ${counts(v.tasks)}\nCA digest: ${v.caDigest}\nAutolock: ${v.autolock ? 'on' : 'off'}\nCertificates: ${v.certValiditySeconds % 3600 === 0 ? `${v.certValidityHours} h` : `${v.certValiditySeconds} s`}\n\n` +
        table(['MANAGER', 'HOSTNAME', 'RAFT ID', 'RAFT ADDR', 'VOTER', 'LEADER', 'REACHABILITY', 'MATCH', 'LAG'], v.managers.map((m: any) => [m.nodeId, m.hostname, String(m.raftId), m.addr, m.voter ? 'yes' : 'learner', m.leader ? 'yes' : '', m.reachability, String(m.match), String(m.lag)]));
    }
    case 'unlock':
      return unlock(t, flags(p));
    case 'unlock-key':
      return unlockKey(t, flags(p), json);
    case 'node':
      return node(t, sub, rest, p, json, out);
    case 'service':
      return serviceCommand(t, sub, rest, flags(p), json);
    case 'task':
      return taskCommand(t, sub, rest, flags(p), json);
    case 'secret':
    case 'config':
      return fileCommand(t, cmd, sub, rest, flags(p), json);
    case 'network':
      return networkCommand(t, sub, rest, flags(p), json);
    case 'volume':
      return volumeCommand(t, sub, rest, flags(p), json);
    case 'volume-class':
      return volumeClassCommand(t, sub, rest, flags(p), json);
    case 'apply':
      return applyCommand(t, flags(p), json);
    case 'diff':
      return diffCommand(t, flags(p), json);
    case 'get':
      return getCommand(t, sub, rest, flags(p));
    case 'events':
      // In the lab, a lost manager is replaced by whichever lab manager runs now.
      return eventsCommand(t, flags(p), json, p.flags.has('lab') ? () => labTarget(one('lab-dir')) : undefined);
    default:
      throw new CliError(`${unknownWord('command', cmd ?? '', commandNames())}\n(shoal help lists the commands)`, 2);
  }
}

/** `running 4, failed 1` from a map of counts (`none` when empty). */
function counts(m: Record<string, number>): string {
  const e = Object.entries(m).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  return e.length ? e.map(([k, n]) => `${k} ${n}`).join(', ') : 'none';
}

/** `shoal cluster backup FILE`: the store at one raft index, written atomically (tmp, fsync, rename). */
async function backup(t: Target, rest: string[], json: boolean, out: (v: unknown) => string): Promise<string> {
  const file = rest[0];
  if (!file || rest.length > 1) throw new CliError('usage: shoal cluster backup FILE', 2);
  const c = controlClient(t);
  const parts: Buffer[] = [];
  let head: { cluster_id: string; index: number; term: number; total_bytes: number } | undefined;
  await new Promise<void>((resolve, reject) => {
    const s = c.BackupCluster({});
    s.on('data', (m: any) => {
      head ??= m;
      parts.push(Buffer.from(m.data));
    });
    s.on('end', () => resolve());
    s.on('error', (e: any) => reject(new CliError(e.details || e.message)));
  });
  const data = Buffer.concat(parts);
  if (!head || data.length !== Number(head.total_bytes)) throw new CliError(`the backup arrived incomplete (${data.length} of ${head?.total_bytes ?? '?'} bytes); nothing was written`);
  const buf = encodeBackup({ clusterId: head.cluster_id, index: Number(head.index), term: Number(head.term), createdAt: new Date().toISOString() }, data);
  writeAtomically(file, buf);
  const info = { file: resolve(file), clusterId: head.cluster_id, index: Number(head.index), bytes: buf.length };
  if (json) return out(info);
  return `Backup of cluster ${info.clusterId} at raft index ${info.index} written to ${info.file} (${info.bytes} bytes).\nRestore it with: shoald --state-dir DIR --restore ${info.file} (DIR: a manager's state dir of this cluster)\n`;
}

function writeAtomically(file: string, data: Buffer): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const d = openSync(dirname(resolve(file)), 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}

function flags(p: Parsed): Flags {
  return { one: (k) => p.flags.get(k)?.at(-1), all: (k) => p.flags.get(k) ?? [], has: (k) => p.flags.has(k) && p.flags.get(k)!.at(-1) !== 'false' };
}

async function node(t: Target, sub: string | undefined, rest: string[], p: Parsed, json: boolean, out: (v: unknown) => string): Promise<string> {
  // Connect only once the arguments are known to be valid.
  let cl: ReturnType<typeof controlClient> | undefined;
  const c = () => (cl ??= controlClient(t));
  const need = () => {
    if (rest.length === 0) throw new CliError(`usage: shoal node ${sub} NODE...`, 2);
    return rest;
  };
  switch (sub) {
    case 'ls': {
      const r = await call(c(), 'ListNodes', {});
      const nodes = (r.nodes ?? []).map(nodeJson);
      if (json) return out(nodes);
      return table(['ID', 'HOSTNAME', 'ROLE', 'STATUS', 'AVAILABILITY', 'MANAGER STATUS', 'ADDR'], nodes.map((n: any) => [n.id, n.hostname, n.role + (n.desiredRole !== n.role ? `->${n.desiredRole}` : ''), n.status, n.availability, managerStatusCell(n.managerStatus), n.addr]));
    }
    case 'inspect': {
      const list = [];
      for (const id of need()) list.push(nodeJson(await call(c(), 'GetNode', { id })));
      return out(list.length === 1 && !json ? list[0] : list);
    }
    case 'promote':
    case 'demote': {
      const done = [];
      for (const id of need()) {
        const n = nodeJson(await call(c(), sub === 'promote' ? 'PromoteNode' : 'DemoteNode', { id }, 90_000));
        done.push(n);
      }
      if (json) return out(done);
      return done.map((n) => {
        if (sub === 'promote' && !n.managerStatus?.voter) {
          return `Node ${n.hostname} (${n.id}) promoted to manager; it is ${n.managerStatus ? 'still catching up (a raft learner)' : 'not in raft yet (is it running?)'}: "shoal cluster inspect" shows when it becomes a voter.\n`;
        }
        return `Node ${n.hostname} (${n.id}) ${sub}d to ${sub === 'promote' ? 'manager' : 'worker'}.\n`;
      }).join('');
    }
    case 'rm': {
      const force = p.flags.get('force')?.at(-1) === 'true';
      for (const id of need()) await call(c(), 'RemoveNode', { id, force });
      return json ? out({ removed: rest }) : rest.map((id) => `Removed ${id}.\n`).join('');
    }
    case 'update': {
      const id = need()[0]!;
      const label_add: Record<string, string> = {};
      for (const kv of p.flags.get('label-add') ?? []) {
        const i = kv.indexOf('=');
        if (i <= 0) throw new CliError(`--label-add needs key=value, got ${JSON.stringify(kv)}`, 2);
        label_add[kv.slice(0, i)] = kv.slice(i + 1);
      }
      const req = { id, availability: p.flags.get('availability')?.at(-1) ?? '', label_add, label_rm: p.flags.get('label-rm') ?? [] };
      if (!req.availability && Object.keys(label_add).length === 0 && req.label_rm.length === 0) throw new CliError('node update: give --availability, --label-add or --label-rm', 2);
      const n = nodeJson(await call(c(), 'UpdateNode', req));
      return json ? out(n) : `Updated ${n.hostname} (${n.id}).\n`;
    }
    default:
      throw new CliError(`${unknownWord('node command', sub ?? '', subcommandsOf('node')!)}\n(shoal node --help)`, 2);
  }
}

run(process.argv.slice(2)).then(
  (s) => {
    process.stdout.write(s);
    process.exit(0);
  },
  (e) => {
    if ((e as Error).message) process.stderr.write(`shoal: ${(e as Error).message}\n`);
    process.exit(e instanceof CliError ? e.exitCode : 1);
  },
);

/** The MANAGER STATUS column, as `docker node ls` shows it. */
function managerStatusCell(m: { leader: boolean; voter: boolean; reachability: string; locked?: boolean } | undefined): string {
  if (!m) return '';
  if (m.leader) return 'Leader';
  if (m.locked) return 'Locked (run shoal unlock on it)';
  if (!m.voter) return 'Learner';
  return m.reachability === 'reachable' ? 'Reachable' : 'Unreachable';
}
