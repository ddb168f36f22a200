import { expect } from 'chai';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { format } from '../../src/transform/fhir-r4';
import { acceptsStructure, schemaIssues, validatorIssues } from '../../src/transform/fhir-r4/schema';
import type { CanonicalRecord } from '../../src/transform/model';
import { damage, holderOf, jsonPaths } from './support/json-paths';

/**
 * The quick yes/no structural check (schema-accept.ts) that lets schema.ts skip Ajv for valid
 * documents: it must accept what meshd writes and reads, and never accept what Ajv refuses, so
 * the issues of an invalid document are still Ajv's, all of them, in the same order.
 */

type Json = Record<string, any>;
const FIXTURES = join(__dirname, '..', '..', '..', 'fixtures', 'fhir');

function validDocuments(): Json[] {
  const records: CanonicalRecord[] = JSON.parse(readFileSync(join(FIXTURES, 'canonical-records.json'), 'utf8'));
  const written = JSON.parse(format.write!(records, { now: () => new Date('2025-01-01T00:00:00Z') }).output.toString('utf8'));
  const resources = JSON.parse(format.write!(records, { now: () => new Date('2025-01-01T00:00:00Z'), options: { output: 'resources' } }).output.toString('utf8'));
  const booking = JSON.parse(readFileSync(join(FIXTURES, 'bars-style-booking.json'), 'utf8'));
  return [booking, written, ...written.entry.map((e: Json) => e.resource), resources];
}

const appointment = (extra: Json): Json => ({
  resourceType: 'Appointment',
  status: 'booked',
  start: '2025-06-10T10:15:00+01:00',
  end: '2025-06-10T10:45:00+01:00',
  participant: [{ actor: { reference: 'Patient/1' }, status: 'accepted' }],
  ...extra,
});

describe('FHIR R4 quick structural check (schema-accept.ts)', function () {
  this.timeout(60000); // compiles the schema once

  it('accepts every document meshd writes and the BaRS-style fixture', () => {
    for (const doc of validDocuments()) {
      expect(acceptsStructure(doc), JSON.stringify(doc).slice(0, 80)).to.equal(true);
      expect(validatorIssues(doc, 'X')).to.deep.equal([]);
    }
  });

  it('refuses each kind of fault Ajv reports', () => {
    const cases: Json[] = [
      appointment({ colour: 'blue' }), // unknown property
      appointment({ start: '2025-06-10' }), // pattern
      appointment({ status: undefined }), // required (fhirRequired)
      appointment({ status: 'BOOKED' }), // required value set
      appointment({ minutesDuration: '20' }), // JSON type
      appointment({ comment: ['a'] }), // array for a single value
      appointment({ identifier: { value: 'x' } }), // single value for an array
      appointment({ end: undefined }), // app-2
      appointment({ extension: [{ url: 'https://x.example/a', valueString: 'v', valueBoolean: true }] }), // fhirChoice
      appointment({ extension: [{ url: 'https://x.example/a', valueString: 'v', _valueBoolean: { id: 'b' } }] }), // fhirChoice through a twin
      appointment({ extension: [{ url: 'https://x.example/a' }] }), // ext-1
      appointment({ participant: [{ actor: { reference: '#nobody' }, status: 'accepted' }] }), // ref-1
      appointment({ contained: [{ resourceType: 'Starship', id: 'p' }] }), // not an R4 resource type
      appointment({ contained: [{ resourceType: 'Patient', id: 'p', gender: 'M' }], participant: [{ actor: { reference: '#p' }, status: 'accepted' }] }), // inside a contained resource
      { resourceType: 'Bundle', type: 'message', entry: [{ resource: { resourceType: 'Patient' } }] }, // bdl-12
      { resourceType: 'Bundle', type: 'collection', entry: [{ resource: appointment({ status: 'x' }) }] }, // inside an entry
    ];
    for (const doc of cases) {
      const clean = JSON.parse(JSON.stringify(doc));
      expect(validatorIssues(clean, 'X'), JSON.stringify(clean)).to.not.deep.equal([]);
      expect(acceptsStructure(clean), JSON.stringify(clean)).to.equal(false);
    }
  });

  it('resolves local references against the resource holding them, not a contained one', () => {
    const patient = { resourceType: 'Patient', id: 'p' };
    const ok = appointment({ contained: [patient], participant: [{ actor: { reference: '#p' }, status: 'accepted' }] });
    expect(acceptsStructure(ok)).to.equal(true);
    expect(validatorIssues(ok, 'X')).to.deep.equal([]);
    // A reference inside a contained resource points at its holder's other contained resources.
    const practitioner = { resourceType: 'Practitioner', id: 'gp' };
    const withRole = { resourceType: 'PractitionerRole', id: 'r', practitioner: { reference: '#gp' } };
    const nested = appointment({ contained: [practitioner, withRole], participant: [{ actor: { reference: '#r' }, status: 'accepted' }] });
    expect(acceptsStructure(nested)).to.equal(true);
    expect(validatorIssues(nested, 'X')).to.deep.equal([]);
    // An ExampleScenario instance has a resourceType text: it, not the scenario, holds what is below it.
    const scenario = { resourceType: 'ExampleScenario', status: 'draft', contained: [patient] };
    const fromScenario = { ...scenario, extension: [{ url: 'https://x.example/e', valueReference: { reference: '#p' } }] };
    expect(acceptsStructure(fromScenario)).to.equal(true);
    const fromInstance = { ...scenario, instance: [{ resourceId: 'a', resourceType: 'Patient', extension: [{ url: 'https://x.example/e', valueReference: { reference: '#p' } }] }] };
    expect(acceptsStructure(fromInstance)).to.equal(false);
    expect(validatorIssues(fromInstance, 'X').map((i) => i.path)).to.deep.equal(['X.instance[0].extension[0].valueReference']);
    // In a Bundle each entry holds its own contained resources.
    const bundle = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: ok }, { resource: appointment({ participant: [{ actor: { reference: '#p' }, status: 'accepted' }] }) }] };
    expect(acceptsStructure(bundle)).to.equal(false);
    expect(validatorIssues(bundle, 'Bundle').map((i) => i.path)).to.deep.equal(['Bundle.entry[1].resource.participant[0].actor']);
  });

  it('leaves the issues of an invalid Bundle exactly as Ajv gave them before', () => {
    const doc = {
      resourceType: 'Bundle',
      type: 'message',
      entry: [
        { fullUrl: 'urn:uuid:1', resource: { resourceType: 'MessageHeader', eventCoding: { system: 'https://x.example/e', code: 'book' }, source: { endpoint: 'urn:x' }, focus: [{ reference: 'urn:uuid:2' }] } },
        {
          fullUrl: 'urn:uuid:2',
          resource: { resourceType: 'Appointment', status: 'BOOKED', start: '2025-06-10', participant: [{ actor: { reference: '#nobody' } }], colour: 'blue', extension: [{ url: 'https://x.example/a', valueString: 'v', valueBoolean: true }] },
        },
      ],
    };
    expect(acceptsStructure(doc)).to.equal(false);
    // Taken from the build before the quick check existed (65ecd1b).
    expect(schemaIssues(doc, 'Bundle')).to.deep.equal([
      { path: 'Bundle.entry[1].resource.colour', text: 'is not an element of this FHIR R4 type (unknown property)' },
      { path: 'Bundle.entry[1].resource.extension[0]', text: 'only one of valueString, valueBoolean may be present (value[x] has one type)' },
      {
        path: 'Bundle.entry[1].resource.status',
        text: 'is not a code of the required value set (proposed, pending, booked, arrived, fulfilled, cancelled, noshow, entered-in-error, checked-in, waitlist)',
      },
      { path: 'Bundle.entry[1].resource.start', text: 'is not a valid FHIR instant' },
      { path: 'Bundle.entry[1].resource.participant[0].actor', text: 'breaks invariant ref-1: a local reference (#id) points at a contained resource' },
      { path: 'Bundle.entry[1].resource.participant[0].status', text: 'is required (minimum cardinality 1)' },
      { path: 'Bundle.entry[1].resource', text: 'breaks invariant app-2: start and end are given together or not at all' },
    ]);
  });

  it('never accepts a damaged document Ajv refuses: any element replaced, removed or added (property, fixed seed)', () => {
    const docs = validDocuments();
    let refused = 0;
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.oneof(fc.constant<'delete'>('delete'), fc.constant<'add'>('add'), fc.constant<'wrap'>('wrap'), fc.jsonValue()), (d, p, change) => {
        const doc = structuredClone(docs[d % docs.length]);
        const all = jsonPaths(doc);
        const path = all[p % all.length];
        const { parent, key } = holderOf(doc, path);
        // 'wrap': the element put in an array (an array for a single value, or an array of arrays).
        if (!damage(doc, path, change === 'wrap' ? [parent[key]] : change)) return;
        const ajv = validatorIssues(doc, 'X');
        const accepted = acceptsStructure(doc);
        if (!accepted) refused++;
        expect(accepted, JSON.stringify(ajv)).to.equal(ajv.length === 0);
      }),
      { seed: Number(process.env.SEED ?? 20261201), numRuns: Number(process.env.RUNS ?? 1500) },
    );
    expect(refused).to.be.greaterThan(0);
  });
});
