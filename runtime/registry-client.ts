// Client of the OCI distribution API (Docker Registry HTTP API V2): manifests (indexes and
// manifest lists resolved to linux/amd64), blobs, anonymous / basic / bearer-token auth from
// the WWW-Authenticate challenge. Every manifest and blob is checked against its digest.
import { createHash } from 'node:crypto';
import { type ImageRef, refName } from './image-ref.js';

export const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
};

export interface Descriptor { mediaType: string; digest: string; size: number; platform?: { os?: string; architecture?: string; variant?: string } }
export interface Manifest { schemaVersion: number; mediaType?: string; config: Descriptor; layers: Descriptor[] }
export interface Index { schemaVersion: number; mediaType?: string; manifests: Descriptor[] }

export interface Credentials {
  username?: string;
  password?: string;
  /** base64("user:password"), as in docker's config.json */
  auth?: string;
  /** A bearer token to send as is. */
  registry_token?: string;
  identity_token?: string;
}

export interface RegistryOptions {
  /** Registries reached over plain HTTP (loopback ones always are). */
  insecure?: string[];
}

const ACCEPT = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest].join(', ');

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}

function parseChallenge(h: string): { scheme: string; params: Record<string, string> } {
  const m = /^(\w+)\s*(.*)$/s.exec(h.trim());
  if (!m) return { scheme: '', params: {} };
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)="([^"]*)"/g)) params[p[1]!.toLowerCase()] = p[2]!;
  return { scheme: m[1]!.toLowerCase(), params };
}

export class RegistryClient {
  private readonly tokens = new Map<string, string>();
  constructor(private readonly opts: RegistryOptions = {}) {}

  private base(registry: string): string {
    const host = registry === 'docker.io' ? 'registry-1.docker.io' : registry;
    const plain = isLoopbackHost(host) || (this.opts.insecure ?? []).includes(registry);
    return `${plain ? 'http' : 'https'}://${host}`;
  }

  private basic(c?: Credentials): string | undefined {
    if (!c) return undefined;
    if (c.auth) return 'Basic ' + c.auth;
    if (c.username) return 'Basic ' + Buffer.from(`${c.username}:${c.password ?? ''}`).toString('base64');
    return undefined;
  }

  /** GET with the auth dance: on 401 obtain a token for the challenge and retry once. */
  private async get(ref: ImageRef, path: string, accept: string | undefined, creds?: Credentials): Promise<Response> {
    const url = this.base(ref.registry) + path;
    const scope = `repository:${ref.repository}:pull`;
    const key = `${ref.registry}|${scope}`;
    const headers: Record<string, string> = {};
    if (accept) headers['accept'] = accept;
    let auth = creds?.registry_token ? 'Bearer ' + creds.registry_token : this.tokens.get(key);
    if (auth) headers['authorization'] = auth;
    let res = await this.fetch(url, headers);
    if (res.status === 401) {
      await res.body?.cancel();
      const ch = parseChallenge(res.headers.get('www-authenticate') ?? '');
      if (ch.scheme === 'bearer') {
        auth = 'Bearer ' + (await this.token(ch.params, scope, creds));
      } else if (ch.scheme === 'basic') {
        const b = this.basic(creds);
        if (!b) throw new Error(`registry ${ref.registry} requires credentials (basic auth) to pull ${refName(ref)}; pass them in the pull request's auth`);
        auth = b;
      } else {
        throw new Error(`registry ${ref.registry} answered 401 without a usable WWW-Authenticate challenge`);
      }
      this.tokens.set(key, auth);
      headers['authorization'] = auth;
      res = await this.fetch(url, headers);
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new Error(`registry ${ref.registry} refused access to ${refName(ref)} (HTTP ${res.status}); check the credentials`);
    }
    return res;
  }

  private async fetch(url: string, headers: Record<string, string>): Promise<Response> {
    try {
      return await fetch(url, { headers, redirect: 'follow' });
    } catch (e) {
      throw new Error(`cannot reach registry at ${url}: ${(e as Error).message}${(e as { cause?: Error }).cause ? ' (' + (e as { cause?: Error }).cause!.message + ')' : ''}`);
    }
  }

  private async token(p: Record<string, string>, scope: string, creds?: Credentials): Promise<string> {
    if (!p['realm']) throw new Error('bearer challenge without realm');
    const u = new URL(p['realm']);
    if (p['service']) u.searchParams.set('service', p['service']);
    u.searchParams.set('scope', p['scope'] ?? scope);
    const headers: Record<string, string> = {};
    const b = this.basic(creds);
    if (b) headers['authorization'] = b;
    let res: Response;
    if (creds?.identity_token) {
      const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identity_token, service: p['service'] ?? '', scope: p['scope'] ?? scope, client_id: 'shoal' });
      res = await fetch(p['realm'], { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    } else {
      res = await this.fetch(u.toString(), headers);
    }
    if (!res.ok) throw new Error(`token server ${u.origin} refused a token for ${scope} (HTTP ${res.status}); check the credentials`);
    const j = (await res.json()) as { token?: string; access_token?: string };
    const t = j.token ?? j.access_token;
    if (!t) throw new Error(`token server ${u.origin} answered without a token`);
    return t;
  }

  /** Fetches a manifest or index by tag or digest; the digest is verified when it was asked for. */
  async manifest(ref: ImageRef, reference: string, creds?: Credentials): Promise<{ mediaType: string; bytes: Buffer; digest: string }> {
    const res = await this.get(ref, `/v2/${ref.repository}/manifests/${reference}`, ACCEPT, creds);
    if (res.status === 404) { await res.body?.cancel(); throw new Error(`image ${refName(ref)}:${reference} not found in registry ${ref.registry}`); }
    if (!res.ok) { await res.body?.cancel(); throw new Error(`registry ${ref.registry} answered HTTP ${res.status} for manifest ${reference}`); }
    const bytes = Buffer.from(await res.arrayBuffer());
    if (bytes.length > 4 << 20) throw new Error(`manifest ${reference} is larger than 4 MiB; refusing it`);
    const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new Error(`manifest digest mismatch: asked for ${reference}, content hashes to ${digest}; refusing it`);
    }
    let mediaType = res.headers.get('content-type')?.split(';')[0]?.trim() ?? '';
    const parsed = JSON.parse(bytes.toString()) as { mediaType?: string };
    if (parsed.mediaType) mediaType = parsed.mediaType;
    return { mediaType, bytes, digest };
  }

  /** Streams a blob's bytes (the caller verifies the digest while storing, see ContentStore). */
  async blob(ref: ImageRef, digest: string, creds?: Credentials): Promise<AsyncIterable<Uint8Array>> {
    const res = await this.get(ref, `/v2/${ref.repository}/blobs/${digest}`, undefined, creds);
    if (!res.ok || !res.body) { await res.body?.cancel(); throw new Error(`registry ${ref.registry} answered HTTP ${res.status} for blob ${digest} of ${refName(ref)}`); }
    return res.body as unknown as AsyncIterable<Uint8Array>;
  }

  /**
   * Resolves a reference to one image manifest: an index / manifest list is narrowed to
   * linux/amd64. Returns the manifest with its digest and the digest the user addressed.
   */
  async resolve(ref: ImageRef, creds?: Credentials): Promise<{ manifest: Manifest; manifestBytes: Buffer; manifestDigest: string; topDigest: string }> {
    const top = await this.manifest(ref, ref.digest ?? ref.tag ?? 'latest', creds);
    let m = top;
    const parsedTop = JSON.parse(top.bytes.toString()) as Index | Manifest;
    if (top.mediaType === MT.ociIndex || top.mediaType === MT.dockerList || 'manifests' in parsedTop) {
      const idx = parsedTop as Index;
      const pick = selectPlatform(idx.manifests);
      if (!pick) throw new Error(`image ${refName(ref)} has no linux/amd64 variant (found: ${idx.manifests.map((d) => `${d.platform?.os}/${d.platform?.architecture}`).join(', ') || 'none'})`);
      m = await this.manifest(ref, pick.digest, creds);
    }
    const manifest = JSON.parse(m.bytes.toString()) as Manifest;
    if (manifest.schemaVersion !== 2 || !manifest.config || !Array.isArray(manifest.layers)) {
      throw new Error(`manifest ${m.digest} of ${refName(ref)} is not a schema 2 / OCI image manifest (media type ${m.mediaType}); schema 1 is not supported`);
    }
    return { manifest, manifestBytes: m.bytes, manifestDigest: m.digest, topDigest: top.digest };
  }
}

export function selectPlatform(list: Descriptor[]): Descriptor | undefined {
  const cands = list.filter((d) => d.platform?.os === 'linux' && d.platform?.architecture === 'amd64');
  return cands.find((d) => !d.platform?.variant || d.platform.variant === 'v1') ?? cands[0];
}
