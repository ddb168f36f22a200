/** Collects every configuration problem so the user sees them all at once. */
export interface ConfigProblem {
  /** Full dotted key, e.g. `mailboxes[0].password`. */
  key: string;
  message: string;
}

/** "N problems:" then one line per problem: the body of a config error. */
export function problemLines(problems: ConfigProblem[]): string[] {
  return [`${problems.length} problem${problems.length === 1 ? '' : 's'}:`, ...problems.map((p) => `  - ${p.key}: ${p.message}`)];
}

export class Problems {
  readonly list: ConfigProblem[] = [];
  add(key: string, message: string): undefined {
    this.list.push({ key: key || '(top level)', message });
    return undefined;
  }
}

export function keyOf(parent: string, child: string | number): string {
  if (typeof child === 'number') return `${parent}[${child}]`;
  return parent ? `${parent}.${child}` : child;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
