// The calm phase's stages judged against a scripted cluster (a stand-in for the simulator's
// CalmHost: the stages only read node states and ask for reads, so the script replays the exact
// states of a run without the thousands of events that led there).
import t from 'tap';
import { Role, type ConfState, type NodeId } from '../types.js';
import { CalmPhase, type CalmHost, type CalmNode } from './calm.js';
import { Violation } from './invariants.js';
import { Prng } from './prng.js';

const conf = (voters: NodeId[]): ConfState => ({ voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false });

/** A scripted host: no faults to inject, nothing to propose or transfer; each test gives its clock,
 * its nodes and what else it scripts. */
function scriptedHost(h: Pick<CalmHost, 'now' | 'nodes' | 'maxCommitted' | 'read'> & Partial<CalmHost>): CalmHost {
  return {
    electionMs: 80,
    electionTick: 8,
    preVote: false,
    checkQuorum: false,
    quietAt: () => 0,
    isolate: () => {},
    reconnect: () => {},
    split: () => {},
    heal: () => {},
    propose: () => {},
    transfer: () => {},
    retireNonMembers: () => {},
    log: () => {},
    ...h,
  };
}

t.test('seed 59513: the reads stage does not ask a member a committed entry already removed (the alarm was the checker)', async (t) => {
  // The end state of seed 59513 (FINDINGS.md #4c): node 1, leader of term 9, committed and applied
  // entry 19 (remove voter 1) and stepped down. Node 4 won term 10 with 19 in its log but applies
  // it only at t=6 here (4027.5 ms in the run), after the cluster looked settled (4021.4 ms) with
  // 1 still in 4's applied configuration {1,3,4,5} and following 4. A read at 1 gets its ReadState
  // (index 22) but 1 never applies 22: leader 4 stops replicating to it once it applies 19.
  let now = 0;
  let leaderConf = conf([1, 3, 4, 5]);
  let confFinal = false;
  const retired = new Set<NodeId>();
  const asked: NodeId[] = [];
  const node = (id: NodeId, role: Role): CalmNode => ({ id, up: true, role, term: 10, lead: 4, conf: role === Role.Leader ? leaderConf : conf([1, 3, 4, 5]), tickMs: 10, confFinal: role === Role.Leader && confFinal });
  const host = scriptedHost({
    now: () => now,
    nodes: () => [1, 3, 4, 5].filter((id) => !retired.has(id)).map((id) => node(id, id === 4 ? Role.Leader : Role.Follower)),
    maxCommitted: () => 21,
    read: (id, done) => {
      asked.push(id);
      if (id !== 1) done(true); // served at once; node 1 never reaches the read's index
    },
    retireNonMembers: (c) => {
      const ms = new Set([...c.voters, ...c.votersOutgoing, ...c.learners, ...c.learnersNext]);
      for (const id of [1, 3, 4, 5]) if (!ms.has(id)) retired.add(id);
    },
  });
  const calm = new CalmPhase(host, new Prng(59513));
  const readsStage = 'a linearizable read answered at every member';
  let violation: Violation | null = null;
  try {
    while (!calm.done.includes(readsStage) && now < 10_000) {
      if (now === 6) {
        leaderConf = conf([3, 4, 5]); // leader 4 applies entry 19
        confFinal = true;
      }
      calm.poll();
      now++;
    }
  } catch (e) {
    if (!(e instanceof Violation)) throw e;
    violation = e;
  }
  t.equal(violation, null, 'no liveness violation');
  t.ok(calm.done.includes(readsStage), 'the reads stage finished');
  t.ok(retired.has(1), 'the removed node 1 was shut down once the leader applied its removal');
  t.same([...asked].sort(), [3, 4, 5], 'reads asked at the members of the final configuration only');
});

t.test('the settled stage still waits for a leader whose configuration is final', async (t) => {
  // A leader that never gets an entry of its term committed (confFinal stays false) is not settled.
  const host = scriptedHost({
    now: () => now,
    nodes: () => [1, 2, 3].map((id) => ({ id, up: true, role: id === 1 ? Role.Leader : Role.Follower, term: 3, lead: 1, conf: conf([1, 2, 3]), tickMs: 10, confFinal: false })),
    maxCommitted: () => 5,
    read: (_id, done) => done(true),
  });
  let now = 0;
  const calm = new CalmPhase(host, new Prng(1));
  t.throws(
    () => {
      for (; now < 10_000; now++) calm.poll();
    },
    /one leader, known by every member, joint config left: not done within 60 election timeouts/,
  );
});
