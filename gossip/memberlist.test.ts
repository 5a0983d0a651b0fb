// The public API over real UDP/TCP sockets on 127.0.0.1, in one process:
// join, metadata, leave, encryption, cluster labels and key rotation.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { makeConfig } from './config.js';
import { Keyring } from './keyring.js';
import { Memberlist, type MemberEvent } from './memberlist.js';

const k1 = randomBytes(32);
const k2 = randomBytes(32);

async function member(t: Test, name: string, opts: { keys?: Buffer[]; label?: string; meta?: string } = {}): Promise<{ ml: Memberlist; events: MemberEvent[] }> {
  const ml = await Memberlist.create({
    config: makeConfig(name, 'local', { label: opts.label ?? '' }),
    ...(opts.keys ? { keyring: new Keyring(opts.keys) } : {}),
    ...(opts.meta ? { meta: Buffer.from(opts.meta) } : {}),
  });
  t.teardown(() => ml.shutdown());
  const events: MemberEvent[] = [];
  ml.on('event', (e: MemberEvent) => events.push(e));
  return { ml, events };
}

async function until(what: string, pred: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const stateOf = (ml: Memberlist, name: string): string | undefined => ml.members().find((m) => m.name === name)?.state;

t.test('encrypted, labelled members join, share metadata, and see a graceful leave', async (t) => {
  const a = await member(t, 'a', { keys: [k1], label: 'blue', meta: 'role=manager' });
  const b = await member(t, 'b', { keys: [k1], label: 'blue' });
  const c = await member(t, 'c', { keys: [k1], label: 'blue' });
  t.same(await b.ml.join([a.ml.addr]), { contacted: 1, errors: [] });
  await c.ml.join([b.ml.addr]);
  await until('all see 3 alive', () => [a, b, c].every((x) => x.ml.liveMembers().length === 3));
  t.equal(Buffer.from(c.ml.members().find((m) => m.name === 'a')?.meta ?? []).toString(), 'role=manager', 'metadata learned at join');
  b.ml.updateMeta(Buffer.from('role=worker;zone=z2'));
  await until('update reaches a and c', () => [a, c].every((x) => x.events.some((e) => e.type === 'update' && e.name === 'b')));
  t.equal(Buffer.from(a.ml.members().find((m) => m.name === 'b')?.meta ?? []).toString(), 'role=worker;zone=z2');
  await c.ml.leave(300);
  await c.ml.shutdown();
  await until('a and b see c leave', () => [a, b].every((x) => stateOf(x.ml, 'c') === 'left'));
  t.notOk(a.events.some((e) => e.type === 'dead' && e.name === 'c'), 'a leave is not a failure');
  const st = a.ml.stats();
  t.equal(st.transport.dropped.decrypt, 0);
});

t.test('a member with the wrong key cannot join; its packets are dropped and counted', async (t) => {
  const a = await member(t, 'a', { keys: [k1] });
  const x = await member(t, 'x', { keys: [k2] });
  const r = await x.ml.join([a.ml.addr]);
  t.equal(r.contacted, 0);
  t.match(r.errors[0], /no reply/);
  t.ok(a.ml.stats().transport.dropped.decrypt >= 1, 'a dropped the undecryptable stream');
  t.equal(stateOf(a.ml, 'x'), undefined);
  const plain = await member(t, 'p');
  t.equal((await plain.ml.join([a.ml.addr])).contacted, 0, 'a member without encryption cannot join either');
});

t.test('a different cluster label keeps two clusters apart', async (t) => {
  const a = await member(t, 'a', { label: 'blue' });
  const g = await member(t, 'g', { label: 'green' });
  const r = await g.ml.join([a.ml.addr]);
  t.equal(r.contacted, 0);
  t.ok(a.ml.stats().transport.dropped.label >= 1, 'dropped for its label');
  t.equal(a.ml.members().length, 1);
});

t.test('key rotation on a live cluster: install, use, remove, and gossip keeps flowing', async (t) => {
  const ms = await Promise.all(['a', 'b', 'c'].map((n) => member(t, n, { keys: [k1] })));
  const [a, b, c] = ms as [typeof ms[0], typeof ms[0], typeof ms[0]];
  await b.ml.join([a.ml.addr]);
  await c.ml.join([a.ml.addr]);
  await until('formed', () => ms.every((x) => x.ml.liveMembers().length === 3));
  for (const x of ms) x.ml.keyring?.install(k2);
  for (const x of ms) x.ml.keyring?.use(k2);
  for (const x of ms) x.ml.keyring?.remove(k1);
  a.ml.updateMeta(Buffer.from('rotated'));
  await until('update under the new key', () => [b, c].every((x) => x.events.some((e) => e.type === 'update' && e.name === 'a')));
  t.pass('members speak k2 only');
  const old = await member(t, 'old', { keys: [k1] });
  t.equal((await old.ml.join([a.ml.addr])).contacted, 0, 'the removed key no longer gets in');
});

t.test('bad input gets a clear error and changes nothing', async (t) => {
  const a = await member(t, 'a');
  await t.rejects(a.ml.join([]), /at least one host:port/);
  const r = await a.ml.join(['not-an-address']);
  t.equal(r.contacted, 0);
  t.throws(() => a.ml.updateMeta(new Uint8Array(4096)), /over metaMaxSize/);
  t.equal(a.ml.members()[0]?.inc, 0, 'the failed update did not bump the incarnation');
  await t.rejects(Memberlist.create({ config: makeConfig('z', 'lan', {}), bindPort: 70000 }), /bindPort must be an integer in 0..65535/);
  t.throws(() => makeConfig('z', 'lan', { probeTimeoutMs: 5000 }), /probeTimeoutMs/);
  await a.ml.shutdown();
  await t.rejects(a.ml.join(['127.0.0.1:1']), /shut down/);
});
