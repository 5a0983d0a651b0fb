// Two real daemons in this process (manager m1, worker w) on loopback. m1 advertises the address
// of a TCP relay run by the test, so every call to m1 from an agent or a renewal goes through it;
// the relay can hold all traffic (a slow network, not a fake: the bytes are real gRPC/TLS and
// arrive in order once released). That puts a certificate renewal reliably "in flight" while the
// worker leaves or stops, and checks that its late answer brings nothing back.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { removeTestDir } from '../test/teardown.js';
import { createSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { call, controlClient, localClient } from '../cli/client.js';
import { Daemon } from './daemon.js';
import { freePort } from './ports.js';

/** A TCP relay to `target` that can hold every byte in both directions until released. */
class HoldingRelay {
  private server?: Server;
  private held: (() => void)[] = [];
  private socks = new Set<Socket>();
  holding = false;
  /** Connections accepted, and chunks held since the last hold(). */
  accepted = 0;
  heldChunks = 0;

  constructor(private readonly target: number) {}

  async start(port: number): Promise<void> {
    this.server = createServer((down) => {
      this.accepted++;
      const up = connect(this.target, '127.0.0.1');
      for (const s of [down, up]) {
        this.socks.add(s);
        s.on('close', () => this.socks.delete(s));
        s.on('error', () => undefined);
      }
      const pipe = (from: Socket, to: Socket) => {
        from.on('data', (d) => {
          if (!this.holding) return void to.write(d);
          this.heldChunks++;
          this.held.push(() => to.write(d));
        });
        from.on('end', () => (this.holding ? this.held.push(() => to.end()) : to.end()));
        from.on('close', () => (this.holding ? this.held.push(() => to.destroy()) : to.destroy()));
      };
      pipe(down, up);
      pipe(up, down);
    });
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', r));
  }

  /** Holds from now on. Open connections stay (held too), so a new connection accepted after
   * this point is a new channel's: the renewal's, which has its own (the agents keep theirs
   * unless a held heartbeat times out, after 5 s). */
  hold(): void {
    this.holding = true;
    this.heldChunks = 0;
  }

  release(): void {
    this.holding = false;
    for (const f of this.held.splice(0)) f();
  }

  close(): void {
    this.release();
    for (const s of this.socks) s.destroy();
    this.server?.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), `shoal-daemon-${process.pid}-`));
const logs = new Map<string, string[]>();
const daemons: Daemon[] = [];
let relay: HoldingRelay | undefined;
t.teardown(async () => {
  relay?.close();
  for (const d of daemons) await d.stop().catch(() => undefined);
  await removeTestDir(dir); // each daemon's runtime leaves its namespace mount behind
});

function daemon(name: string, listen: number, advertise = listen, onLog?: (m: string) => void): Daemon {
  const lines: string[] = [];
  logs.set(name, lines);
  const d = new Daemon({
    stateDir: join(dir, name),
    listen: `127.0.0.1:${listen}`,
    advertise: `127.0.0.1:${advertise}`,
    hostname: name,
    gossipPreset: 'local',
    networkEndpoint: 'none', // in the machine's own namespace: no bridge or VXLAN device here
    log: (m) => {
      lines.push(m);
      onLog?.(m);
      if (process.env.SHOAL_TEST_LOG) process.stderr.write(`[${name}] ${m}\n`);
    },
  });
  daemons.push(d);
  return d;
}

const local = (d: Daemon) => localClient({ stateDir: d.state.dir });
const info = (d: Daemon) => call<{ node_id: string; role: string; state: string; session_manager: string }>(local(d), 'Info', {});

async function until<T>(what: string, f: () => Promise<T | undefined | false> | T | undefined | false, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Holds the relay, starts a renewal and waits until its call is stuck in the relay: a new
 * connection (the renewal's own channel) has bytes held. */
async function renewalInFlight(w: Daemon): Promise<{ done: Promise<void> }> {
  relay!.hold();
  const before = relay!.accepted;
  const done = w.renew();
  await until('the renewal call to reach the held relay', () => relay!.accepted > before && relay!.heldChunks > 0);
  return { done }; // wrapped: an async function returning the promise itself would wait for it
}

let token = '';
let relayAddr = '';

t.test('a renewal that completes after leave or stop brings back neither the identity nor the manager role', async (t) => {
  const [m1Port, relayPort, wPort] = await Promise.all([freePort('127.0.0.1'), freePort('127.0.0.1'), freePort('127.0.0.1')]);
  relay = new HoldingRelay(m1Port);
  await relay.start(relayPort);
  const m1 = daemon('m1', m1Port, relayPort);
  await m1.start();
  const init = await call<{ worker_token: string }>(local(m1), 'Init', { cert_expiry_seconds: 0 });
  token = init.worker_token;
  relayAddr = `127.0.0.1:${relayPort}`;
  const w = daemon('w', wPort);
  await w.start();
  const joinW = async () => {
    await call(local(w), 'Join', { addr: `127.0.0.1:${relayPort}`, token: init.worker_token }, 60_000);
    await until('a session with m1', async () => (await info(w)).session_manager !== '');
  };
  await joinW();
  const nodeJson = join(w.state.dir, 'identity', 'node.json');
  t.ok(existsSync(nodeJson), 'the worker has an identity');

  // 1. leave while a renewal is in flight
  const renewal = await renewalInFlight(w);
  await call(local(w), 'Leave', { force: false });
  t.notOk(existsSync(nodeJson), 'leave removed the identity');
  relay.release();
  await renewal.done;
  t.notOk(existsSync(nodeJson), 'the late renewal did not write the identity back');
  t.notOk(existsSync(join(w.state.dir, 'identity')), 'nor anything under identity/');
  const after = await info(w);
  t.same([after.node_id, after.state], ['', 'left'], 'the daemon still says it left');
  t.match(logs.get('w')!.join('\n'), /a certificate renewal completed after the node left or stopped; discarded/);

  // 2. stop while a renewal is in flight that would promote the node to manager
  await joinW();
  const { node_id: wId } = await info(w);
  const identityBefore = readFileSync(nodeJson, 'utf8');
  relay.hold(); // so w's session does not hear of the promotion and renew by itself first
  await call(controlClient({ stateDir: m1.state.dir }), 'PromoteNode', { id: wId });
  const promoting = await renewalInFlight(w);
  await w.stop();
  relay.release();
  await promoting.done;
  t.notMatch(logs.get('w')!.join('\n'), /promoted: starting the manager role/, 'the stopped daemon did not start the manager role');
  const probe = await new Promise<string>((resolve) => {
    const s = connect(wPort, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve('listening')));
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
  t.equal(probe, 'ECONNREFUSED', 'nothing listens on the stopped worker\'s API address');
  t.equal(readFileSync(nodeJson, 'utf8'), identityBefore, 'the identity on disk is the one it stopped with (still a worker)');
  t.equal(logs.get('w')!.filter((l) => /a certificate renewal completed after the node left or stopped; discarded/.test(l)).length, 2, 'both late renewals were discarded');
});

t.test('gossip that comes up after stop is shut down again', async (t) => {
  t.ok(token, 'the cluster of the first test is up');
  // A fresh worker starts gossip when its first session hands it the gossip key, right after it
  // logs the session. A stop queued with process.nextTick at that line runs once the session
  // handler has begun the gossip start and before that start resumes: inside the gossip start.
  let stopping: Promise<void> | undefined;
  const w3: Daemon = daemon('w3', await freePort('127.0.0.1'), undefined, (m) => {
    if (!stopping && /^agent: session \w+ with manager/.test(m)) process.nextTick(() => (stopping = w3.stop()));
  });
  await w3.start();
  // The session may come, and the daemon stop, before the join's answer: its outcome is not the point.
  await call(local(w3), 'Join', { addr: relayAddr, token }, 60_000).catch(() => undefined);
  await until('the stop to begin', () => stopping !== undefined);
  await stopping;
  const lines = logs.get('w3')!;
  await until('the gossip start to finish', () => lines.some((l) => /gossip came up after the node left or stopped|gossip: listening/.test(l)));
  t.ok(lines.some((l) => /gossip came up after the node left or stopped; shut it down again/.test(l)), 'the late gossip was shut down');
  t.notOk(lines.some((l) => /gossip: listening/.test(l)), 'gossip never went live');
  const { gossip } = JSON.parse(readFileSync(join(w3.state.dir, 'ports.json'), 'utf8')) as { gossip: number };
  const free = await new Promise<boolean>((resolve) => {
    const u = createSocket('udp4');
    u.once('error', () => resolve(false));
    u.bind(gossip, '127.0.0.1', () => u.close(() => resolve(true)));
  });
  t.ok(free, `gossip's UDP port ${gossip} is free again`);
});
