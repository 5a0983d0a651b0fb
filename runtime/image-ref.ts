// Image references as Docker and containerd read them: [registry/]path[:tag][@digest], with
// docker.io and library/ as defaults, normalised to "registry/path:tag".

export interface ImageRef {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;

export function parseImageRef(input: string): ImageRef {
  const s = input.trim();
  if (!s) throw new Error('image reference is empty');
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw new Error(`image reference ${JSON.stringify(input)} has an invalid digest; expected @sha256:<64 hex>`);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new Error(`image reference ${JSON.stringify(input)} has an invalid tag ${JSON.stringify(tag)}`);
  }
  const parts = rest.split('/');
  let registry = 'docker.io';
  if (parts.length > 1 && (parts[0]!.includes('.') || parts[0]!.includes(':') || parts[0] === 'localhost')) {
    registry = parts.shift()!;
  }
  if (registry === 'index.docker.io') registry = 'docker.io';
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library');
  for (const p of parts) {
    if (!COMPONENT.test(p)) throw new Error(`image reference ${JSON.stringify(input)}: repository component ${JSON.stringify(p)} is invalid (lowercase letters, digits, separators)`);
  }
  if (!tag && !digest) tag = 'latest';
  return { registry, repository: parts.join('/'), tag, digest };
}

export function refName(r: ImageRef): string {
  return `${r.registry}/${r.repository}`;
}

/** "registry/repo:tag" (or "registry/repo@digest" when no tag was given). */
export function formatRef(r: ImageRef): string {
  return r.tag ? `${refName(r)}:${r.tag}` : `${refName(r)}@${r.digest}`;
}
