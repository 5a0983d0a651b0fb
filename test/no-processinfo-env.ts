// Preloaded into every test process (package.json, tap's node-arg), after tap's processinfo.
// processinfo tracks child processes for coverage: it puts its module loader into NODE_OPTIONS
// and, through process-on-spawn, into the environment of every process spawned. Coverage is off
// here, and every shoald, runtime, plugin and CLI a test starts inherited it: a loader thread per
// process that doubled a CLI call's CPU (0.37 s to 0.83 s) and raised each daemon's memory.
// Tests start those processes as an operator would: without it.
const opts = process.env.NODE_OPTIONS;
if (opts !== undefined) {
  const kept = opts.split(/\s+/).filter((o) => o !== '' && !/@tapjs[\\/]processinfo/.test(o));
  if (kept.length > 0) process.env.NODE_OPTIONS = kept.join(' ');
  else delete process.env.NODE_OPTIONS;
}
// process-on-spawn keeps its listeners in this global singleton (process-on-spawn 1.x).
const spawnHooks = (globalThis as Record<symbol, { listeners?: unknown[] } | undefined>)[Symbol.for('process-on-spawn@*:singletonId')];
if (spawnHooks?.listeners) spawnHooks.listeners.length = 0;
export {};
