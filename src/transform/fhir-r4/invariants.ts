/**
 * The FHIR R4 invariants (severity error) that schema.ts checks, written natively rather than
 * evaluated as FHIRPath: those of the datatypes, of DomainResource, and of the resources meshd
 * reads (Appointment, Patient, Organization, Bundle). Each `holds` mirrors the FHIRPath of the
 * R4 StructureDefinition named by its key. Where FHIRPath would give "unknown" (partial dates of
 * different precision, quantities in different units), the invariant holds: we refuse only what
 * is certainly wrong.
 */

type Json = Record<string, any>;

export interface InvariantContext {
  /** Ids of the resources contained in the resource that holds this element (%rootResource). */
  containedIds(): Set<string>;
}

export interface Invariant {
  key: string;
  /** What the rule asks for, in words (from the R4 specification's human text). */
  text: string;
  /** Stated on a child element (e.g. Organization.address) but checked on its parent. */
  onParent?: boolean;
  holds(o: Json, ctx: InvariantContext): boolean;
}

const twins = new Map<string, string>();

/**
 * The name of an element's primitive extension twin (`_x` for `x`), kept once per name: a name
 * built afresh for every lookup costs more than the lookup. Only for the element names of the
 * schema and of the rules here (a fixed set), never for property names read from input.
 */
export function twinOf(name: string): string {
  let twin = twins.get(name);
  if (twin === undefined) {
    twin = `_${name}`;
    twins.set(name, twin);
  }
  return twin;
}

/** Element present, as a value or as its primitive extension twin. */
function has(o: Json | undefined, name: string): boolean {
  return o !== undefined && o !== null && (o[name] !== undefined || o[twinOf(name)] !== undefined);
}

/** A choice element (`value[x]`) present under any type: base + an upper-case letter, maybe after `_`. */
function hasChoice(o: Json, base: string): boolean {
  for (const k in o) {
    const start = k.charCodeAt(0) === 0x5f ? 1 : 0;
    const next = k.charCodeAt(start + base.length);
    if (next >= 0x41 && next <= 0x5a && k.startsWith(base, start)) return true;
  }
  return false;
}

function list(v: unknown): Json[] {
  return Array.isArray(v) ? v.filter((x) => x !== null && typeof x === 'object') : v !== null && typeof v === 'object' ? [v as Json] : [];
}

const UCUM = 'http://unitsofmeasure.org';

/**
 * -1, 0 or 1 when two FHIR date/dateTime/instant values compare with certainty, else undefined.
 * Values with a time are compared as instants; dates of equal precision as text.
 */
function compareDates(a: unknown, b: unknown): number | undefined {
  if (typeof a !== 'string' || typeof b !== 'string') return undefined;
  const timed = (s: string) => s.includes('T');
  if (timed(a) && timed(b)) {
    const x = Date.parse(a);
    const y = Date.parse(b);
    if (Number.isNaN(x) || Number.isNaN(y)) return undefined;
    return Math.sign(x - y);
  }
  if (!timed(a) && !timed(b) && a.length === b.length) return a < b ? -1 : a > b ? 1 : 0;
  // Different precisions: certain only when they differ within the shorter one.
  const n = Math.min(a.length, b.length, 10);
  const pa = a.slice(0, n);
  const pb = b.slice(0, n);
  return pa < pb ? -1 : pa > pb ? 1 : undefined;
}

/** Quantities compare only with the same unit (or none). */
function sameUnit(a: Json, b: Json): boolean {
  return (a.code ?? a.unit) === (b.code ?? b.unit) && (a.system ?? '') === (b.system ?? '');
}

const quantityFamily = (key: string, text: string, rule: (q: Json) => boolean): Invariant => ({ key, text, holds: rule });

/** Narrative div: XHTML in the XHTML namespace, without active content (a cautious reading of htmlChecks()). */
function safeXhtml(div: unknown): boolean {
  if (typeof div !== 'string') return true;
  if (!/^\s*<div\b[^>]*\bxmlns\s*=\s*["']http:\/\/www\.w3\.org\/1999\/xhtml["']/.test(div)) return false;
  return !/<\s*(script|object|applet|embed|form|iframe|frame|base|link|meta|style|input|button)\b/i.test(div) && !/\son[a-z]+\s*=/i.test(div);
}

export const INVARIANTS: readonly Invariant[] = [
  // Datatypes
  { key: 'ext-1', text: 'an extension has either a value or child extensions, not both', holds: (o) => has(o, 'extension') !== hasChoice(o, 'value') },
  { key: 'per-1', text: 'a period\'s start is not after its end', holds: (o) => (compareDates(o.start, o.end) ?? -1) <= 0 },
  {
    key: 'rng-2', text: 'a range\'s low is not above its high',
    holds: (o) => !(o.low && o.high && typeof o.low.value === 'number' && typeof o.high.value === 'number' && sameUnit(o.low, o.high) && o.low.value > o.high.value),
  },
  { key: 'rat-1', text: 'a ratio has both numerator and denominator, or neither with an extension', holds: (o) => (has(o, 'numerator') === has(o, 'denominator')) && (has(o, 'numerator') || has(o, 'extension')) },
  quantityFamily('qty-3', 'a quantity with a code has a system', (q) => !has(q, 'code') || has(q, 'system')),
  quantityFamily('age-1', 'an age with a value is coded in UCUM and positive', (q) => (has(q, 'code') || !has(q, 'value')) && (!has(q, 'system') || q.system === UCUM) && !(typeof q.value === 'number' && q.value <= 0)),
  quantityFamily('cnt-3', 'a count is coded in UCUM as "1" and is a whole number', (q) => (has(q, 'code') || !has(q, 'value')) && (!has(q, 'system') || q.system === UCUM) && (!has(q, 'code') || q.code === '1') && !(typeof q.value === 'number' && !Number.isInteger(q.value))),
  quantityFamily('dis-1', 'a distance with a value is coded in UCUM', (q) => (has(q, 'code') || !has(q, 'value')) && (!has(q, 'system') || q.system === UCUM)),
  quantityFamily('drt-1', 'a duration with a code is coded in UCUM and has a value', (q) => !has(q, 'code') || (q.system === UCUM && has(q, 'value'))),
  quantityFamily('mqty-1', 'a money quantity is coded in ISO 4217', (q) => (has(q, 'code') || !has(q, 'value')) && (!has(q, 'system') || q.system === 'urn:iso:std:iso:4217')),
  { key: 'cpt-2', text: 'a contact point with a value has a system', holds: (o) => !has(o, 'value') || has(o, 'system') },
  { key: 'att-1', text: 'an attachment with data has a contentType', holds: (o) => !has(o, 'data') || has(o, 'contentType') },
  {
    key: 'ref-1', text: 'a local reference (#id) points at a contained resource',
    holds: (o, ctx) => typeof o.reference !== 'string' || !o.reference.startsWith('#') || o.reference === '#' || ctx.containedIds().has(o.reference.slice(1)),
  },
  { key: 'txt-1', text: 'the narrative is XHTML in the XHTML namespace without active content', onParent: true, holds: (o) => safeXhtml(o.div) },
  { key: 'txt-2', text: 'the narrative has some non-whitespace content', onParent: true, holds: (o) => typeof o.div !== 'string' || /<img\b/i.test(o.div) || o.div.replace(/<[^>]*>/g, '').trim().length > 0 },
  { key: 'exp-1', text: 'an expression has an expression or a reference', holds: (o) => has(o, 'expression') || has(o, 'reference') },
  { key: 'tim-1', text: 'a repeat with a duration has a durationUnit', holds: (o) => !has(o, 'duration') || has(o, 'durationUnit') },
  { key: 'tim-2', text: 'a repeat with a period has a periodUnit', holds: (o) => !has(o, 'period') || has(o, 'periodUnit') },
  { key: 'tim-4', text: 'a repeat\'s duration is not negative', holds: (o) => !(typeof o.duration === 'number' && o.duration < 0) },
  { key: 'tim-5', text: 'a repeat\'s period is not negative', holds: (o) => !(typeof o.period === 'number' && o.period < 0) },
  { key: 'tim-6', text: 'periodMax needs period', holds: (o) => !has(o, 'periodMax') || has(o, 'period') },
  { key: 'tim-7', text: 'durationMax needs duration', holds: (o) => !has(o, 'durationMax') || has(o, 'duration') },
  { key: 'tim-8', text: 'countMax needs count', holds: (o) => !has(o, 'countMax') || has(o, 'count') },
  { key: 'tim-9', text: 'an offset needs a when that is not C, CM, CD or CV', holds: (o) => !has(o, 'offset') || (Array.isArray(o.when) && o.when.length > 0 && !o.when.some((w: unknown) => ['C', 'CM', 'CD', 'CV'].includes(String(w)))) },
  { key: 'tim-10', text: 'timeOfDay and when are not both given', holds: (o) => !(has(o, 'timeOfDay') && has(o, 'when')) },
  { key: 'drq-1', text: 'a code filter has a path or a searchParam, not both', holds: (o) => has(o, 'path') !== has(o, 'searchParam') },
  { key: 'drq-2', text: 'a date filter has a path or a searchParam, not both', holds: (o) => has(o, 'path') !== has(o, 'searchParam') },
  { key: 'trd-1', text: 'a trigger has data or timing, not both', holds: (o) => !(has(o, 'data') && hasChoice(o, 'timing')) },
  { key: 'trd-2', text: 'a trigger with a condition has data', holds: (o) => !has(o, 'condition') || has(o, 'data') },
  {
    key: 'trd-3', text: 'a named-event trigger has a name, a periodic one a timing, a data- one data',
    holds: (o) => (o.type !== 'named-event' || has(o, 'name')) && (o.type !== 'periodic' || hasChoice(o, 'timing')) && (typeof o.type !== 'string' || !o.type.startsWith('data-') || has(o, 'data')),
  },

  // DomainResource: rules on contained resources
  { key: 'dom-2', text: 'a contained resource does not itself contain resources', holds: (o) => list(o.contained).every((c) => !has(c, 'contained')) },
  {
    key: 'dom-3', text: 'every contained resource is referenced from elsewhere in the resource',
    holds: (o) => {
      const contained = list(o.contained);
      if (contained.length === 0) return true;
      const text = JSON.stringify({ ...o, contained: contained.map((c) => ({ ...c, id: undefined })) });
      return contained.every((c) => typeof c.id !== 'string' || text.includes(`"#${c.id}"`) || text.includes('"#"'));
    },
  },
  { key: 'dom-4', text: 'a contained resource has no meta.versionId or meta.lastUpdated', holds: (o) => list(o.contained).every((c) => !has(c.meta, 'versionId') && !has(c.meta, 'lastUpdated')) },
  { key: 'dom-5', text: 'a contained resource has no security labels', holds: (o) => list(o.contained).every((c) => !has(c.meta, 'security')) },

  // Resources meshd reads
  { key: 'app-1', text: 'a participant has a type or an actor', holds: (o) => has(o, 'type') || has(o, 'actor') },
  { key: 'app-2', text: 'start and end are given together or not at all', holds: (o) => has(o, 'start') === has(o, 'end') },
  { key: 'app-3', text: 'only proposed, cancelled and waitlist appointments may lack start and end', holds: (o) => (has(o, 'start') && has(o, 'end')) || ['proposed', 'cancelled', 'waitlist'].includes(o.status) },
  { key: 'app-4', text: 'a cancelation reason is only for cancelled and noshow appointments', holds: (o) => !has(o, 'cancelationReason') || ['noshow', 'cancelled'].includes(o.status) },
  { key: 'pat-1', text: 'a patient contact has a name, telecom, address or organization', holds: (o) => ['name', 'telecom', 'address', 'organization'].some((n) => has(o, n)) },
  { key: 'org-1', text: 'an organization has an identifier or a name', holds: (o) => has(o, 'identifier') || has(o, 'name') },
  { key: 'org-2', text: 'an organization\'s address is not a home address', onParent: true, holds: (o) => list(o.address).every((a) => a.use !== 'home') },
  { key: 'org-3', text: 'an organization\'s telecom is not a home contact', onParent: true, holds: (o) => list(o.telecom).every((t) => t.use !== 'home') },
  { key: 'bdl-1', text: 'total is only for a searchset or history', holds: (o) => !has(o, 'total') || ['searchset', 'history'].includes(o.type) },
  { key: 'bdl-2', text: 'entry.search is only for a searchset', holds: (o) => o.type === 'searchset' || list(o.entry).every((e) => !has(e, 'search')) },
  { key: 'bdl-3', text: 'entry.request is given exactly in a batch, transaction or history', holds: (o) => list(o.entry).every((e) => has(e, 'request') === ['batch', 'transaction', 'history'].includes(o.type)) },
  { key: 'bdl-4', text: 'entry.response is given exactly in a batch-response, transaction-response or history', holds: (o) => list(o.entry).every((e) => has(e, 'response') === ['batch-response', 'transaction-response', 'history'].includes(o.type)) },
  {
    key: 'bdl-7', text: 'fullUrl is unique (with meta.versionId) unless a history',
    holds: (o) => {
      if (o.type === 'history') return true;
      const seen = new Set<string>();
      for (const e of list(o.entry)) {
        if (typeof e.fullUrl !== 'string') continue;
        const key = `${e.fullUrl}|${String(e.resource?.meta?.versionId ?? '')}`;
        if (seen.has(key)) return false;
        seen.add(key);
      }
      return true;
    },
  },
  { key: 'bdl-9', text: 'a document has an identifier with system and value', holds: (o) => o.type !== 'document' || (has(o.identifier, 'system') && has(o.identifier, 'value')) },
  { key: 'bdl-10', text: 'a document has a timestamp', holds: (o) => o.type !== 'document' || o.timestamp !== undefined },
  { key: 'bdl-11', text: 'a document starts with a Composition', holds: (o) => o.type !== 'document' || list(o.entry)[0]?.resource?.resourceType === 'Composition' },
  { key: 'bdl-12', text: 'a message starts with a MessageHeader', holds: (o) => o.type !== 'message' || list(o.entry)[0]?.resource?.resourceType === 'MessageHeader' },
  { key: 'bdl-5', text: 'an entry has a resource, a request or a response', holds: (o) => has(o, 'resource') || has(o, 'request') || has(o, 'response') },
  { key: 'bdl-8', text: 'fullUrl is not a version-specific (/_history/) URL', holds: (o) => typeof o.fullUrl !== 'string' || !o.fullUrl.includes('/_history/') },
];

/**
 * Error-severity invariants of R4 that are deliberately not checked, with the reason. The test
 * suite holds every invariant of the types meshd reads to this list or to INVARIANTS.
 */
export const UNCHECKED: Readonly<Record<string, string>> = {
  'ele-1': 'checked for the whole document by the JSON rules walk (no empty object or array)',
  'sqty-1': 'SimpleQuantity is a profile the JSON Schema does not name; its elements are plain Quantity',
};

/**
 * Where an element sits, for invariants that look beyond it (ref-1). The holding resource is the
 * innermost resource on the path that is not itself contained.
 */
export function invariantContext(root: unknown, instancePath: string): InvariantContext {
  let ids: Set<string> | undefined;
  return {
    containedIds() {
      if (ids) return ids;
      let node: any = root;
      let holder: any = root;
      let previous = '';
      for (const raw of instancePath.split('/').slice(1)) {
        const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
        node = node?.[seg];
        if (!/^\d+$/.test(seg)) previous = seg;
        if (node && typeof node === 'object' && typeof node.resourceType === 'string' && previous !== 'contained') holder = node;
      }
      ids = containedIdsOf(holder);
      return ids;
    },
  };
}

/** The ids of the resources an object (the holder of a reference, for ref-1) contains. */
export function containedIdsOf(holder: Json | undefined): Set<string> {
  return new Set(list(holder?.contained).map((c) => String(c.id)));
}
