// Test helper standing in for the Kubernetes API server and the kubelet, so a real kubectl can
// reach shoal-runtime's streaming server: it answers kubectl's discovery and `GET pod` for one
// pod, and turns `pods/NAME/exec`, `/attach` and `/portforward` upgrades into the CRI Exec,
// Attach and PortForward calls, then relays the client's connection (its upgrade request
// included) to the URL the runtime returned, as the kubelet's streaming proxy does. It stands in
// for them because neither runs here; everything after the upgrade is kubectl and the runtime.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { CriClient } from './cri-client.js';

export interface StubContainer { id: string; stdin?: boolean; tty?: boolean }

export class KubeApiStub {
  private server?: Server;
  port = 0;
  /** What kubectl asked for, in order (method and path). */
  readonly requests: string[] = [];

  constructor(private readonly cri: CriClient, private readonly podName: string, private readonly podId: string, private readonly containers: Record<string, StubContainer>) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.requests.push(`${req.method} ${req.url}`);
      const path = (req.url ?? '/').split('?')[0];
      const json = (o: unknown) => { res.setHeader('Content-Type', 'application/json'); res.end(JSON.stringify(o)); };
      if (path === '/version') return json({ major: '1', minor: '20', gitVersion: 'v1.20.2' });
      if (path === '/api') return json({ kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }] });
      if (path === '/apis') return json({ kind: 'APIGroupList', apiVersion: 'v1', groups: [] });
      if (path === '/api/v1') {
        return json({ kind: 'APIResourceList', groupVersion: 'v1', resources: [
          { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['get', 'list'], shortNames: ['po'] },
          ...['exec', 'attach', 'portforward'].map((s) => ({ name: `pods/${s}`, singularName: '', namespaced: true, kind: 'Pod', verbs: ['create', 'get'] })),
        ] });
      }
      if (path === `/api/v1/namespaces/default/pods/${this.podName}`) {
        return json({
          kind: 'Pod', apiVersion: 'v1', metadata: { name: this.podName, namespace: 'default', uid: this.podId },
          spec: { containers: Object.entries(this.containers).map(([name, c]) => ({ name, image: 'busybox', stdin: !!c.stdin, tty: !!c.tty })) },
          status: { phase: 'Running', containerStatuses: Object.keys(this.containers).map((name) => ({ name, ready: true, state: { running: {} } })) },
        });
      }
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `${path} not found`, reason: 'NotFound', code: 404 }));
    });
    this.server.on('upgrade', (req, sock, head) => { this.upgrade(req, sock, head).catch((e: Error) => sock.end(`HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n${e.message}\n`)); });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  close(): void { this.server?.close(); }

  private async upgrade(req: IncomingMessage, sock: Duplex, head: Buffer): Promise<void> {
    this.requests.push(`UPGRADE ${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/', 'http://x');
    const m = new RegExp(`^/api/v1/namespaces/default/pods/${this.podName}/(exec|attach|portforward)$`).exec(url.pathname);
    if (!m) throw new Error(`no such subresource: ${url.pathname}`);
    const q = (k: string) => url.searchParams.get(k) === 'true' || url.searchParams.get(k) === '1';
    const c = this.containers[url.searchParams.get('container') ?? Object.keys(this.containers)[0]!];
    let target: string;
    if (m[1] === 'portforward') target = (await this.cri.rt.PortForward({ pod_sandbox_id: this.podId, port: url.searchParams.getAll('ports').map(Number) })).url;
    else {
      if (!c) throw new Error(`no container ${url.searchParams.get('container')}`);
      const opts = { container_id: c.id, stdin: q('stdin'), stdout: q('stdout'), stderr: q('stderr'), tty: q('tty') };
      target = m[1] === 'exec' ? (await this.cri.rt.Exec({ ...opts, cmd: url.searchParams.getAll('command') })).url : (await this.cri.rt.Attach(opts)).url;
    }
    // Relays the upgrade request, headers and all, to the runtime's URL and pipes the connection.
    const t = new URL(target);
    const up = connect(Number(t.port), t.hostname);
    const lines = [`${req.method} ${t.pathname} HTTP/1.1`, `Host: ${t.host}`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() !== 'host') lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    up.write(lines.join('\r\n') + '\r\n\r\n');
    if (head.length) up.write(head);
    up.pipe(sock);
    sock.pipe(up);
    up.on('error', () => sock.destroy());
    sock.on('error', () => up.destroy());
    up.on('close', () => sock.destroy());
    sock.on('close', () => up.destroy());
  }
}
