// Bad input gets a clear error: config validation, the ConfChange codec, and a broken
// ConfState in storage.
import t from 'tap';
import { ConfChangeTransition, ConfChangeType } from '../types.js';
import { DEFAULTS } from './config.js';
import { decodeConfChange, encodeConfChange } from './confchange-codec.js';
import { MemoryStorage } from './memory-storage.js';
import { RawNode } from './rawnode.js';

const base = () => ({ id: 1, storage: new MemoryStorage(), random: () => 0.5 });

t.test('defaults follow DESIGN.md §7 and etcd', (t) => {
  t.equal(DEFAULTS.electionTick, 10);
  t.equal(DEFAULTS.heartbeatTick, 1);
  t.equal(DEFAULTS.preVote, true);
  t.equal(DEFAULTS.checkQuorum, true);
  t.equal(DEFAULTS.readOnly, 'safe');
  t.equal(DEFAULTS.maxSizePerMsg, 1024 * 1024);
  t.equal(DEFAULTS.maxInflightMsgs, 256);
  t.equal(DEFAULTS.maxUncommittedBytes, 0);
  t.equal(DEFAULTS.disableProposalForwarding, false);
  t.ok(Object.isFrozen(DEFAULTS));
  t.end();
});

t.test('invalid configs are refused with a message naming the setting', (t) => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ id: 0 }, /id must be a positive integer/],
    [{ id: 1.5 }, /id must be a positive integer/],
    [{ storage: undefined }, /storage must implement Storage/],
    [{ random: 4 }, /random must be a function/],
    [{ heartbeatTick: 0 }, /heartbeatTick must be a positive integer/],
    [{ electionTick: 1, heartbeatTick: 1 }, /electionTick \(1\) must be an integer greater than heartbeatTick/],
    [{ maxInflightMsgs: 0 }, /maxInflightMsgs must be a positive integer/],
    [{ maxSizePerMsg: -1 }, /maxSizePerMsg/],
    [{ maxUncommittedBytes: -5 }, /maxUncommittedBytes/],
    [{ readOnly: 'fast' }, /readOnly must be 'safe' or 'lease'/],
    [{ readOnly: 'lease', checkQuorum: false }, /requires checkQuorum/],
    [{ applied: -1 }, /applied must be an integer >= 0/],
  ];
  for (const [over, re] of bad) {
    t.throws(() => new RawNode({ ...base(), ...over } as never), re, JSON.stringify(over));
  }
  t.doesNotThrow(() => new RawNode({ ...base(), readOnly: 'lease' }), 'lease with the default checkQuorum is fine');
  t.end();
});

t.test('a random() outside [0,1) is caught', (t) => {
  t.throws(() => new RawNode({ ...base(), random: () => 1 }), /random\(\) returned 1/);
  t.end();
});

t.test('the ConfChange codec round-trips and rejects garbage', (t) => {
  const cc = {
    transition: ConfChangeTransition.JointExplicit,
    changes: [
      { type: ConfChangeType.AddVoter, nodeId: 4 },
      { type: ConfChangeType.RemoveNode, nodeId: 2 ** 40 },
      { type: ConfChangeType.AddLearner, nodeId: 7 },
    ],
    context: new TextEncoder().encode('10.0.0.4:7000'),
  };
  t.same(decodeConfChange(encodeConfChange(cc)), cc);
  const empty = { transition: ConfChangeTransition.Auto, changes: [], context: new Uint8Array(0) };
  t.same(decodeConfChange(encodeConfChange(empty)), empty);
  const good = encodeConfChange(cc);
  t.throws(() => decodeConfChange(new Uint8Array([1, 2, 3])), /too short/);
  t.throws(() => decodeConfChange(new Uint8Array(good.length).fill(0)), /bad magic/);
  const v2 = good.slice();
  v2[2] = 9;
  t.throws(() => decodeConfChange(v2), /unsupported version 9/);
  t.throws(() => decodeConfChange(good.slice(0, good.length - 1)), /context length/);
  const badType = good.slice();
  badType[8] = 77;
  t.throws(() => decodeConfChange(badType), /unknown change type 77/);
  t.throws(() => encodeConfChange({ ...cc, changes: [{ type: ConfChangeType.AddVoter, nodeId: -1 }] }), /not a non-negative integer/);
  t.throws(() => encodeConfChange({ ...cc, transition: 5 as ConfChangeTransition }), /unknown transition/);
  t.end();
});

t.test('a malformed ConfState in storage is refused at startup', (t) => {
  const cs = (over: object) => MemoryStorage.withConf({ voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false, ...over });
  t.throws(() => new RawNode({ ...base(), storage: cs({ learners: [2] }) }), /both a learner and a voter/);
  t.throws(() => new RawNode({ ...base(), storage: cs({ autoLeave: true }) }), /autoLeave set outside a joint config/);
  t.throws(() => new RawNode({ ...base(), storage: cs({ learnersNext: [3] }) }), /learnersNext 3 is not an outgoing voter/);
  t.throws(() => new RawNode({ ...base(), storage: cs({ removed: [2] }) }), /also listed as removed/);
  t.end();
});

t.test('a stored commit index beyond the log is an invariant violation', (t) => {
  const storage = new MemoryStorage();
  storage.setHardState({ term: 1, vote: 0, commit: 5 });
  t.throws(() => new RawNode({ ...base(), storage }), /raft invariant violated: stored commit 5 is out of range/);
  t.end();
});
