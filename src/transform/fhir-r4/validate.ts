/**
 * FHIR R4 validation: structure, cardinality, formats, required-binding codes and invariants via
 * schema.ts (Ajv and the FHIR R4 JSON Schema, with keywords from the R4 StructureDefinitions),
 * plus our own checks of the codes we read and write (docs/mapping-basis.md, Validation), the NHS number and the
 * UK Core identifier slices, and STU3 detection (same page, UK Core rules). Issue texts name paths and rules, never values.
 */
import { isValidNhsNumber, normaliseNhsNumber } from '../nhs-number';
import type { SchemaIssue } from './schema';
import { APPOINTMENT_STATUS, GENDER, PARTICIPANT_STATUS, STU3_PROFILE_PATTERNS, SYSTEM, SYSTEM_ALIASES } from './uk-core';

/** A path in FHIRPath style ("Bundle.entry[2].resource.start") and what is wrong there. */
export type FhirIssue = SchemaIssue;

type Json = Record<string, any>;

/** Structural issues (errors only) for one resource or Bundle: schema.ts. */
export { schemaIssues as structuralIssues } from './schema';

/** `base` followed by path segments: `[i]` for an index, `.name` for a property. */
export function segmentPath(base: string, at: ReadonlyArray<string | number>): string {
  return base + at.map((s) => (typeof s === 'number' ? `[${s}]` : `.${s}`)).join('');
}

/**
 * Evidence that a payload is FHIR STU3 rather than R4 (GP Connect, Care Connect): a profile or
 * extension URL under /STU3/, or an element shape that only STU3 has. Returns the path.
 */
export function findStu3(root: Json, basePath = typeof root.resourceType === 'string' ? root.resourceType : 'resource'): string | undefined {
  // A FHIR document is a tree (parsed JSON, or XML converted to it): no node is met twice.
  // The path below basePath as segments, made into text only for the hit: every node is visited.
  const at: Array<string | number> = [];
  const pathOf = (...more: string[]) => segmentPath(basePath, [...at, ...more]);
  const visit = (node: unknown): string | undefined => {
    if (node === null || typeof node !== 'object') return undefined;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        at.push(i);
        const hit = visit(node[i]);
        at.pop();
        if (hit) return hit;
      }
      return undefined;
    }
    const o = node as Json;
    const keys = Object.keys(o);
    // Properties are read only when present: reading absent ones of every differently shaped
    // element is what made this walk slow.
    let meta = false;
    let url = false;
    let typed = false;
    for (const k of keys) {
      if (k === 'meta') meta = true;
      else if (k === 'url') url = true;
      else if (k === 'resourceType') typed = true;
    }
    const profiles: unknown = meta ? o.meta?.profile : undefined;
    if (Array.isArray(profiles) && profiles.some((p) => typeof p === 'string' && STU3_PROFILE_PATTERNS.some((re) => re.test(p)))) return pathOf('meta', 'profile');
    if (url && typeof o.url === 'string' && /\/STU3\//.test(o.url)) return pathOf('url');
    const type: unknown = typed ? o.resourceType : undefined;
    if (type === 'MessageHeader' && o.event !== undefined && o.eventCoding === undefined) return pathOf('event');
    if (type === 'Appointment' && (o.reason !== undefined || o.indication !== undefined || o.incomingReferral !== undefined)) return pathOf();
    if ((type === 'Appointment' || type === 'Slot' || type === 'Schedule') && o.serviceCategory && !Array.isArray(o.serviceCategory)) return pathOf('serviceCategory');
    if (type === 'Patient' && o.animal !== undefined) return pathOf('animal');
    for (const k of keys) {
      const v: unknown = o[k];
      if (v && typeof v === 'object') {
        at.push(k);
        const hit = visit(v);
        at.pop();
        if (hit) return hit;
      }
    }
    return undefined;
  };
  return visit(root);
}

const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/;

/** The exact NHS URL for a known misspelling (lower-case `id`, http), else the input. */
export function normaliseSystem(system: string | undefined): string | undefined {
  if (system === undefined) return undefined;
  return SYSTEM_ALIASES[system] ?? system;
}

/**
 * Our own rules for one resource (bindings the structural validator skips, NHS number check
 * digit, UK Core identifier slices). Applies to what we read and what we write.
 */
export function codeIssues(resource: Json, path: string): FhirIssue[] {
  const out: FhirIssue[] = [];
  const type = resource.resourceType;
  if (type === 'Appointment') {
    if (resource.status !== undefined && !(APPOINTMENT_STATUS as readonly string[]).includes(resource.status)) {
      out.push({ path: `${path}.status`, text: `is not an R4 Appointment.status code (${APPOINTMENT_STATUS.join(', ')})` });
    }
    const parts: unknown = resource.participant;
    if (Array.isArray(parts)) {
      parts.forEach((p: Json, i) => {
        // Every NHS number goes through the same check, wherever it appears.
        const id = p?.actor?.identifier;
        if (normaliseSystem(id?.system) === SYSTEM.nhsNumber && !isValidNhsNumber(normaliseNhsNumber(typeof id.value === 'string' ? id.value : ''))) {
          out.push({ path: `${path}.participant[${i}].actor.identifier.value`, text: 'is not a valid NHS number (10 digits with a Modulus 11 check digit)' });
        }
        if (p?.status !== undefined && !(PARTICIPANT_STATUS as readonly string[]).includes(p.status)) {
          out.push({ path: `${path}.participant[${i}].status`, text: `is not a participant status code (${PARTICIPANT_STATUS.join(', ')})` });
        }
      });
    }
  }
  if (['Patient', 'Practitioner', 'Organization', 'Location', 'Appointment'].includes(type)) {
    const ids: unknown = resource.identifier;
    if (Array.isArray(ids)) {
      ids.forEach((id: Json, i) => {
        if (typeof id?.system === 'string' && !ABSOLUTE_URI.test(id.system)) {
          out.push({ path: `${path}.identifier[${i}].system`, text: 'identifier system must be an absolute URI (e.g. https://fhir.nhs.uk/Id/nhs-number)' });
        }
      });
    }
  }
  if (type === 'Patient' || type === 'Practitioner') {
    if (resource.gender !== undefined && !(GENDER as readonly string[]).includes(resource.gender)) {
      out.push({ path: `${path}.gender`, text: `is not an administrative gender code (${GENDER.join(', ')})` });
    }
  }
  if (type === 'Patient') {
    const ids: unknown = resource.identifier;
    if (Array.isArray(ids)) {
      let nhs = 0;
      ids.forEach((id: Json, i) => {
        if (normaliseSystem(id?.system) !== SYSTEM.nhsNumber) return;
        nhs++;
        const value = typeof id.value === 'string' ? normaliseNhsNumber(id.value) : '';
        if (!isValidNhsNumber(value)) out.push({ path: `${path}.identifier[${i}].value`, text: 'is not a valid NHS number (10 digits with a Modulus 11 check digit)' });
      });
      if (nhs > 1) out.push({ path: `${path}.identifier`, text: 'holds more than one NHS number (UK Core slice nhsNumber is 0..1)' });
    }
  }
  return out;
}
