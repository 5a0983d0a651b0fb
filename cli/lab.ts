// `shoal lab ...`: the one-box lab. Parses the subcommand and its flags and calls lab/.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { labDown } from '../lab/down.js';
import { DEFAULT_LAB_DIR, labName } from '../lab/names.js';
import { labNetnsList } from '../lab/netns.js';
import { STATE_FILE } from '../lab/state.js';
import { LAB_DIR_ENV, labExec, labStart, labStatus, labStop, labTarget as findLabTarget, loadLab, type LabTarget } from '../lab/ops.js';
import { findNode } from '../lab/plan.js';
import { cli, logTail } from '../lab/shoald.js';
import { DEMO_PORT, DEMO_SERVICE, LabPreflightError, labUp } from '../lab/up.js';
import { withLock } from '../node/state-lock.js';
import { LAB_IMAGE } from '../lab/registry.js';
import { formatLogLine } from '../proto/log.js';

export const LAB_USAGE = `usage:
  shoal lab up [--managers N] [--workers N] [--demo N] [--discovery address|dht] [--lab-dir DIR]
                                                              create the lab, its registry and cluster (default 3 managers,
                                                              2 workers) and a demo service of N replicas (default 2 per
                                                              worker; --demo 0: none); --discovery dht: the lab runs its own
                                                              DHT and the other nodes join with the token only
  shoal lab down [--lab-dir DIR]                              remove every process, namespace and file of the lab
  shoal lab status [--lab-dir DIR] [--format json]            the lab's hosts, addresses and daemons
  shoal lab exec NODE [--lab-dir DIR] -- CMD [ARG...]         run CMD on a lab host (e.g. shoal lab exec worker-1 -- ip addr)
  shoal lab stop NODE [--signal TERM|KILL] [--lab-dir DIR]    stop a node's shoald (KILL simulates a crash)
  shoal lab start NODE [--lab-dir DIR]                        start a stopped node's shoald again
  shoal lab logs NODE [--lines N] [--format json] [--lab-dir DIR] the last lines of a node's shoald log (json: as written)
The lab directory defaults to $${LAB_DIR_ENV} or ${DEFAULT_LAB_DIR}. Target the lab's cluster with \`shoal --lab COMMAND\`.`;

export class UsageError extends Error {}

interface Parsed {
  cmd: string;
  positional: string[];
  rest: string[];
  flags: Map<string, string>;
}

const VALUE_FLAGS = new Set(['--managers', '--workers', '--lab-dir', '--format', '--signal', '--lines', '--demo', '--discovery']);

function parse(argv: string[]): Parsed {
  const [cmd, ...args] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') throw new UsageError('');
  const p: Parsed = { cmd, positional: [], rest: [], flags: new Map() };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      p.rest = args.slice(i + 1);
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(0, eq) : a;
      if (!VALUE_FLAGS.has(name)) throw new UsageError(`unknown flag ${name} for \`shoal lab ${cmd}\``);
      const value = eq > 0 ? a.slice(eq + 1) : args[++i];
      if (value === undefined) throw new UsageError(`${name} needs a value`);
      p.flags.set(name, value);
    } else if (cmd === 'exec' && p.positional.length === 1) {
      // `lab exec NODE CMD...` without `--`: the rest is the command, flags included.
      p.rest = args.slice(i);
      break;
    } else {
      p.positional.push(a);
    }
  }
  return p;
}

function count(p: Parsed, flag: string, dflt: number): number {
  const v = p.flags.get(flag);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) throw new UsageError(`${flag} must be a whole number (got "${v}")`);
  return Number(v);
}

export function labDirFrom(flag: string | undefined): string {
  return resolve(flag ?? process.env[LAB_DIR_ENV] ?? DEFAULT_LAB_DIR);
}

/** For `shoal --lab`: the live manager the CLI should talk to (use `stateDir` as --state-dir). */
export function resolveLabTarget(labDirFlag?: string): LabTarget {
  return findLabTarget(labDirFrom(labDirFlag));
}

/** What cli/main.ts calls for `shoal --lab ...`: the lab (directory from `labDir`, else
 * $SHOAL_LAB_DIR, else the default) gives the state directory of one of its running managers;
 * the CLI then talks to that manager's local Unix socket, which any namespace can reach. */
export async function labTarget(labDir?: string): Promise<{ stateDir: string }> {
  return { stateDir: resolveLabTarget(labDir).stateDir };
}

function oneNode(p: Parsed): string {
  if (p.positional.length !== 1) throw new UsageError(`\`shoal lab ${p.cmd}\` needs exactly one NODE (got ${p.positional.length})`);
  return p.positional[0]!;
}

function noPositional(p: Parsed): void {
  if (p.positional.length > 0) throw new UsageError(`\`shoal lab ${p.cmd}\` takes no argument "${p.positional[0]}"`);
}

/** Runs `shoal lab ARGV...`; resolves to the exit status (0 ok, 1 failed, 2 usage error). */
export async function labMain(argv: string[], out = (s: string) => process.stdout.write(s + '\n'), err = (s: string) => process.stderr.write(s + '\n')): Promise<number> {
  let p: Parsed;
  try {
    p = parse(argv);
    if (!['up', 'down', 'status', 'exec', 'stop', 'start', 'logs'].includes(p.cmd)) throw new UsageError(`unknown lab command "${p.cmd}"`);
    const fmt = p.flags.get('--format');
    if (fmt !== undefined && fmt !== 'json' && fmt !== 'table') throw new UsageError(`--format must be json or table (got "${fmt}")`);
  } catch (e) {
    if (e instanceof UsageError) {
      if (e.message) err(`shoal lab: ${e.message}`);
      err(LAB_USAGE);
      return 2;
    }
    throw e;
  }
  const labDir = labDirFrom(p.flags.get('--lab-dir'));
  try {
    switch (p.cmd) {
      case 'up': {
        noPositional(p);
        const managers = count(p, '--managers', 3);
        const workers = count(p, '--workers', 2);
        const demoReplicas = p.flags.has('--demo') ? count(p, '--demo', 0) : undefined;
        const discovery = p.flags.get('--discovery') ?? 'address';
        if (discovery !== 'address' && discovery !== 'dht') throw new UsageError(`--discovery must be address or dht (got "${discovery}")`);
        const onSigint = () => {
          err(`\ninterrupted; the half-built lab stays in ${labDir}; remove it with \`shoal lab down --lab-dir ${labDir}\``);
          process.exit(130);
        };
        process.once('SIGINT', onSigint);
        try {
          const { state } = await labUp({ labDir, managers, workers, demoReplicas, discovery, log: out });
          out('');
          out((await cli(state.nodes[0]!, ['node', 'ls'])).trimEnd());
          out('');
          if (demoReplicas !== 0) {
            out(`$ shoal --lab service ps ${DEMO_SERVICE}`);
            out((await cli(state.nodes[0]!, ['service', 'ps', DEMO_SERVICE])).trimEnd());
            out('');
          }
          const dirFlag = labDir === labDirFrom(undefined) ? '' : ` --lab-dir ${labDir}`;
          const envHint = labDir === resolve(DEFAULT_LAB_DIR) ? '' : `${LAB_DIR_ENV}=${labDir} `;
          const host = state.nodes.at(-1)!.name;
          const hints: [string, string][] = [
            [`${envHint}shoal --lab node ls`, 'the cluster, from any shell'],
            [`${envHint}shoal --lab service logs ${DEMO_SERVICE}`, "the demo tasks' output, from their nodes"],
            [`${envHint}shoal --lab service create --name web --replicas 3 ${LAB_IMAGE} sleep 1d`, 'a service of your own'],
            [`${envHint}shoal --lab service create --name client ${LAB_IMAGE} sh -c 'while :; do wget -qO- http://${DEMO_SERVICE}/; sleep 5; done'`, 'a task that reaches the demo by name (see its logs)'],
            [`shoal lab exec${dirFlag} ${host} -- busybox wget -qO- http://${state.nodes[0]!.address}:${DEMO_PORT}/`, `the demo on port ${DEMO_PORT} of any node`],
            [`shoal lab exec${dirFlag} ${host} -- ip addr`, 'a command on a lab host'],
            [`shoal lab down${dirFlag}`, 'remove every process, namespace and file of the lab'],
          ];
          const w = Math.max(...hints.map(([c]) => c.length));
          out('next:');
          for (const [c, what] of hints) out(`  ${c.padEnd(w)}   # ${what}`);
        } catch (e) {
          err(`shoal lab up: ${(e as Error).message}`);
          if (!(e instanceof LabPreflightError) && (existsSync(join(labDir, STATE_FILE)) || labNetnsList(labName(labDir)).length > 0)) {
            err(`the half-built lab stays in ${labDir} for inspection; remove it with \`shoal lab down --lab-dir ${labDir}\``);
          }
          return 1;
        } finally {
          process.removeListener('SIGINT', onSigint);
        }
        return 0;
      }
      case 'down': {
        noPositional(p);
        const r = await labDown(labDir, out);
        if (r.leftovers.length > 0) {
          err(`shoal lab down: could not remove: ${r.leftovers.join(', ')}`);
          return 1;
        }
        out(`lab in ${labDir} removed (${r.killed.length} process(es) stopped, ${r.netnsRemoved.length} namespace(s) deleted${r.unmounted.length ? `, ${r.unmounted.length} mount(s) removed` : ''})`);
        return 0;
      }
      case 'status': {
        noPositional(p);
        const st = labStatus(loadLab(labDir));
        if (p.flags.get('--format') === 'json') {
          out(JSON.stringify(st, null, 2));
        } else {
          out(`lab "${st.name}" in ${st.labDir}: ${st.phase}; bridge netns ${st.bridgeNetns}, subnet ${st.subnet}`);
          out(table(['NODE', 'ROLE', 'ADDRESS', 'NETNS', 'SHOALD'], st.nodes.map((n) => [n.name, n.role, n.address, n.netnsPresent ? n.netns : `${n.netns} (missing)`, n.running ? `running (pid ${n.pid})` : 'stopped'])));
        }
        return 0;
      }
      case 'exec': {
        if (p.positional.length !== 1) throw new UsageError('`shoal lab exec` needs NODE then `--` and a command, e.g. `shoal lab exec worker-1 -- ip addr`');
        return await labExec(loadLab(labDir), p.positional[0]!, p.rest);
      }
      case 'stop': {
        const node = oneNode(p);
        const raw = (p.flags.get('--signal') ?? 'TERM').toUpperCase().replace(/^SIG/, '');
        if (raw !== 'TERM' && raw !== 'KILL') throw new UsageError(`--signal must be TERM or KILL (got "${p.flags.get('--signal')}")`);
        const r = await labStop(loadLab(labDir), node, `SIG${raw}` as NodeJS.Signals);
        out(r ? `${node}: shoald (pid ${r.pid}) stopped with SIG${raw}` : `${node}: shoald was not running`);
        return 0;
      }
      case 'logs': {
        const n = findNode(loadLab(labDir), oneNode(p));
        const lines = count(p, '--lines', 50);
        // The log holds shoald's JSON lines (it writes to a file); --format json shows them as they are.
        const tail = existsSync(n.logFile) ? logTail(n.logFile, lines).trimEnd() : '';
        out(!tail ? `(no log yet: ${n.logFile})` : p.flags.get('--format') === 'json' ? tail : tail.split('\n').map(formatLogLine).join('\n'));
        return 0;
      }
      case 'start': {
        const node = oneNode(p);
        // Load, start and record under the lab's lock: two `lab start` at once must not lose a pid.
        const n = await withLock(labDir, 'lab.lock', 'shoal lab', () => labStart(loadLab(labDir), node));
        out(`${node}: shoald started (pid ${n.proc!.pid})`);
        return 0;
      }
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`shoal lab: ${e.message}`);
      err(LAB_USAGE);
      return 2;
    }
    err(`shoal lab ${p.cmd}: ${(e as Error).message}`);
    return 1;
  }
  return 2;
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n');
}
