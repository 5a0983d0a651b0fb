// Autolock from the CLI (as `docker swarm update --autolock`, `docker swarm unlock`,
// `docker swarm unlock-key [--rotate]`). The unlock key is read from a prompt (no echo), standard
// input or a file, never from the command line, where `ps` shows it to every user.
import { readFileSync } from 'node:fs';
import { CliError, call, controlClient, localClient, type Target } from './client.js';
import type { Flags } from './service.js';

const KEEP = 'Keep it somewhere safe (a password manager): a restarted manager stays locked until\n"shoal unlock" is given this key on its host. Without it, a locked manager cannot be recovered.';

/** `shoal cluster update --autolock=true|false`. */
export async function clusterUpdate(t: Target, f: Flags, json: boolean): Promise<string> {
  const v = f.one('autolock');
  if (v === undefined) throw new CliError('usage: shoal cluster update --autolock=true|false', 2);
  if (v !== 'true' && v !== 'false') throw new CliError(`--autolock takes true or false, got ${JSON.stringify(v)}`, 2);
  const r = await call(controlClient(t), 'UpdateCluster', { autolock: v === 'true' });
  if (json) return JSON.stringify({ autolock: r.autolock, changed: r.changed, unlockKey: r.unlock_key || undefined }, null, 2) + '\n';
  if (!r.changed) return `Autolock is already ${r.autolock ? 'on ("shoal unlock-key" shows the key)' : 'off'}; nothing changed.\n`;
  if (!r.autolock) return 'Autolock is off: the managers keep their data key unsealed from now on; a restarted manager no longer needs the unlock key.\n';
  return `Autolock is on. The managers' data keys are now sealed under this unlock key:\n\n    ${r.unlock_key}\n\n${KEEP}\n`;
}

/** `shoal unlock-key [--rotate] [--quiet]`. */
export async function unlockKey(t: Target, f: Flags, json: boolean): Promise<string> {
  const rotate = f.has('rotate');
  const r = await call(controlClient(t), 'GetUnlockKey', { rotate });
  if (json) return JSON.stringify({ unlockKey: r.unlock_key, keyId: r.key_id, rotated: rotate }, null, 2) + '\n';
  if (f.has('quiet')) return r.unlock_key + '\n';
  if (rotate) return `Unlock key rotated; every running manager re-seals its data key under the new key:\n\n    ${r.unlock_key}\n\n${KEEP}\nA manager that was down during the rotation still unlocks with the previous key once; keep that one\nuntil every manager has been up since.\n`;
  return `The cluster's unlock key:\n\n    ${r.unlock_key}\n\n${KEEP}\n`;
}

/** `shoal unlock [--key-file F|-]`: the key from the file, or standard input, or a silent prompt. */
export async function unlock(t: Target, f: Flags): Promise<string> {
  const file = f.one('key-file');
  let key: string;
  if (file !== undefined && file !== '-') {
    try {
      key = readFileSync(file, 'utf8');
    } catch (e) {
      throw new CliError(`cannot read the unlock key from --key-file ${file}: ${(e as Error).message}`, 2);
    }
  } else if (file === '-' || !process.stdin.isTTY) {
    key = readFileSync(0, 'utf8');
  } else {
    key = await prompt('Unlock key (SHL-UNLOCK-1-...): ');
  }
  if (!key.trim()) throw new CliError('no unlock key was given (it looks like SHL-UNLOCK-1-...; "shoal unlock-key" on an unlocked manager shows it)', 2);
  const r = await call(localClient(t), 'Unlock', { unlock_key: key.trim() }, 60_000);
  return `Manager ${r.node_id} unlocked: its manager role is starting.\n`;
}

/** Reads one line from the terminal without echoing it. */
function prompt(q: string): Promise<string> {
  return new Promise((resolve) => {
    process.stderr.write(q);
    const stdin = process.stdin;
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    let s = '';
    const done = (v: string) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', on);
      process.stderr.write('\n');
      resolve(v);
    };
    const on = (d: string) => {
      for (const ch of d) {
        if (ch === '\r' || ch === '\n') return done(s);
        if (ch === '\u0003') {
          done('');
          process.exit(130);
        }
        if (ch === '\u007f') s = s.slice(0, -1);
        else s += ch;
      }
    };
    stdin.on('data', on);
  });
}
