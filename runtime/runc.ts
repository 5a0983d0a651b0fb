// Thin wrapper over the runc command line, always with our own state root.
import { runCommand } from './run-command.js';

export class Runc {
  constructor(readonly root: string, readonly bin = 'runc') {}

  args(...a: string[]): string[] {
    return ['--root', this.root, ...a];
  }

  async state(id: string): Promise<{ status: string; pid: number } | undefined> {
    const r = await runCommand(this.bin, this.args('state', id), { allowFail: true });
    if (r.code !== 0) return undefined;
    return JSON.parse(r.stdout) as { status: string; pid: number };
  }

  /** Sends a signal; a container that is not running any more is not an error. */
  async kill(id: string, signal: string, all = false): Promise<void> {
    const r = await runCommand(this.bin, this.args('kill', ...(all ? ['--all'] : []), id, signal), { allowFail: true });
    if (r.code !== 0 && !/not running|does not exist|process already finished|container not running/i.test(r.stderr)) {
      throw new Error(`runc kill ${id} ${signal} failed: ${r.stderr.trim()}`);
    }
  }

  async delete(id: string): Promise<void> {
    const r = await runCommand(this.bin, this.args('delete', '--force', id), { allowFail: true });
    if (r.code !== 0 && !/does not exist/i.test(r.stderr)) throw new Error(`runc delete ${id} failed: ${r.stderr.trim()}`);
  }
}
