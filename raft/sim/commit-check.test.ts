// The "commit is final" check (commit-check.ts) with the configuration each log would campaign in
// (campaign-conf.ts). The shape is seed 2134's (FINDINGS.md #4): {1,2,3} -> joint
// {3,4,5}&{1,2,3} (32) -> leave (33) -> leader 5 commits 34 with 4 and 5; node 3 lacks 34;
// removed 1 and 2 are still up with logs ending at 33.
import t from 'tap';
import { encodeConfChange } from '../core/index.js';
import { ConfChangeTransition, ConfChangeType, EntryType, type ConfState, type Entry } from '../types.js';
import { confAfter } from './campaign-conf.js';
import { commitCouldBeLost, type NodeLogs } from './commit-check.js';

const conf = (voters: number[], outgoing: number[] = []): ConfState => ({ voters, learners: [], votersOutgoing: outgoing, learnersNext: [], autoLeave: outgoing.length > 0 });
const old = conf([1, 2, 3]);
const entry = (index: number, changes: [ConfChangeType, number][] | null): Entry => ({
  term: 6,
  index,
  type: changes ? EntryType.ConfChange : EntryType.Normal,
  data: changes ? encodeConfChange({ transition: ConfChangeTransition.Auto, changes: changes.map(([type, nodeId]) => ({ type, nodeId })), context: new Uint8Array(0) }) : new Uint8Array([1]),
});
const joint = entry(32, [[ConfChangeType.AddVoter, 4], [ConfChangeType.AddVoter, 5], [ConfChangeType.RemoveNode, 1], [ConfChangeType.RemoveNode, 2]]);
const leave = entry(33, []);

t.test('confAfter applies the conf change entries in order and skips the others', (t) => {
  t.same(confAfter(old, []).voters, [1, 2, 3], 'no entries: the base');
  const j = confAfter(old, [entry(31, null), joint]);
  t.same([j.voters, j.votersOutgoing], [[3, 4, 5], [1, 2, 3]], 'joint after 32');
  const l = confAfter(old, [entry(31, null), joint, leave]);
  t.same([l.voters, l.votersOutgoing], [[3, 4, 5], []], 'left after 33');
  t.throws(() => confAfter(old, [leave]), /not joint/, 'a leave entry outside a joint config is an error, not ignored');
  t.end();
});

t.test('a node is judged in the configuration of the commit index of the log it would run with', (t) => {
  const at = (index: number) => ({ term: index > 33 ? 7 : 6, index });
  const others: NodeLogs[] = [
    { id: 1, durableConf: conf([3, 4, 5]), volatileConf: conf([3, 4, 5]), durable: at(33), volatile: at(33), durableHolds: false, volatileHolds: false },
    { id: 2, durableConf: conf([3, 4, 5]), volatileConf: conf([3, 4, 5]), durable: at(33), volatile: at(33), durableHolds: false, volatileHolds: false },
    { id: 4, durableConf: conf([3, 4, 5]), volatileConf: conf([3, 4, 5]), durable: at(34), volatile: at(34), durableHolds: true, volatileHolds: true },
    { id: 5, durableConf: conf([3, 4, 5]), volatileConf: conf([3, 4, 5]), durable: at(34), volatile: at(34), durableHolds: true, volatileHolds: true },
  ];
  // Node 3 has restored a snapshot at 33 in memory (commit 33, applied 27); its disk ends at 28
  // with commit 27. In memory it can only campaign once it is in {3,4,5}, whose voters 4 and 5 hold 34;
  // from its disk it would restart in {1,2,3} but with a log (28) older than 1's and 2's.
  const node3 = (volatileConf: ConfState): NodeLogs => ({ id: 3, durableConf: old, volatileConf, durable: { term: 6, index: 28 }, volatile: at(33), durableHolds: false, volatileHolds: false });
  t.equal(commitCouldBeLost([...others, node3(confAfter(old, [joint, leave]))]), undefined, 'the commit is final');
  // What the check did before (FINDINGS.md #4): the log in memory paired with the applied config.
  t.match(commitCouldBeLost([...others, node3(old)]), /node 3 lacks it \(its log in memory ends at 33\/6\) and could be elected by \{1,2,3\}/, 'pairing the log in memory with the applied config reports a loss that cannot happen');
  // A real hazard stays visible: had its disk kept 32 and 33 but a commit below them (what a torn
  // write of an etcd-style WAL can leave), it would restart in {1,2,3} and win 1 and 2.
  const torn: NodeLogs = { ...node3(confAfter(old, [joint, leave])), durable: at(33) };
  t.match(commitCouldBeLost([...others, torn]), /node 3 lacks it \(its durable log ends at 33\/6\) and could be elected by \{1,2,3\} in \{1,2,3\}/, 'a restart in an old configuration is still caught');
  t.end();
});
