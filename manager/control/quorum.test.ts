// The quorum rule for demotions: the managers left after a removal need a reachable majority.
import t from 'tap';
import { quorumCheck } from './quorum.js';

const up = (ids: number[]) => (id: number) => ids.includes(id);

t.equal(quorumCheck([1, 2, 3], 3, up([1, 2, 3])), undefined, '3 -> 2, both reachable: allowed');
t.equal(quorumCheck([1, 2, 3], 3, up([1, 2])), undefined, 'removing the dead one is allowed');
t.match(quorumCheck([1, 2, 3], 2, up([1, 2])), /would lose quorum: 2 manager\(s\) would remain, 1 of them reachable, and raft needs 2/);
t.match(quorumCheck([1], 1, up([1])), /last manager/);
t.equal(quorumCheck([1, 2, 3, 4, 5], 5, up([1, 2, 3, 5])), undefined, '5 -> 4 with 3 reachable: allowed');
t.match(quorumCheck([1, 2, 3, 4, 5], 5, up([1, 2, 5])), /4 manager\(s\) would remain, 2 of them reachable, and raft needs 3/);
t.equal(quorumCheck([1, 2], 9, up([])), undefined, 'not a voter: nothing to check');
