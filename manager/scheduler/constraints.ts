// Placement constraints, as Swarm writes them: `node.id==X`, `node.hostname!=Y`,
// `node.role==worker`, `node.labels.zone==eu`. Parsed once at validation and again by the
// scheduler; a node matches when every constraint holds.

export interface Constraint {
  key: 'node.id' | 'node.hostname' | 'node.role' | 'node.label';
  /** The label's key for node.label. */
  label?: string;
  op: '==' | '!=';
  value: string;
}

export interface ConstraintNode {
  id: string;
  hostname: string;
  role: string;
  labels: Record<string, string>;
}

// The value may hold spaces but no operator characters (as in Swarm), so `a===b` or
// `a==b!=c` is an error rather than a constraint on the value `=b`.
const RE = /^\s*(node\.id|node\.hostname|node\.role|node\.labels\.([A-Za-z0-9][A-Za-z0-9._\/-]*))\s*(==|!=)\s*([^\s=!<>~](?:[^=!<>~]*[^\s=!<>~])?)\s*$/;

export class ConstraintError extends Error {
  override name = 'ConstraintError';
}

export function parseConstraint(s: string): Constraint {
  const m = RE.exec(s);
  if (!m) {
    throw new ConstraintError(`constraint ${JSON.stringify(s)} does not parse: write KEY==VALUE or KEY!=VALUE with KEY one of node.id, node.hostname, node.role, node.labels.NAME`);
  }
  const op = m[3] as '==' | '!=';
  const value = m[4]!;
  if (m[2] !== undefined) return { key: 'node.label', label: m[2], op, value };
  const key = m[1] as 'node.id' | 'node.hostname' | 'node.role';
  if (key === 'node.role' && value !== 'manager' && value !== 'worker') throw new ConstraintError(`constraint ${JSON.stringify(s)}: node.role is manager or worker, not ${JSON.stringify(value)}`);
  return { key, op, value };
}

export function constraintHolds(c: Constraint, n: ConstraintNode): boolean {
  let actual: string | undefined;
  switch (c.key) {
    case 'node.id':
      actual = n.id;
      break;
    case 'node.hostname':
      actual = n.hostname;
      break;
    case 'node.role':
      actual = n.role;
      break;
    case 'node.label':
      actual = n.labels[c.label!];
      break;
  }
  // A missing label never equals a value, and always differs from one (as in Swarm).
  return c.op === '==' ? actual === c.value : actual !== c.value;
}

export function constraintText(c: Constraint): string {
  return `${c.key === 'node.label' ? `node.labels.${c.label}` : c.key}${c.op}${c.value}`;
}
