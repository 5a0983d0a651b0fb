// Checks a plugin's GetInfo answer, before the registry takes it. Pure (unit-tested in
// validate.test.ts); the kind-specific checks that need the plugin's own service are in kinds.ts.
import { isAbsolute } from 'node:path';
import { ForeignPluginTypes, PluginType, type PluginInfo } from '../../proto/pluginregistration/v1/registration.js';

/** The API major versions shoal speaks per plugin type. */
export const SPOKEN_MAJORS: Record<string, number[]> = {
  [PluginType.CSI]: [1], // CSI spec v1
  [PluginType.Network]: [1], // shoal's network contract v1 (CNI 1.x verbs)
  [PluginType.Runtime]: [1], // CRI runtime.v1
};

export interface ValidInfo { kind: string; name: string; endpoint: string; versions: string[]; version: string }

const NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const VERSION = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/;

/** Parses "1", "v1", "1.2", "1.2.3" into comparable numbers, or undefined. */
export function parseVersion(v: string): [number, number, number] | undefined {
  const m = VERSION.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : undefined;
}

/**
 * The plugin as the registry keeps it, or throws an Error saying what is wrong with the answer.
 * `socket` is the registration socket (the endpoint when the plugin leaves it empty).
 */
export function validateInfo(info: PluginInfo, socket: string, kinds: string[] = Object.keys(SPOKEN_MAJORS)): ValidInfo {
  const type = info.type ?? '';
  if (!kinds.includes(type)) {
    if ((ForeignPluginTypes as readonly string[]).includes(type)) throw new Error(`plugin type ${type} is a kubelet plugin type shoal does not take (it takes ${kinds.join(', ')})`);
    throw new Error(`unknown plugin type ${JSON.stringify(type)} (shoal takes ${kinds.join(', ')})`);
  }
  const name = info.name ?? '';
  if (!NAME.test(name)) throw new Error(`plugin name ${JSON.stringify(name)} is not valid: 1-63 letters, digits, dots, dashes or underscores, starting and ending with a letter or digit`);
  let endpoint = info.endpoint ?? '';
  if (endpoint === '') endpoint = socket;
  if (endpoint.startsWith('unix://')) endpoint = endpoint.slice('unix://'.length);
  if (!isAbsolute(endpoint)) throw new Error(`endpoint ${JSON.stringify(info.endpoint)} must be an absolute path to a Unix socket (or unix:///path)`);
  const versions = info.supported_versions ?? [];
  if (versions.length === 0) throw new Error('supported_versions is empty: the plugin must say which API versions it speaks');
  const majors = SPOKEN_MAJORS[type] ?? [];
  const usable = versions.map((v) => ({ v, p: parseVersion(v) })).filter((x) => x.p && majors.includes(x.p[0]));
  if (usable.length === 0) throw new Error(`supported_versions ${JSON.stringify(versions)} has none shoal speaks for ${type} (major version ${majors.join(' or ')})`);
  usable.sort((a, b) => b.p![0] - a.p![0] || b.p![1] - a.p![1] || b.p![2] - a.p![2]);
  return { kind: type, name, endpoint, versions, version: usable[0]!.v };
}
