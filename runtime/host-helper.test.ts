import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostHelper, shellQuote } from './host-helper.js';

t.test('host helper shell', async (t) => {
  const h = new HostHelper();
  const dir = mkdtempSync(join(tmpdir(), `shoal-helper-${process.pid}-`));
  t.teardown(() => { h.close(); rmSync(dir, { recursive: true, force: true }); });

  t.equal(await h.run('echo hello; echo there >&2'), 'hello\nthere\n', 'stdout and stderr come back');
  const odd = join(dir, `it's a "file" $HOME \`x\``);
  await h.exec('sh', ['-c', 'printf %s "$2" > "$1"', 'sh', odd, 'a b\nc']);
  t.equal(readFileSync(odd, 'utf8'), 'a b\nc', 'arguments with quotes, spaces, $ and newlines pass unchanged');
  t.equal(shellQuote("a'b"), `'a'\\''b'`);

  const e = await h.run('echo why >&2; exit 3').catch((x: Error) => x);
  t.match((e as Error).message, /exit 3.*why/s, 'a failing command rejects, with its exit status and output');
  t.equal(await h.run('echo after'), 'after\n', 'the helper goes on after a failure');

  const both = await Promise.all([h.run('sleep 0.05; echo one'), h.run('echo two')]);
  t.same(both, ['one\n', 'two\n'], 'queued requests are answered in order, each with its own output');

  // The helper dies in the middle of a request: that request fails with a clear error, the
  // next one gets a new helper.
  const dying = await h.run('kill -9 $$; sleep 0.1').catch((x: Error) => x);
  t.match((dying as Error).message, /host helper shell .*exited.*retry/, 'a request cut short by the helper dying is rejected');
  t.equal(await h.run('echo again'), 'again\n', 'a new helper serves the next request');
});
