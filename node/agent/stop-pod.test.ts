// stopPodSandbox's retry, against a stand-in runtime whose StopPodSandbox fails as shoal-runtime's
// does while the node's network plugin is not serving yet (the CNI DEL fails), then succeeds.
import t from 'tap';
import type { CriClient } from '../cri/client.js';
import { stopPodSandbox } from './executor.js';

function runtime(answers: (number | undefined)[]): { cri: CriClient; calls: () => number } {
  let n = 0;
  const StopPodSandbox = async () => {
    const code = answers[Math.min(n++, answers.length - 1)];
    if (code !== undefined) throw Object.assign(new Error(`StopPodSandbox: failed to destroy network for sandbox (code ${code})`), { code });
    return {};
  };
  return { cri: { runtime: { StopPodSandbox } } as unknown as CriClient, calls: () => n };
}

t.test('a stop that fails while the network plugin is away is retried until the pod is torn down', async (t) => {
  const r = runtime([2, 2, undefined]);
  let said = 0;
  await stopPodSandbox(r.cri, 'pod1', () => said++, 10);
  t.equal(r.calls(), 3, 'asked until it succeeded');
  t.equal(said, 1, 'said once that it retries');
});

t.test('NOT_FOUND: the pod is gone, nothing to retry', async (t) => {
  const r = runtime([5]);
  await stopPodSandbox(r.cri, 'pod1', () => t.fail('no retry'), 10);
  t.equal(r.calls(), 1);
});

t.test('bounded: past its limit the last error is thrown', async (t) => {
  const r = runtime([2]);
  await t.rejects(stopPodSandbox(r.cri, 'pod1', () => {}, 10, 50), /failed to destroy network/);
  t.ok(r.calls() > 1, `retried ${r.calls()} times first`);
});
