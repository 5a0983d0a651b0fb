// Test helper: a Docker registry token server (the "Bearer realm=..." side of the distribution
// auth spec) so the real docker-registry can run with token auth. It stands for an external
// auth service (Docker Hub's auth.docker.io, Harbor's core): it checks a fixed test user with
// basic auth and signs RS256 JWTs with a throwaway key whose self-signed certificate the
// registry trusts (rootcertbundle) and that travels in the token's x5c header.
import { execFileSync } from 'node:child_process';
import { createSign, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certFile: string;
  issued: number;
  /** A token for pushing (test setup). */
  tokenFor(scope: string): string;
  stop(): Promise<void>;
}

const b64u = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export async function startTokenServer(user: string, password: string): Promise<TokenServer> {
  const dir = mkdtempSync(join(tmpdir(), `shoal-token-${process.pid}-`));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', '/CN=shoal-test-token', '-days', '2'], { stdio: 'ignore' });
  const key = readFileSync(keyFile, 'utf8');
  const certDer = readFileSync(certFile, 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const service = 'shoal-test-registry';
  const issuer = 'shoal-test-issuer';
  const sign = (subject: string, scope: string) => {
    const now = Math.floor(Date.now() / 1000);
    const [type, name, actions] = scope.split(':');
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer] };
    const claims = { iss: issuer, sub: subject, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'),
      access: type ? [{ type, name, actions: (actions ?? '').split(',').filter(Boolean) }] : [] };
    const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(input).sign(key);
    return `${input}.${b64u(sig)}`;
  };
  const ts: TokenServer = {
    realm: '', service, issuer, certFile, issued: 0,
    tokenFor: (scope) => sign(user, scope),
    stop: async () => { await new Promise((r) => server.close(r)); rmSync(dir, { recursive: true, force: true }); },
  };
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const want = 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
    if (u.pathname !== '/token' || req.headers.authorization !== want) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}');
      return;
    }
    ts.issued++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: sign(user, u.searchParams.get('scope') ?? '') }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  ts.realm = `http://127.0.0.1:${(server.address() as { port: number }).port}/token`;
  return ts;
}
