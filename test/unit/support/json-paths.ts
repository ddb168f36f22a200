/** Helpers for property tests that damage JSON documents at any element. */

type Json = Record<string, any>;

/** Every property path in a JSON document, parents before children. */
export function jsonPaths(doc: unknown): string[][] {
  const out: string[][] = [];
  const walk = (o: unknown, p: string[]) => {
    if (o && typeof o === 'object') for (const k of Object.keys(o)) {
      out.push([...p, k]);
      walk((o as Json)[k], [...p, k]);
    }
  };
  walk(doc, []);
  return out;
}

/** The object or array holding the element at `path`, and its key there. */
export function holderOf(doc: Json, path: string[]): { parent: any; key: string } {
  let o = doc;
  for (const k of path.slice(0, -1)) o = o[k];
  return { parent: o, key: path[path.length - 1] };
}

/**
 * Damages `doc` at `path`: 'delete' removes the element, 'add' gives its holder an element no
 * FHIR type has, anything else replaces it. False when there is no object to add to.
 */
export function damage(doc: Json, path: string[], change: unknown): boolean {
  const { parent, key } = holderOf(doc, path);
  if (change === 'delete') {
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
  } else if (change === 'add') {
    if (!parent || typeof parent !== 'object' || Array.isArray(parent)) return false;
    parent.unknownElement = 'x';
  } else {
    parent[key] = change;
  }
  return true;
}
