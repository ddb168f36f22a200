/**
 * What each format in src/transform/registry.ts can do, by name only: config validation checks
 * routes against this without loading the transform modules (every command loads the config).
 * test/unit/config-formats.test.ts keeps it in step with the registry.
 */
export const FORMAT_ABILITIES: Readonly<Record<string, { read: boolean; write: boolean }>> = {
  csv: { read: true, write: true },
  'fhir-r4': { read: true, write: true },
  hl7v2: { read: true, write: true },
  'notify-csv': { read: false, write: true },
};

/** Why `name` cannot be used as a route's transform.from (read) or transform.to (write); undefined when it can. */
export function formatProblem(name: string, use: 'read' | 'write'): string | undefined {
  const known = Object.keys(FORMAT_ABILITIES).sort();
  const f = Object.prototype.hasOwnProperty.call(FORMAT_ABILITIES, name) ? FORMAT_ABILITIES[name] : undefined;
  if (!f) return `unknown format "${name}" (one of: ${known.join(', ')})`;
  if (!f[use]) return `format ${name} can only be ${use === 'read' ? 'written' : 'read'}; as ${use === 'read' ? 'from' : 'to'} use one of: ${known.filter((n) => FORMAT_ABILITIES[n][use]).join(', ')}`;
  return undefined;
}
