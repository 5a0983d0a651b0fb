// A gossip member as a process, for the real-process tests and the serf
// benchmark. Prints one JSON object per line on stdout:
//   {"ev":"ready","name":..,"addr":..}   then member events {"ev":"join",..,"t":<epoch ms>}
// Reads commands on stdin, one per line:
//   join <host:port>[,<host:port>...] | leave | meta <text> | members | stats | quit
// Flags: --name N (required) --bind 127.0.0.1 --port 0 --profile lan
//        --join host:port[,..] --key <base64> --label <text> --meta <text>
//        --set knob=value (repeatable; any numeric GossipConfig field)

import { createInterface } from 'node:readline';
import { isPresetName, makeConfig, presets, type GossipConfig } from './config.js';
import { Keyring } from './keyring.js';
import { Memberlist } from './memberlist.js';

function out(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ ...obj, t: Date.now() }) + '\n');
}

function fail(msg: string): never {
  process.stderr.write(`gossip agent: ${msg}\n`);
  process.exit(2);
}

function parseFlags(argv: string[]): { flags: Map<string, string>; sets: [string, string][] } {
  const flags = new Map<string, string>();
  const sets: [string, string][] = [];
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i] as string;
    const v = argv[i + 1];
    if (!k.startsWith('--') || v === undefined) fail(`flags come in pairs like --name m1; got "${k}"`);
    if (k === '--set') {
      const eq = v.indexOf('=');
      if (eq < 0) fail(`--set wants knob=value, got "${v}"`);
      sets.push([v.slice(0, eq), v.slice(eq + 1)]);
    } else flags.set(k.slice(2), v);
  }
  return { flags, sets };
}

async function main(): Promise<void> {
  const { flags, sets } = parseFlags(process.argv.slice(2));
  const name = flags.get('name') ?? fail('--name is required');
  const profile = flags.get('profile') ?? 'lan';
  if (!isPresetName(profile)) fail(`unknown --profile "${profile}"; use ${Object.keys(presets).join(', ')}`);
  const overrides: Record<string, number | boolean | string> = { label: flags.get('label') ?? '' };
  for (const [k, v] of sets) {
    const cur = (presets[profile] as unknown as Record<string, unknown>)[k];
    if (typeof cur === 'number') {
      const n = Number(v);
      if (!Number.isFinite(n)) fail(`--set ${k}: "${v}" is not a number`);
      overrides[k] = n;
    } else if (typeof cur === 'boolean') overrides[k] = v === 'true';
    else fail(`--set: unknown config knob "${k}"`);
  }
  let config: GossipConfig;
  try {
    config = makeConfig(name, profile, overrides as Partial<GossipConfig>);
  } catch (e) {
    fail((e as Error).message);
  }
  let keyring: Keyring | undefined;
  const key = flags.get('key');
  if (key) {
    try { keyring = new Keyring([Keyring.parseKey(key)]); } catch (e) { fail((e as Error).message); }
  }
  const port = Number(flags.get('port') ?? '0');
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be 0..65535, got ${flags.get('port')}`);
  const meta = flags.get('meta');
  const ml = await Memberlist.create({
    config, bindAddr: flags.get('bind') ?? '127.0.0.1', bindPort: port,
    ...(meta ? { meta: Buffer.from(meta) } : {}),
    ...(keyring ? { keyring } : {}),
  });
  ml.on('event', (ev) => {
    out({ ev: ev.type, node: ev.name, addr: ev.addr, inc: ev.inc, meta: Buffer.from(ev.meta).toString(), ...(ev.from ? { from: ev.from } : {}) });
  });
  out({ ev: 'ready', name: ml.name, addr: ml.addr });
  const joinTo = flags.get('join');
  if (joinTo) {
    const r = await ml.join(joinTo.split(','));
    out({ ev: 'joined', contacted: r.contacted, errors: r.errors });
  }
  const quit = async (): Promise<void> => {
    await ml.shutdown();
    process.exit(0);
  };
  process.on('SIGTERM', () => void quit());
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [cmd, ...rest] = line.trim().split(/\s+/);
    const arg = rest.join(' ');
    void (async () => {
      try {
        switch (cmd) {
          case 'join': {
            const r = await ml.join(arg.split(','));
            out({ ev: 'joined', contacted: r.contacted, errors: r.errors });
            break;
          }
          case 'leave':
            await ml.leave();
            out({ ev: 'left' });
            break;
          case 'meta':
            ml.updateMeta(Buffer.from(arg));
            out({ ev: 'meta-set' });
            break;
          case 'members':
            out({ ev: 'members', members: ml.members().map((m) => ({ name: m.name, addr: m.addr, state: m.state, inc: m.inc })) });
            break;
          case 'stats':
            out({ ev: 'stats', ...ml.stats() });
            break;
          case 'quit':
            await quit();
            break;
          case '':
          case undefined:
            break;
          default:
            out({ ev: 'error', error: `unknown command "${cmd}"; use join, leave, meta, members, stats, quit` });
        }
      } catch (e) {
        out({ ev: 'error', error: (e as Error).message });
      }
    })();
  });
  rl.on('close', () => void quit());
}

main().catch((e: Error) => fail(e.message));
