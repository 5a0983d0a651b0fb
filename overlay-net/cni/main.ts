#!/usr/bin/env node
// shoal-cni: the CNI plugin a runtime execs (config on stdin, CNI_* in the environment); it
// forwards ADD/DEL/CHECK/STATUS/GC to the network plugin over gRPC and prints the result, or
// the error in the spec's JSON (exit 1).
import { readFileSync } from 'node:fs';
import { CODE, CniError, errorJson, parseNetConf, versionJson } from './protocol.js';

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

const USAGE = 'usage: CNI_COMMAND=ADD|DEL|CHECK|VERSION|STATUS|GC CNI_CONTAINERID=ID CNI_NETNS=PATH CNI_IFNAME=eth0 [CNI_ARGS=K=V;...] shoal-cni < netconf.json\n' +
  '(a CNI plugin: a container runtime runs it from its CNI config directory; it takes no arguments)\n';

async function main(): Promise<number> {
  if (process.argv.length > 2) {
    process.stderr.write(`shoal-cni: unknown argument ${process.argv[2]}\n${USAGE}`);
    return 2;
  }
  const command = process.env.CNI_COMMAND ?? '';
  if (!command) process.stderr.write(USAGE);
  const stdin = readStdin();
  let version = '1.0.0';
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === 'string' && v) version = v;
  } catch { /* reported by parseNetConf below */ }
  try {
    if (command === 'VERSION') {
      process.stdout.write(JSON.stringify(versionJson(version)) + '\n');
      return 0;
    }
    if (!command) throw new CniError(CODE.INVALID_ENV, 'CNI_COMMAND is not set');
    const conf = parseNetConf(stdin, command);
    // gRPC is loaded only for the verbs that need it (VERSION and bad input answer at once).
    const { run } = await import('./forward.js');
    const out = await run(command, conf);
    if (out) process.stdout.write(JSON.stringify(out) + '\n');
    return 0;
  } catch (e) {
    const err = e instanceof CniError ? e : new CniError(CODE.IO_FAILURE, (e as Error).message);
    process.stdout.write(JSON.stringify(errorJson(version, err)) + '\n');
    return 1;
  }
}

main().then((code) => process.exit(code));
