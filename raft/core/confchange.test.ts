// The membership changer: one change at a time (simple) and all at once (joint, then leave)
// must reach the same configuration, on random change lists; plus the refusals.
import t from 'tap';
import { ConfChangeType, type ConfChangeSingle } from '../types.js';
import { enterJoint, leaveJoint, simple } from './confchange.js';
import { ConfChangeError } from './errors.js';
import { Progress } from './progress.js';
import { configFromConfState, toConfState, type TrackerConfig } from './tracker.js';
import { seeded } from './test-network.js';

const ctx = { lastIndex: 10, maxInflight: 4 };

function start(voters: number[], learners: number[]) {
  const config = configFromConfState({ voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false });
  const progress = new Map<number, Progress>();
  for (const id of [...voters, ...learners]) progress.set(id, new Progress(0, 11, 4, learners.includes(id)));
  return { config, progress };
}

function summary(c: TrackerConfig) {
  const cs = toConfState(c);
  return { voters: cs.voters, learners: cs.learners, removed: cs.removed };
}

t.test('simple one-by-one and joint all-at-once reach the same config (2,000 random cases)', (t) => {
  const rnd = seeded(7);
  const int = (n: number) => Math.floor(rnd() * n);
  let compared = 0;
  let mismatches = 0;
  for (let iter = 0; iter < 2000; iter++) {
    const ids = [1, 2, 3, 4, 5, 6, 7, 8, 9].sort(() => rnd() - 0.5);
    const voters = ids.slice(0, 1 + int(4));
    const learners = ids.slice(voters.length, voters.length + int(3));
    const changes: ConfChangeSingle[] = [];
    for (const id of ids.slice(0, 2 + int(6)).sort(() => rnd() - 0.5)) {
      changes.push({ type: [ConfChangeType.AddVoter, ConfChangeType.AddLearner, ConfChangeType.RemoveNode][int(3)], nodeId: id });
    }
    let a = start(voters, learners);
    let errA: unknown;
    try {
      for (const ch of changes) a = simple(a.config, a.progress, [ch], ctx);
    } catch (e) {
      errA = e;
    }
    let b = start(voters, learners);
    let errB: unknown;
    try {
      b = enterJoint(b.config, b.progress, true, changes, ctx);
      b = leaveJoint(b.config, b.progress);
    } catch (e) {
      errB = e;
    }
    if (errA || errB) {
      // The only legitimate refusal either way: the list removes every voter.
      for (const e of [errA, errB]) if (e && !(e instanceof ConfChangeError && /removes all voters/.test((e as Error).message))) t.fail(`unexpected error ${String(e)}`);
      continue;
    }
    compared++;
    const sa = summary(a.config);
    const sb = summary(b.config);
    if (JSON.stringify(sa) !== JSON.stringify(sb)) {
      mismatches++;
      if (mismatches < 4) t.fail(`start v${voters} l${learners} changes ${JSON.stringify(changes)}: simple ${JSON.stringify(sa)} joint ${JSON.stringify(sb)}`);
    }
    for (const [id, pr] of b.progress) {
      if (pr.isLearner !== b.config.learners.has(id)) t.fail(`progress of ${id} disagrees with the config about being a learner`);
    }
  }
  t.ok(compared > 1000, `${compared} cases compared`);
  t.equal(mismatches, 0);
  t.end();
});

t.test('refusals', (t) => {
  const s = start([1, 2, 3], []);
  t.throws(() => simple(s.config, s.progress, [{ type: ConfChangeType.AddVoter, nodeId: 4 }, { type: ConfChangeType.AddVoter, nodeId: 5 }], ctx), /more than one voter changed/);
  const j = enterJoint(s.config, s.progress, false, [{ type: ConfChangeType.AddVoter, nodeId: 4 }], ctx);
  t.throws(() => simple(j.config, j.progress, [{ type: ConfChangeType.AddLearner, nodeId: 6 }], ctx), /in a joint config/);
  t.throws(() => enterJoint(j.config, j.progress, false, [], ctx), /already joint/);
  t.throws(() => leaveJoint(s.config, s.progress), /not joint/);
  t.throws(() => simple(s.config, s.progress, [{ type: 9 as ConfChangeType, nodeId: 4 }], ctx), /unknown conf change type/);
  t.throws(() => simple(s.config, s.progress, [{ type: ConfChangeType.AddVoter, nodeId: -2 }], ctx), /positive integers/);
  t.same(toConfState(s.config).voters, [1, 2, 3], 'the input config is never modified');
  t.end();
});

t.test('demoting a voter inside a joint config makes it a learner only when the joint config is left', (t) => {
  const s = start([1, 2, 3], []);
  const j = enterJoint(s.config, s.progress, true, [{ type: ConfChangeType.AddLearner, nodeId: 3 }], ctx);
  t.same(toConfState(j.config).learnersNext, [3], 'node 3 is a voter of the outgoing half until then');
  t.equal(j.progress.get(3)!.isLearner, false);
  const l = leaveJoint(j.config, j.progress);
  t.same(toConfState(l.config).learners, [3]);
  t.equal(l.progress.get(3)!.isLearner, true);
  t.same(toConfState(l.config).removed, [], 'a demoted node is not removed');
  t.end();
});
