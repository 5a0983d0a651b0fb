// Per-step timings of a call, printed to stderr when SHOAL_CSI_TRACE is set (the benchmark uses
// it to show where a stage's time goes). Off, it costs a branch per step.
const on = !!process.env['SHOAL_CSI_TRACE'];

export interface Trace { step(name: string): void; done(): void }

const noop: Trace = { step() {}, done() {} };

export function trace(call: string): Trace {
  if (!on) return noop;
  let last = process.hrtime.bigint();
  const start = last;
  const steps: string[] = [];
  return {
    step(name) {
      const now = process.hrtime.bigint();
      steps.push(`${name} ${(Number(now - last) / 1e6).toFixed(1)}`);
      last = now;
    },
    done() {
      process.stderr.write(`trace ${call} ${(Number(process.hrtime.bigint() - start) / 1e6).toFixed(1)} ms: ${steps.join(', ')}\n`);
    },
  };
}
