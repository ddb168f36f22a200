/**
 * Reference resolution inside one FHIR message: Bundle entries by fullUrl and by
 * `Type/id` (absolute or relative), contained resources by `#id` within their container.
 */
type Json = Record<string, any>;

export interface Located {
  resource: Json;
  /** FHIRPath-style location, e.g. "Bundle.entry[3].resource". */
  path: string;
  /** Bundle.entry.request.method, when the entry had one (transaction/batch). */
  method?: string;
  /** Bundle.entry.fullUrl, when the resource came from a Bundle entry. */
  fullUrl?: string;
}

export class ResourceIndex {
  private readonly byKey = new Map<string, Located>();
  readonly all: Located[] = [];

  add(loc: Located, fullUrl?: string): void {
    this.all.push(loc);
    const r = loc.resource;
    if (fullUrl) {
      this.byKey.set(fullUrl, loc);
      loc.fullUrl = fullUrl;
    }
    if (typeof r.resourceType === 'string' && typeof r.id === 'string') {
      const rel = `${r.resourceType}/${r.id}`;
      if (!this.byKey.has(rel)) this.byKey.set(rel, loc);
    }
  }

  /** The resource a Reference points at, or undefined when it is not in this message. */
  resolve(ref: Json | undefined, container?: Located): Located | undefined {
    const text: unknown = ref?.reference;
    if (typeof text !== 'string' || text.length === 0) return undefined;
    if (text.startsWith('#') && container) {
      const contained: unknown = container.resource.contained;
      if (!Array.isArray(contained)) return undefined;
      const i = contained.findIndex((c: Json) => c?.id === text.slice(1));
      return i < 0 ? undefined : { resource: contained[i], path: `${container.path}.contained[${i}]` };
    }
    const direct = this.byKey.get(text);
    if (direct) return direct;
    // Absolute URL "https://server/fhir/Patient/123" or versioned "Patient/123/_history/2".
    const m = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(text);
    return m ? this.byKey.get(`${m[1]}/${m[2]}`) : undefined;
  }
}

/** The resource type a reference names, from its `type` or its `Type/id` text. */
export function referenceType(ref: Json | undefined): string | undefined {
  if (typeof ref?.type === 'string') return ref.type;
  const text: unknown = ref?.reference;
  if (typeof text !== 'string') return undefined;
  const m = /(?:^|\/)([A-Z][A-Za-z]+)\/[A-Za-z0-9\-.]{1,64}(?:\/_history\/[^/]+)?$/.exec(text);
  return m?.[1];
}
