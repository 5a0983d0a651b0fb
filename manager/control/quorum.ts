// Would removing a voter lose quorum? The remaining voters must still have a reachable majority.
export function quorumCheck(voters: number[], removing: number, reachable: (id: number) => boolean): string | undefined {
  if (!voters.includes(removing)) return undefined;
  const rest = voters.filter((v) => v !== removing);
  if (rest.length === 0) return 'it is the last manager: the cluster would have no manager left; promote another node first';
  const up = rest.filter(reachable).length;
  const need = Math.floor(rest.length / 2) + 1;
  if (up < need) {
    return `it would lose quorum: ${rest.length} manager(s) would remain, ${up} of them reachable, and raft needs ${need}; bring the unreachable managers back (or demote those first) and retry`;
  }
  return undefined;
}
