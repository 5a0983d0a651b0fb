// Help for every command of `shoal`, as data: `shoal help [COMMAND [SUBCOMMAND]]`,
// `shoal COMMAND [SUBCOMMAND] --help`, and "did you mean" for a mistyped command, subcommand or
// flag. Kept apart from the parser on purpose: shoal's parser has rules the usual CLI libraries
// fight (everything after a service's image belongs to its command, flags included, as with
// `docker service create`; --lab/--host/--format anywhere), while help is just text to keep
// next to the commands it describes.

export interface Help {
  name: string;
  summary: string;
  usage: string[];
  flags?: [string, string][];
  examples?: string[];
  subcommands?: Help[];
}

const TARGET: [string, string][] = [
  ['--state-dir DIR', 'the local shoald (its DIR/shoald.sock); env SHOAL_STATE_DIR; default /var/lib/shoal'],
  ['--host HOST:PORT', "a manager over mTLS, with the identity in the state dir; env SHOAL_HOST"],
  ['--lab [--lab-dir DIR]', "the one-box lab's cluster; env SHOAL_LAB_DIR"],
  ['--format table|json', 'output of listings and inspect (default table)'],
];

const SERVICE_CREATE_FLAGS: [string, string][] = [
  ['--name NAME', 'the service name (a DNS label); required'],
  ['--replicas N', 'tasks to keep running (replicated mode; default 1)'],
  ['--mode MODE', 'replicated (default) | global | replicated-job | global-job'],
  ['--completions N / --max-concurrent N', 'a replicated job: runs to complete, and at most at a time'],
  ['--env K=V', 'environment (repeatable); --workdir DIR, --user U[:GID], --entrypoint CMD'],
  ['--label k=v', "the service's labels (repeatable)"],
  ['--constraint EXPR', 'node.id|node.hostname|node.role|node.labels.K ==|!= V (repeatable; all must hold)'],
  ['--placement-pref spread=node.labels.K', 'spread the tasks evenly over the label\'s values'],
  ['--reserve-cpu C --reserve-memory M', 'what a node must have free (0.5 or 500m; 64M, 1G)'],
  ['--limit-cpu C --limit-memory M', "cgroup limits of the main container"],
  ['--restart-condition none|on-failure|any', 'and --restart-delay 5s --restart-max-attempts N --restart-window 1m'],
  ['--stop-grace-period 10s --stop-signal SIG', 'how tasks are stopped'],
  ['--init "NAME IMAGE [CMD...]"', 'an init container, run to completion first (repeatable)'],
  ['--sidecar "NAME IMAGE [CMD...]"', 'a sidecar sharing the pod (repeatable)'],
  ['--liveness|--readiness|--startup PROBE', 'exec:CMD | http:PORT[/PATH] | tcp:PORT, with --liveness-period 5s, -timeout, -failures, -successes, -delay'],
  ['--update-parallelism N ...', 'rollout: --update-delay, -order stop-first|start-first, -failure-action pause|continue|rollback, -monitor, -max-failure-ratio (and --rollback-...)'],
  ['--secret|--config NAME[,target=PATH][,uid=N][,gid=N][,mode=0400]', 'a secret or config as a file in the main container (repeatable); update: --secret-add/--secret-rm, --config-add/--config-rm'],
  ['--network NAME', 'join a network (repeatable; none named: the default network)'],
  ['--endpoint-mode vip|dnsrr', 'SERVICE resolves to a virtual IP (default) or to the tasks\' addresses'],
  ['--publish P:T[/tcp|udp][,mode=ingress|host]', 'published port P on every node (ingress) or on nodes with a task (host) to target port T (repeatable)'],
  ['--mount type=volume,source=VOL,target=/PATH[,readonly]', 'a volume in the main container (repeatable); class=CLASS,size=1G instead of source: a volume per slot (SERVICE.SLOT-NAME); update: --mount-add/--mount-rm TARGET'],
  ['--schedule "CRON"', 'a job run at each tick (five-field cron, as Kubernetes\' CronJob): --schedule-timezone ZONE (default UTC), --schedule-concurrency allow|forbid|replace, --schedule-starting-deadline 30s, --schedule-keep-succeeded 3, --schedule-keep-failed 1, --schedule-suspend'],
  ['--detach', 'return at once instead of following the tasks until the service converges'],
  ['--timeout 2m', 'how long to follow before giving up (default 2m)'],
];

export const COMMANDS: Help[] = [
  {
    name: 'init',
    summary: 'create a cluster on the local shoald (this node becomes its first manager)',
    usage: ['shoal init [--cert-expiry 2160h]'],
    flags: [['--cert-expiry D', 'node certificates\' validity (s, m, h or d; default 90 days)']],
    examples: ['shoal init'],
  },
  {
    name: 'join',
    summary: 'join the local shoald to a cluster with a join token',
    usage: ['shoal join --token-file FILE MANAGER:PORT', 'SHOAL_JOIN_TOKEN=... shoal join MANAGER:PORT', 'shoal join --token-file FILE    (no address: the local shoald finds a manager on the DHT by the token)'],
    flags: [['--token-file FILE', 'the token from a file (- for stdin); preferred'], ['--token TOKEN', 'works, but every user sees it in ps']],
    examples: ['shoal join --token-file /root/worker.token 10.0.0.11:4242', 'shoal join --token-file /root/worker.token'],
  },
  { name: 'join-token', summary: 'print (or rotate) the join token of a role', usage: ['shoal join-token worker|manager [--rotate] [--quiet]'], examples: ['shoal join-token worker --quiet > worker.token'] },
  { name: 'unlock', summary: 'unlock a manager restarted under autolock (the key from a prompt, stdin or a file)', usage: ['shoal unlock [--key-file FILE|-]'], examples: ['shoal unlock < /root/unlock.key'] },
  { name: 'unlock-key', summary: 'print (or rotate) the cluster\'s unlock key (autolock)', usage: ['shoal unlock-key [--rotate] [--quiet]'] },
  { name: 'leave', summary: 'leave the cluster (a manager: demote it first, or --force)', usage: ['shoal leave [--force]'] },
  {
    name: 'node',
    summary: 'list and manage the cluster\'s nodes',
    usage: ['shoal node ls | inspect NODE | promote NODE... | demote NODE... | update ... NODE | rm [--force] NODE...'],
    subcommands: [
      { name: 'ls', summary: 'every node: role, status, availability, manager status', usage: ['shoal node ls [--format json]'] },
      { name: 'inspect', summary: 'one node in full: addresses, certificate, capacity and reservations, runtime', usage: ['shoal node inspect NODE...'] },
      { name: 'promote', summary: 'make a worker a manager; answers once it is a raft voter', usage: ['shoal node promote NODE...'] },
      { name: 'demote', summary: 'make a manager a worker (refused if raft would lose quorum)', usage: ['shoal node demote NODE...'] },
      { name: 'update', summary: 'availability and labels', usage: ['shoal node update [--availability active|pause|drain] [--label-add k=v]... [--label-rm k]... NODE'], examples: ['shoal node update --availability drain worker-2'] },
      { name: 'rm', summary: 'remove a node that is down (its certificates are refused from then on)', usage: ['shoal node rm [--force] NODE...'] },
    ],
  },
  {
    name: 'cluster',
    summary: 'the cluster as a whole',
    usage: ['shoal cluster inspect | backup FILE | update --autolock=true|false'],
    subcommands: [
      { name: 'update', summary: 'autolock on (prints the unlock key once) or off', usage: ['shoal cluster update --autolock=true|false'] },
      { name: 'inspect', summary: 'managers, leader, raft indexes, CA digest (the leader\'s view)', usage: ['shoal cluster inspect [--format json]'] },
      { name: 'backup', summary: 'a consistent snapshot of the whole store into FILE (restore with shoald --restore FILE)', usage: ['shoal cluster backup FILE'] },
    ],
  },
  {
    name: 'service',
    summary: 'run and change services (their tasks are pods of real containers)',
    usage: ['shoal service create|ls|ps|inspect|scale|update|rollback|history|rm|logs ...'],
    subcommands: [
      { name: 'create', summary: 'create a service and follow it until it converges', usage: ['shoal service create --name NAME [flags] IMAGE [COMMAND ARG...]'], flags: SERVICE_CREATE_FLAGS, examples: ['shoal service create --name web --replicas 6 10.99.0.2:5000/busybox:1 httpd -f -p 80 -h /www', 'shoal service create --name agent --mode global IMAGE sleep 1d'] },
      { name: 'ls', summary: 'services with their running/desired tasks', usage: ['shoal service ls [--quiet] [--format json]'] },
      { name: 'ps', summary: "a service's tasks, each slot's newest first", usage: ['shoal service ps SERVICE... [--quiet] [--format json]'] },
      { name: 'inspect', summary: 'a service in full: spec with defaults, update status, revision', usage: ['shoal service inspect SERVICE...'] },
      { name: 'scale', summary: 'set the replicas of replicated services', usage: ['shoal service scale SERVICE=N... (or SERVICE N)'], examples: ['shoal service scale web=2'] },
      { name: 'update', summary: 'change a service; a new template rolls out batch by batch', usage: ['shoal service update [--image I] [--args "..."] [--env-add K=V] [--env-rm K] [--replicas N] [--network-add/-rm NAME] [--publish-add P:T[/udp][,mode=host]] [--publish-rm P[/udp]] [--endpoint-mode M] [--force] [create\'s flags] SERVICE'], examples: ['shoal service update --image reg:5000/app:2 --update-parallelism 2 web'] },
      { name: 'rollback', summary: 'go back to the previous revision (or any kept one)', usage: ['shoal service rollback SERVICE [--to-revision N]'] },
      { name: 'history', summary: 'the kept revisions and what changed in each', usage: ['shoal service history SERVICE'] },
      { name: 'rm', summary: 'remove services; their tasks stop', usage: ['shoal service rm SERVICE...'] },
      { name: 'logs', summary: "the output of a service's containers, from their nodes", usage: ['shoal service logs SERVICE [--follow] [--tail N] [--timestamps]'] },
    ],
  },
  {
    name: 'task',
    summary: 'tasks across services',
    usage: ['shoal task ls [--service S] [--node N] | inspect TASK | logs TASK'],
    subcommands: [
      { name: 'ls', summary: 'tasks, filtered by service or node', usage: ['shoal task ls [--service S] [--node N]'] },
      { name: 'inspect', summary: 'one task in full', usage: ['shoal task inspect TASK...'] },
      { name: 'logs', summary: "a task's container output", usage: ['shoal task logs TASK... [--follow] [--tail N] [--timestamps]'] },
    ],
  },
  {
    name: 'secret',
    summary: 'secrets: files for services, kept in the managers, sealed at rest, sent only to nodes that run a task using them',
    usage: ['shoal secret create [--label k=v] NAME FILE|- | ls | inspect NAME... | rm NAME...'],
    subcommands: [
      { name: 'create', summary: 'create a secret from FILE (- for stdin); a secret never changes, create a new one', usage: ['shoal secret create [--label k=v] NAME FILE|-'], examples: ['shoal secret create db-password ./password.txt'] },
      { name: 'ls', summary: 'secrets with their size and the services using them', usage: ['shoal secret ls [--format json]'] },
      { name: 'inspect', summary: 'a secret\'s metadata (its data is never shown)', usage: ['shoal secret inspect NAME...'] },
      { name: 'rm', summary: 'remove secrets (refused while a service uses them)', usage: ['shoal secret rm NAME...'] },
    ],
  },
  {
    name: 'volume',
    summary: 'persistent volumes through CSI: provisioned, attached where their task runs, and moved with it',
    usage: ['shoal volume create NAME [--size 1G] | ls | inspect VOLUME... | rm VOLUME... | snapshot VOLUME [NAME] | expand VOLUME --size SIZE'],
    subcommands: [
      { name: 'create', summary: 'create a volume and wait until its driver provisioned it', usage: ['shoal volume create NAME [--size 1G] [--driver NAME | --class NAME] [--access single-node-writer|single-node-reader-only|multi-node-reader-only] [--param k=v]... [--from-snapshot VOLUME@SNAPSHOT] [--label k=v]... [--detach]'], examples: ['shoal volume create data --size 1G', 'shoal service create --name db --mount type=volume,source=data,target=/data IMAGE'] },
      { name: 'ls', summary: 'volumes: size, access, state, where attached and which tasks use them', usage: ['shoal volume ls [--quiet] [--format json]'] },
      { name: 'inspect', summary: 'a volume in full: its CSI id, topology, attachments, waits, snapshots', usage: ['shoal volume inspect VOLUME...'] },
      { name: 'rm', summary: 'remove volumes and their data (refused while a task or a service uses them, naming them)', usage: ['shoal volume rm VOLUME...'] },
      { name: 'snapshot', summary: 'a copy of the volume taken through its driver', usage: ['shoal volume snapshot VOLUME [NAME]'] },
      { name: 'expand', summary: 'grow a volume (never shrinks)', usage: ['shoal volume expand VOLUME --size SIZE'] },
    ],
  },
  {
    name: 'volume-class',
    summary: 'volume classes: a driver and parameters for volumes made per slot (--mount class=CLASS,size=SIZE)',
    usage: ['shoal volume-class create NAME [--driver D] [--param k=v]... [--reclaim delete|retain] [--access MODE] | ls | inspect CLASS... | rm CLASS...'],
    subcommands: [
      { name: 'create', summary: 'create a class', usage: ['shoal volume-class create NAME [--driver D] [--param k=v]... [--reclaim delete|retain] [--access MODE]'] },
      { name: 'ls', summary: 'classes with their volumes and services', usage: ['shoal volume-class ls [--format json]'] },
      { name: 'inspect', summary: 'a class in full', usage: ['shoal volume-class inspect CLASS...'] },
      { name: 'rm', summary: 'remove classes (refused while used)', usage: ['shoal volume-class rm CLASS...'] },
    ],
  },
  {
    name: 'config',
    summary: 'configs: files for services, kept in the managers',
    usage: ['shoal config create [--label k=v] NAME FILE|- | ls | inspect NAME... | rm NAME...'],
    subcommands: [
      { name: 'create', summary: 'create a config from FILE (- for stdin); a config never changes, create a new one', usage: ['shoal config create [--label k=v] NAME FILE|-'], examples: ['shoal config create db-conf ./db.conf'] },
      { name: 'ls', summary: 'configs with their size and the services using them', usage: ['shoal config ls [--format json]'] },
      { name: 'inspect', summary: 'a config\'s metadata', usage: ['shoal config inspect NAME...'] },
      { name: 'rm', summary: 'remove configs (refused while a service uses them)', usage: ['shoal config rm NAME...'] },
    ],
  },
  {
    name: 'network',
    summary: 'overlay networks that services join (VXLAN between nodes, a VIP and DNS name per service)',
    usage: ['shoal network create|ls|inspect|rm ...'],
    subcommands: [
      { name: 'create', summary: 'a network; its subnet is split into a /24 per node', usage: ['shoal network create [--subnet CIDR] [--internal] [--label k=v]... NAME'], flags: [['--subnet CIDR', 'inside 10.0.0.0/8, overlapping no other network (default: the next free /16)'], ['--internal', 'no way out of the cluster'], ['--label k=v', "the network's labels (repeatable)"]], examples: ['shoal network create --subnet 10.20.0.0/16 backend', 'shoal service create --name api --network backend IMAGE'] },
      { name: 'ls', summary: 'networks with their subnet, VNI, nodes and services', usage: ['shoal network ls [--quiet] [--format json]'] },
      { name: 'inspect', summary: 'a network in full: per-node subnets, services, addresses in use', usage: ['shoal network inspect NETWORK...'] },
      { name: 'rm', summary: 'remove networks (refused while a service uses one)', usage: ['shoal network rm NETWORK...'] },
    ],
  },
  {
    name: 'apply',
    summary: 'make the cluster match a manifest of services, secrets and configs (declarative; a second apply changes nothing)',
    usage: ['shoal apply -f FILE|DIR|- [--prune] [--detach] [--timeout 5m]'],
    flags: [
      ['-f, --file FILE|DIR|-', 'the manifest: a YAML file, a directory of *.yaml/*.yml, or - for standard input'],
      ['--prune', "remove the stack's services, secrets and configs the manifest no longer declares (only those labelled io.shoal.stack=STACK; a secret or config still in use is kept)"],
      ['--detach', 'return once written instead of following the changed services until they converge'],
      ['--timeout 5m', 'how long to follow before giving up'],
    ],
    examples: ['shoal apply -f examples/shop.yaml', 'shoal get service --stack shop -o yaml | shoal apply -f - --prune'],
  },
  {
    name: 'diff',
    summary: 'what apply would change, as a unified diff of the manifest against the cluster (nothing is written)',
    usage: ['shoal diff -f FILE|DIR|- [--prune]'],
    flags: [['-f, --file FILE|DIR|-', 'the manifest, as for apply'], ['--prune', 'also show what apply --prune would remove']],
    examples: ['shoal diff -f examples/shop.yaml --prune'],
  },
  {
    name: 'get',
    summary: 'objects as a manifest that apply -f accepts unchanged',
    usage: ['shoal get service [NAME...] [--stack S] [-o yaml|json]'],
    subcommands: [
      { name: 'service', summary: 'services as a manifest (all, the named ones, or one stack\'s)', usage: ['shoal get service [NAME...] [--stack S] [-o yaml|json]'], flags: [['-o, --output yaml|json', 'the format (default yaml)'], ['--stack S', "only the services of stack S (labelled io.shoal.stack=S)"]], examples: ['shoal get service web -o yaml > web.yaml'] },
    ],
  },
  {
    name: 'events',
    summary: 'what happened in the cluster (services, tasks, nodes, leaders, scheduled runs); --follow resumes on another manager',
    usage: ['shoal events [--since 10m|TIME] [--filter type=service|task|node|cluster] [--filter name=N] [--follow]'],
    flags: [
      ['--since 10m|TIME', 'the kept events from that long ago (or an ISO time) on'],
      ['--filter type=T | name=N', 'only events of that type or object name (repeatable)'],
      ['--follow', 'keep streaming; a lost manager is replaced by another, resuming after the last event seen'],
    ],
    examples: ['shoal events --since 1h --filter type=service', 'shoal events --follow --format json'],
  },
  { name: 'lab', summary: 'the one-box lab of network-namespace hosts (shoal lab --help)', usage: ['shoal lab up|down|status|exec|stop|start|logs ...'] },
  { name: 'help', summary: 'this help, or a command\'s', usage: ['shoal help [COMMAND [SUBCOMMAND]]', 'shoal COMMAND [SUBCOMMAND] --help'] },
];

function render(h: Help, path: string): string {
  const lines = [`shoal ${path}: ${h.summary}`, '', 'Usage:', ...h.usage.map((u) => `  ${u}`)];
  if (h.subcommands?.length) {
    lines.push('', 'Commands:');
    const w = Math.max(...h.subcommands.map((s) => s.name.length));
    for (const s of h.subcommands) lines.push(`  ${s.name.padEnd(w)}   ${s.summary}`);
  }
  const flags = [...(h.flags ?? []), ...TARGET];
  lines.push('', 'Flags:');
  const w = Math.max(...flags.map(([f]) => f.length));
  for (const [f, d] of flags) lines.push(`  ${f.padEnd(w)}   ${d}`);
  if (h.examples?.length) lines.push('', 'Examples:', ...h.examples.map((e) => `  ${e}`));
  if (h.subcommands?.length) lines.push('', `"shoal ${path} COMMAND --help" for a command's own flags.`);
  return lines.join('\n') + '\n';
}

export function overview(version: string): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `shoal ${version}: the CLI of a shoal cluster (manager-only commands go to a manager)`,
    '',
    'Usage: shoal [--state-dir DIR | --host HOST:PORT | --lab] [--format table|json] COMMAND ...',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}   ${c.summary}`),
    '',
    '"shoal help COMMAND" or "shoal COMMAND --help" for a command\'s usage, flags and examples.',
    '',
  ].join('\n');
}

/** The help for `shoal help PATH...`; undefined (with a suggestion) if PATH names nothing. */
export function helpFor(path: string[]): { text?: string; unknown?: string } {
  const top = COMMANDS.find((c) => c.name === path[0]);
  if (!top) return { unknown: unknownWord('command', path[0] ?? '', COMMANDS.map((c) => c.name)) };
  if (path.length < 2 || !top.subcommands) return { text: render(top, top.name) };
  const sub = top.subcommands.find((s) => s.name === path[1]);
  if (!sub) return { unknown: unknownWord(`${top.name} command`, path[1]!, top.subcommands.map((s) => s.name)) };
  return { text: render(sub, `${top.name} ${sub.name}`) };
}

export function subcommandsOf(cmd: string): string[] | undefined {
  return COMMANDS.find((c) => c.name === cmd)?.subcommands?.map((s) => s.name);
}

export function commandNames(): string[] {
  return COMMANDS.map((c) => c.name);
}

/** `unknown command "nod": did you mean "node"?` (or the list, when nothing is close). */
export function unknownWord(what: string, word: string, candidates: string[]): string {
  const near = closest(word, candidates);
  return near ? `unknown ${what} ${JSON.stringify(word)}: did you mean ${JSON.stringify(near)}?` : `unknown ${what} ${JSON.stringify(word)}: use one of ${candidates.join(', ')}`;
}

/** The candidate within an edit distance of 2 (or a prefix match), if exactly one is best. */
export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = c.startsWith(word) && word.length >= 2 ? 1 : distance(word, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return bestD <= 2 ? best : undefined;
}

function distance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      dp[i]![j] = Math.min(dp[i - 1]![j]! + 1, dp[i]![j - 1]! + 1, dp[i - 1]![j - 1]! + cost);
      // A swap of two neighbours counts as one edit (Damerau).
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) dp[i]![j] = Math.min(dp[i]![j]!, dp[i - 2]![j - 2]! + 1);
    }
  }
  return dp[a.length]![b.length]!;
}
