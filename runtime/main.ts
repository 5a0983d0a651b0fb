#!/usr/bin/env node
// shoal-runtime: the built-in CRI runtime on its own.
//   shoal-runtime --listen unix:///run/shoal/runtime.sock --root /var/lib/shoal/runtime
//     [--insecure-registry HOST[:PORT]]... [--pids-limit N] [--shim PATH] [--runc PATH] [--start-timeout SECONDS] [--cgroup-parent /PATH]
//     [--cni-conf-dir DIR[:DIR]]... [--cni-bin-dir DIR[:DIR]]...
import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { serveCri } from './cri-server.js';
import { DEFAULT_CNI_BIN_DIRS, DEFAULT_CNI_CONF_DIRS, Runtime } from './runtime.js';

function usage(msg: string): never {
  process.stderr.write(`shoal-runtime: ${msg}\nusage: shoal-runtime --listen unix:///PATH.sock --root DIR [--insecure-registry HOST[:PORT]]... [--pids-limit N] [--shim PATH] [--runc PATH] [--start-timeout SECONDS] [--cgroup-parent /PATH] [--cni-conf-dir DIR[:DIR]]... [--cni-bin-dir DIR[:DIR]]...\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let listen = '';
  let root = '';
  let pidsLimit = 0;
  let shim: string | undefined;
  let runcBin: string | undefined;
  let startTimeout = 60;
  let cgroupParent = '/shoal';
  const insecure: string[] = [];
  const cniConf: string[] = [];
  const cniBin: string[] = [];
  const dirs = (flag: string, v: string, into: string[]) => {
    for (const d of v.split(':')) {
      if (!d.startsWith('/')) usage(`${flag} takes absolute directories (colon-separated or repeated), got ${JSON.stringify(d)}`);
      into.push(d.replace(/\/+$/, '') || '/');
    }
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const val = () => inline ?? argv[++i] ?? usage(`${flag} needs a value`);
    switch (flag) {
      case '--listen': listen = val(); break;
      case '--root': root = val(); break;
      case '--insecure-registry': insecure.push(val()); break;
      case '--pids-limit': pidsLimit = Number(val()); if (!Number.isInteger(pidsLimit) || pidsLimit < 0) usage('--pids-limit must be a non-negative integer'); break;
      case '--shim': shim = val(); if (!shim.startsWith('/')) usage('--shim must be an absolute path to a built shoal-shim'); break;
      case '--runc': runcBin = val(); break;
      case '--start-timeout': startTimeout = Number(val()); if (!(startTimeout > 0)) usage('--start-timeout must be a positive number of seconds'); break;
      case '--cgroup-parent': cgroupParent = val(); if (!/^\/[A-Za-z0-9._/-]+$/.test(cgroupParent) || cgroupParent.includes('..')) usage('--cgroup-parent must be an absolute cgroup path like /shoal (letters, digits, . _ - /)'); break;
      case '--cni-conf-dir': dirs(flag, val(), cniConf); break;
      case '--cni-bin-dir': dirs(flag, val(), cniBin); break;
      case '-h': case '--help': usage('help');
      // eslint-disable-next-line no-fallthrough
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!listen.startsWith('unix://')) usage('--listen must be unix:///absolute/path.sock');
  const sock = listen.slice('unix://'.length);
  if (!sock.startsWith('/')) usage('--listen must be unix:///absolute/path.sock');
  if (!root || !root.startsWith('/')) usage('--root must be an absolute directory');
  if (process.getuid && process.getuid() !== 0) usage('must run as root (runc, mounts and namespaces need it)');
  const rt = new Runtime({ root, insecureRegistries: insecure, defaultPidsLimit: pidsLimit, shimBin: shim, runcBin, startTimeoutMs: startTimeout * 1000, cgroupParent: cgroupParent.replace(/\/+$/, '') || '/shoal',
    cniConfDirs: cniConf.length ? cniConf : DEFAULT_CNI_CONF_DIRS, cniBinDirs: cniBin.length ? cniBin : DEFAULT_CNI_BIN_DIRS });
  await rt.init();
  mkdirSync(dirname(sock), { recursive: true });
  const server = await serveCri(rt, sock);
  chmodSync(sock, 0o600);
  process.stderr.write(`shoal-runtime: serving CRI on ${listen}, root ${root}\n`);
  const shutdown = () => {
    // Containers keep running: their monitors outlive us and a restart finds them again.
    server.tryShutdown(() => { rt.close(); process.exit(0); });
    setTimeout(() => { rt.close(); process.exit(0); }, 3000).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((e) => {
  process.stderr.write(`shoal-runtime: ${(e as Error).message}\n`);
  process.exit(1);
});
