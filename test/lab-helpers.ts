// Shared by the lab tests: run the lab CLI, snapshot the root namespace's network, make unique
// lab directories that are removed (with their lab) even when a test fails.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labDown } from '../lab/down.js';
import { readState } from '../lab/state.js';

const here = dirname(fileURLToPath(import.meta.url));
export const LAB_MAIN = join(here, '..', 'cli', 'lab-main.js');
export const CLI_MAIN = join(here, '..', 'cli', 'main.js');

export interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function labCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 170_000): Ran {
  const r = spawnSync(process.execPath, [LAB_MAIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: timeoutMs });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

export function sh(cmd: string[]): Ran {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** What the lab must never touch: the root namespace's links, addresses and routes. */
export interface RootNet {
  links: string[];
  addrs: string[];
  routes: string[];
}

export function rootNet(): RootNet {
  const links = (JSON.parse(sh(['ip', '-j', 'link', 'show']).stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
  const addrs = (JSON.parse(sh(['ip', '-j', 'addr', 'show']).stdout) as { ifname: string; addr_info: { local: string; prefixlen: number }[] }[])
    .flatMap((l) => l.addr_info.map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`))
    .sort();
  const routes = [...sh(['ip', 'route', 'show', 'table', 'all']).stdout.split('\n'), ...sh(['ip', '-6', 'route', 'show', 'table', 'all']).stdout.split('\n')]
    .filter((l) => l.trim() && !/\bproto (ra|dhcp)\b/.test(l) && !/expires/.test(l))
    .sort();
  return { links, addrs, routes };
}

/** A fresh lab directory for one test; its lab is torn down and the directory removed at the
 * end of the test, pass or fail. The lab's name (hence every netns name) starts with the tag and
 * this process's pid, e.g. shoal-lab-net12345-3f9a1c-manager-1. */
export function labDirFor(t: { teardown: (fn: () => unknown) => void }, tag: string): string {
  const parent = mkdtempSync(join(tmpdir(), `shoal-lab-${tag}-${process.pid}-`));
  const dir = join(parent, `${tag}${process.pid}`);
  t.teardown(async () => {
    keepLogs(dir);
    await labDown(dir).catch(() => undefined);
    rmSync(parent, { recursive: true, force: true });
  });
  return dir;
}

/**
 * SHOAL_KEEP_LAB_LOGS=DIR keeps each lab host's daemon log (DIR/<lab>-<host>.log) before the lab
 * directory is removed: what a failed lab test's managers and agents did is otherwise lost.
 */
function keepLogs(dir: string): void {
  const to = process.env.SHOAL_KEEP_LAB_LOGS;
  if (!to) return;
  try {
    mkdirSync(to, { recursive: true });
    for (const n of readState(dir)?.nodes ?? []) copyFileSync(n.logFile, join(to, `${basename(dir)}-${n.name}.log`));
  } catch (e) {
    process.stderr.write(`keeping the lab's logs in ${to} failed: ${(e as Error).message}\n`);
  }
}
