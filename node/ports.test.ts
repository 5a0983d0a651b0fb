// freePort picks below the kernel's ephemeral range (so an outgoing connection can never take a
// port a node saved and listens on again after a restart), and what it returns can be bound, for
// TCP and, when asked, UDP.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { freePort } from './ports.js';

const [lo] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);

t.test('below the ephemeral range, and free for TCP and UDP', async (t) => {
  for (let i = 0; i < 20; i++) {
    const p = await freePort('127.0.0.1', true);
    t.ok(p >= 10_000 && p < lo!, `${p} is below the ephemeral range (from ${lo})`);
    await new Promise<void>((resolve, reject) => {
      const s = createServer().once('error', reject).listen(p, '127.0.0.1', () => s.close(() => resolve()));
    });
    await new Promise<void>((resolve, reject) => {
      const u = createSocket('udp4').once('error', reject);
      u.bind(p, '127.0.0.1', () => u.close(() => resolve()));
    });
  }
});
