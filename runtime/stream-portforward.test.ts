// connectPod's relay through the shim: when the shim fails (the pod refused the connection) the
// stream's error is the shim's message, even if the client wrote after the shim had exited; an
// EPIPE from the shim's closed stdin used to win that race (seen in CI: "write EPIPE" on the
// error stream of a refused port-forward). The shim is a stand-in script that fails as the real
// one does when nothing listens (same exit status, message on stderr).
import t from 'tap';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectPod } from './stream-portforward.js';

const dir = mkdtempSync(join(tmpdir(), 'shoal-portfwd-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const shim = join(dir, 'shim');
writeFileSync(shim, '#!/bin/sh\necho "cannot connect to port $3 in the pod: Connection refused" >&2\nexit 1\n');
chmodSync(shim, 0o755);

t.test('a refused connection reports the shim\'s message, also after a write to the exited shim', async (t) => {
  const c = connectPod(shim, '/proc/self/ns/net', 9);
  let seen: Error | undefined;
  const err = new Promise<Error>((r) => c.once('error', (e: Error) => r((seen = e))));
  // Write until the shim has surely exited and its stdin is closed (or the error came).
  for (let i = 0; i < 20 && !seen; i++) {
    c.write(Buffer.alloc(64 * 1024, 1));
    await new Promise((r) => setTimeout(r, 20));
  }
  const e = await err;
  t.equal(e.message, 'cannot connect to port 9 in the pod: Connection refused');
  c.destroy();
});
