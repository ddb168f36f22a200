import { expect } from 'chai';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { format } from '../../src/transform/fhir-r4';
import { codeIssues, findStu3, structuralIssues } from '../../src/transform/fhir-r4/validate';
import { nameUuid } from '../../src/transform/fhir-r4/write';
import type { AppointmentEvent, CanonicalRecord, PatientRegistration } from '../../src/transform/model';
import { holderOf, jsonPaths } from './support/json-paths';

const FIXTURES = join(__dirname, '..', '..', '..', 'fixtures', 'fhir');
const fixture = (name: string): Buffer => readFileSync(join(FIXTURES, name));
const canonical = (): CanonicalRecord[] => JSON.parse(fixture('canonical-records.json').toString('utf8'));

const read = (doc: unknown, options?: Record<string, unknown>) => format.read!(Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc)), options ? { options } : undefined);
const write = (records: CanonicalRecord[], options?: Record<string, unknown>) => format.write!(records, { options: { ...options }, now: () => new Date('2025-01-01T00:00:00Z') });
const json = (b: Buffer) => JSON.parse(b.toString('utf8'));

function bareAppointment(extra: Record<string, unknown> = {}) {
  return {
    resourceType: 'Appointment',
    status: 'booked',
    start: '2025-06-10T10:15:00+01:00',
    end: '2025-06-10T10:45:00+01:00',
    participant: [{ actor: { reference: '#p1' }, status: 'accepted' }],
    contained: [{ resourceType: 'Patient', id: 'p1', identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: '9991000003' }] }],
    ...extra,
  };
}

describe('fhir-r4 format', function () {
  this.timeout(20000); // first use loads the R4 definitions (~0.5 s, more on a busy machine)

  describe('round trip canonical → fhir-r4 → canonical', () => {
    it('gives back equal records through message Bundles', () => {
      const records = canonical();
      const w = write(records, { validate: 'full' });
      expect(w.errors).to.deep.equal([]);
      const r = format.read!(w.output);
      expect(r.errors).to.deep.equal([]);
      expect(r.messageCount).to.equal(records.length);
      expect(r.records.map((x) => x.record)).to.deep.equal(records);
      expect(r.records.map((x) => x.message)).to.deep.equal(records.map((_r, i) => i));
    });

    it('gives back equal patients and appointments through bare resources (output=resources)', () => {
      const records = canonical();
      const w = write(records, { output: 'resources', validate: 'full' });
      expect(w.errors).to.deep.equal([]);
      const doc = json(w.output);
      expect(doc.type).to.equal('collection');
      expect(doc.entry.some((e: any) => e.resource.resourceType === 'MessageHeader')).to.equal(false);
      const r = format.read!(w.output);
      expect(r.errors).to.deep.equal([]);
      const strip = (rec: CanonicalRecord) => ({ ...rec, message: undefined });
      expect(r.records.map((x) => strip(x.record))).to.deep.equal(records.map(strip));
    });

    it('writes a single registration as a bare Patient when output=resources', () => {
      const reg = canonical().find((r) => r.kind === 'registration')!;
      const doc = json(write([reg], { output: 'resources' }).output);
      expect(doc.resourceType).to.equal('Patient');
      expect(doc.meta.tag).to.deep.equal([{ system: 'https://fhir.meshd.dev/CodeSystem/event-kind', code: 'register' }]);
    });

    it('keeps minute precision and an assumed zone through FHIR instants', () => {
      const cancel = canonical()[1] as AppointmentEvent;
      const bundle = json(write([cancel]).output);
      const appt = bundle.entry[1].resource;
      expect(appt.start).to.equal('2025-01-20T14:00:00+00:00');
      expect(appt._start.extension[0].extension).to.deep.equal([
        { url: 'precision', valueCode: 'minute' },
        { url: 'assumedZone', valueBoolean: true },
      ]);
    });
  });

  describe('what it writes', () => {
    it('passes the R4 structural validator and our code checks, in both output modes', () => {
      for (const output of ['message', 'resources']) {
        const doc = json(write(canonical(), { output }).output);
        expect(structuralIssues(doc), output).to.deep.equal([]);
        const resources = [doc, ...doc.entry.map((e: any) => e.resource), ...doc.entry.flatMap((e: any) => (e.resource.entry ?? []).map((x: any) => x.resource))];
        for (const r of resources) expect(codeIssues(r, r.resourceType)).to.deep.equal([]);
      }
    });

    it('keeps fullUrls unique when a batch holds the same message twice (bdl-7), reproducibly', () => {
      const twice = [canonical()[0], canonical()[0]];
      const doc = json(write(twice).output);
      expect(structuralIssues(doc)).to.deep.equal([]);
      expect(new Set(doc.entry.map((e: any) => e.fullUrl)).size).to.equal(2);
      expect(doc.entry.map((e: any) => `urn:uuid:${e.resource.id}`)).to.deep.equal(doc.entry.map((e: any) => e.fullUrl));
      expect(json(write(twice).output)).to.deep.equal(doc);
    });

    it('writes a message Bundle: MessageHeader first with the event code, focus on the Appointment', () => {
      const doc = json(write([canonical()[0]]).output);
      expect(doc.resourceType).to.equal('Bundle');
      expect(doc.type).to.equal('message');
      expect(doc.identifier).to.deep.equal({ value: 'MSG-0001' });
      expect(doc.timestamp).to.equal('2025-06-01T08:30:05+01:00');
      const header = doc.entry[0].resource;
      expect(header.resourceType).to.equal('MessageHeader');
      expect(header.eventCoding).to.deep.include({ system: 'https://fhir.meshd.dev/CodeSystem/event-kind', code: 'book' });
      expect(header.focus).to.deep.equal([{ reference: doc.entry[1].fullUrl }]);
      expect(doc.entry[1].resource.resourceType).to.equal('Appointment');
      for (const e of doc.entry) expect(e.fullUrl).to.match(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    });

    it('uses the exact UK Core identifier systems, extensions and profiles', () => {
      const doc = json(write([canonical()[0]]).output);
      const patient = doc.entry.find((e: any) => e.resource.resourceType === 'Patient').resource;
      expect(patient.meta.profile).to.deep.equal(['https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient']);
      expect(patient.identifier[0]).to.deep.equal({
        system: 'https://fhir.nhs.uk/Id/nhs-number',
        value: '9991000003',
        extension: [
          {
            url: 'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus',
            valueCodeableConcept: { coding: [{ system: 'https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland', code: '01' }] },
          },
        ],
      });
      expect(patient.generalPractitioner[0]).to.deep.equal({
        type: 'Organization',
        identifier: { system: 'https://fhir.nhs.uk/Id/ods-organization-code', value: 'Y12345' },
        display: 'Synthetic Surgery',
      });
      expect(patient.extension[0].url).to.equal('https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory');
      const appt = doc.entry[1].resource;
      expect(appt.meta.profile).to.deep.equal(['https://fhir.hl7.org.uk/StructureDefinition/UKCore-Appointment']);
      expect(appt.extension.map((e: any) => e.url)).to.include.members([
        'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-BookingOrganization',
        'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeliveryChannel',
      ]);
      expect(appt.identifier.map((i: any) => i.type.coding[0].code)).to.deep.equal(['PLAC', 'FILL', 'booking-reference']);
    });

    it('is reproducible: the same records give the same bytes', () => {
      expect(write(canonical()).output.equals(write(canonical()).output)).to.equal(true);
    });

    it('keeps the restricted marking (meta.security R) and reads it back', () => {
      const reg = canonical()[2] as PatientRegistration;
      expect(reg.patient.restricted).to.equal('R');
      const doc = json(write([reg]).output);
      const patient = doc.entry.find((e: any) => e.resource.resourceType === 'Patient').resource;
      expect(patient.meta.security).to.deep.equal([{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R', display: 'restricted' }]);
      const back = format.read!(Buffer.from(JSON.stringify(doc))).records[0].record as PatientRegistration;
      expect(back.patient.restricted).to.equal('R');
    });

    it('writes a merge as Patient.link replaces', () => {
      const doc = json(write([canonical()[3]]).output);
      const patient = doc.entry[1].resource;
      expect(patient.link).to.deep.equal([
        { other: { type: 'Patient', identifier: { system: 'urn:meshd:local:RRF', value: 'MRN100099', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] }, assigner: { display: 'RRF' } } }, type: 'replaces' },
        { other: { type: 'Patient', identifier: { system: 'urn:meshd:local:RRF', value: 'MRN100098' } }, type: 'replaces' },
      ]);
    });

    it('quarantines a record it cannot write validly and writes the rest', () => {
      const records = canonical();
      const bad = structuredClone(records[0]) as AppointmentEvent;
      bad.appointment.end = undefined;
      bad.appointment.minutesDuration = undefined;
      const w = write([bad, records[1]]);
      expect(w.errors).to.have.length(1);
      expect(w.errors[0]).to.include({ code: 'FHIR_OUTPUT_INVALID', message: 0 });
      expect(w.errors[0].position).to.match(/\.end$/);
      expect(json(w.output).identifier.value).to.equal('MSG-0002');
    });

    it('does not refuse a record for a date-only event time or slot time (only the appointment times must be instants)', () => {
      const rec = structuredClone(canonical()[0]) as AppointmentEvent;
      const day = { utc: '2025-06-01T00:00:00.000Z', offset: null, precision: 'day' as const, assumedZone: true, local: '2025-06-01' };
      rec.message.recordedAt = day;
      rec.appointment.slot = { id: 'S1', start: day, end: day };
      const w = write([rec], { validate: 'full' });
      expect(w.errors).to.deep.equal([]);
      const appt = json(w.output).entry[1].resource;
      expect(appt.slot).to.deep.equal([{ type: 'Slot', identifier: { value: 'S1' } }]);
      expect(w.notes.some((n) => n.field === 'message.recordedAt')).to.equal(true);
    });

    it('computes end from start + duration, with a note', () => {
      const rec = structuredClone(canonical()[0]) as AppointmentEvent;
      rec.appointment.end = undefined;
      const w = write([rec]);
      expect(w.errors).to.deep.equal([]);
      expect(json(w.output).entry[1].resource.end).to.equal('2025-06-10T10:45:00+01:00');
      expect(w.notes.map((n) => n.code)).to.include('FHIR_END_COMPUTED');
    });

    it('drops a lone start on a cancelled appointment (allowed by app-3) with a note', () => {
      const rec = structuredClone(canonical()[1]) as AppointmentEvent;
      rec.appointment.end = undefined;
      const w = write([rec], { validate: 'full' });
      expect(w.errors).to.deep.equal([]);
      expect(json(w.output).entry[1].resource.start).to.equal(undefined);
      expect(w.notes.map((n) => n.code)).to.include('FHIR_START_DROPPED');
    });

    it('drops a cancellation reason on a booked appointment (app-4) with a note', () => {
      const rec = structuredClone(canonical()[0]) as AppointmentEvent;
      rec.appointment.cancellationReason = { text: 'x' };
      const w = write([rec]);
      expect(json(w.output).entry[1].resource.cancelationReason).to.equal(undefined);
      expect(w.notes.some((n) => n.field === 'appointment.cancellationReason')).to.equal(true);
    });

    it('writes cleared values as absent, with a note naming the fields', () => {
      const rec = structuredClone(canonical()[0]) as AppointmentEvent;
      rec.appointment.comment = { cleared: true };
      const w = write([rec]);
      expect(json(w.output).entry[1].resource.comment).to.equal(undefined);
      const note = w.notes.find((n) => n.code === 'FHIR_CLEARED_OMITTED');
      expect(note?.field).to.equal('appointment.comment');
    });

    it('marks a participant status R4 requires but the source did not give, and reads it back as not given', () => {
      const noshow = canonical()[4] as AppointmentEvent;
      expect(noshow.appointment.locations?.[0].status).to.equal(undefined);
      const appt = json(write([noshow]).output).entry[1].resource;
      const loc = appt.participant.find((p: any) => p.actor.type === 'Location');
      expect(loc.status).to.equal('accepted');
      expect(loc._status.extension[0]).to.deep.equal({ url: 'https://fhir.meshd.dev/StructureDefinition/defaulted', valueBoolean: true });
    });

    it('reports the appointments written for the ledger', () => {
      const w = write(canonical());
      expect(w.appointments[0]).to.deep.equal({ key: 'RRF|filler|FL-2001', event: 'book', status: 'booked', start: '2025-06-10T09:15:00.000Z' });
    });
  });

  describe('what it reads', () => {
    it('reads a BaRS-style message Bundle, normalising drifted UK code systems with notes', () => {
      const r = format.read!(fixture('bars-style-booking.json'));
      expect(r.errors).to.deep.equal([]);
      expect(r.records).to.have.length(1);
      const rec = r.records[0].record as AppointmentEvent;
      expect(rec.kind).to.equal('appointment');
      expect(rec.event).to.equal('book');
      expect(rec.message).to.deep.include({ messageId: '5e0c6f4a-1b2c-4d3e-8f90-a1b2c3d4e5f6', sourceEvent: 'booking-request' });
      expect(rec.message.sender).to.deep.equal({ application: 'Synthetic 111 system', organization: 'X26' });
      expect(rec.message.receiver).to.deep.equal({ organization: 'RRF' });
      expect(rec.patient?.nhsNumber).to.equal('9991086595');
      expect(rec.patient?.nhsNumberVerification).to.equal('01');
      expect(rec.patient?.gpPractice).to.equal('Y54321');
      expect(rec.patient?.ethnicCategory).to.deep.equal({ system: 'https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland', code: 'A' });
      expect(rec.appointment.practitioners?.[0].identifiers).to.deep.equal([{ system: 'https://fhir.nhs.uk/Id/sds-user-id', value: '555000111222' }]);
      expect(rec.appointment.slot?.start?.utc).to.equal('2025-03-02T10:30:00.000Z');
      expect(r.notes.filter((n) => n.code === 'FHIR_SYSTEM_NORMALISED')).to.have.length(3);
      expect(r.notes.some((n) => /Schedule/.test(n.text))).to.equal(true);
    });

    it('reads a bare Appointment with a contained Patient; event from status', () => {
      const r = read(bareAppointment({ status: 'cancelled' }));
      expect(r.errors).to.deep.equal([]);
      const rec = r.records[0].record as AppointmentEvent;
      expect(rec.event).to.equal('cancel');
      expect(rec.patient?.nhsNumber).to.equal('9991000003');
    });

    it('maps the v2 trigger in a MessageHeader to the event kind', () => {
      const doc = {
        resourceType: 'Bundle',
        type: 'message',
        timestamp: '2025-06-01T08:30:05+01:00',
        entry: [
          { fullUrl: 'urn:uuid:0b000000-0000-4000-8000-000000000001', resource: { resourceType: 'MessageHeader', eventCoding: { system: 'http://terminology.hl7.org/CodeSystem/v2-0003', code: 'S13' }, source: { endpoint: 'urn:x' }, focus: [{ reference: 'urn:uuid:0b000000-0000-4000-8000-000000000002' }] } },
          { fullUrl: 'urn:uuid:0b000000-0000-4000-8000-000000000002', resource: bareAppointment() },
        ],
      };
      const rec = read(doc).records[0].record;
      expect(rec.event).to.equal('reschedule');
      expect(rec.message.sourceEvent).to.equal('S13');
    });

    it('reads transaction entries: POST Patient → register, DELETE → delete-person', () => {
      const patient = { resourceType: 'Patient', identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: '9991098968' }] };
      const doc = {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { fullUrl: 'urn:uuid:0c000000-0000-4000-8000-000000000001', resource: patient, request: { method: 'POST', url: 'Patient' } },
          { fullUrl: 'urn:uuid:0c000000-0000-4000-8000-000000000002', resource: patient, request: { method: 'DELETE', url: 'Patient/1' } },
        ],
      };
      const r = read(doc);
      expect(r.errors).to.deep.equal([]);
      expect(r.records.map((x) => x.record.event)).to.deep.equal(['register', 'delete-person']);
    });

    it('refuses STU3 (GP Connect profile) with an error that says STU3', () => {
      const r = format.read!(fixture('stu3-appointment.json'));
      expect(r.records).to.deep.equal([]);
      expect(r.errors).to.have.length(1);
      expect(r.errors[0].code).to.equal('STU3_REFUSED');
      expect(r.errors[0].text).to.contain('STU3');
      expect(r.errors[0].position).to.equal('Appointment.meta.profile');
    });

    it('recognises STU3 by element shape when no profile says so', () => {
      expect(findStu3({ resourceType: 'MessageHeader', event: { code: 'x' } })).to.equal('MessageHeader.event');
      expect(findStu3({ resourceType: 'Appointment', reason: [{ text: 'x' }] })).to.equal('Appointment');
      expect(findStu3({ resourceType: 'Appointment', serviceCategory: { text: 'x' } })).to.equal('Appointment.serviceCategory');
      expect(findStu3(bareAppointment())).to.equal(undefined);
      const r = read({ resourceType: 'Appointment', status: 'booked', reason: [{ text: 'x' }], participant: [{ status: 'accepted', actor: { reference: 'Patient/1' } }] });
      expect(r.errors[0].text).to.contain('STU3');
    });

    it('names the path of STU3 evidence deep in a document', () => {
      const patient = { resourceType: 'Patient', meta: { profile: ['https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Patient-1'] } };
      const stu3Ext = { url: 'https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-EthnicCategory-1' };
      const doc = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: bareAppointment() }, { resource: patient }] };
      expect(findStu3(doc)).to.equal('Bundle.entry[1].resource.meta.profile');
      const ext = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient', name: [{ family: 'X' }], extension: [{ url: 'https://example.org/a' }, stu3Ext] } }] };
      expect(findStu3(ext)).to.equal('Bundle.entry[0].resource.extension[1].url');
      expect(findStu3({ resourceType: 'Bundle', entry: [{ resource: { resourceType: 'Slot', serviceCategory: { text: 'x' } } }] }, 'In')).to.equal('In.entry[0].resource.serviceCategory');
    });

    it('derives name UUIDs from the UTF-8 bytes of every part, each followed by a NUL', () => {
      const seed = createHash('sha1').update('record').digest();
      for (const parts of [[seed, 'patient'], ['ack', 'caf\u00e9 \u20ac', 'header'], [''], [Buffer.alloc(0), 'x']]) {
        const h = createHash('sha1');
        for (const p of parts) h.update(p).update('\0');
        const hex = h.digest('hex');
        const variant = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
        const expected = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
        expect(nameUuid(...parts)).to.equal(expected);
      }
    });

    it('rejects a bad NHS number naming the path, never the value', () => {
      const r = read({ resourceType: 'Patient', identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: '9992000008' }] });
      expect(r.records).to.deep.equal([]);
      expect(r.errors).to.have.length(1);
      expect(r.errors[0]).to.include({ code: 'FHIR_INVALID', message: 0, position: 'Patient.identifier[0].value' });
      expect(JSON.stringify(r.errors)).to.not.contain('9992000008');
    });

    it('rejects codes outside R4 required value sets (status "BOOKED", gender "M"), once per position', () => {
      const r = read(bareAppointment({ status: 'BOOKED' }));
      expect(r.errors.map((e) => e.position)).to.include('Appointment.status');
      expect(JSON.stringify(r.errors)).to.not.contain('BOOKED');
      const p = read({ resourceType: 'Patient', gender: 'M' });
      expect(p.errors.map((e) => e.position)).to.deep.equal(['Patient.gender']);
    });

    it('rejects an identifier system that is not an absolute URI', () => {
      const r = read({ resourceType: 'Patient', identifier: [{ system: 'NHS', value: '9991000003' }] });
      expect(r.errors.map((e) => e.position)).to.deep.equal(['Patient.identifier[0].system']);
    });

    it('reports structural errors with the JSON path (instant without offset, unknown property)', () => {
      const r = read(bareAppointment({ start: '2025-06-10T10:15:00', colour: 'blue' }));
      const positions = r.errors.map((e) => e.position);
      expect(positions).to.include('Appointment.start');
      expect(positions).to.include('Appointment.colour');
      expect(JSON.stringify(r.errors)).to.not.contain('blue');
    });

    it('quarantines one bad message in a collection of messages and reads the others', () => {
      const records = canonical().slice(0, 3);
      const doc = json(write(records).output);
      doc.entry[1].resource.entry[1].resource.status = 'rescheduled';
      const r = read(doc);
      expect(r.messageCount).to.equal(3);
      expect(r.records.map((x) => x.message)).to.deep.equal([0, 2]);
      expect(r.errors.every((e) => e.message === 1)).to.equal(true);
      expect(r.errors[0].position).to.equal('Bundle.entry[1].resource.entry[1].resource.status');
    });

    it('keeps an unresolved participant reference and writes it back as a reference', () => {
      const appt = { resourceType: 'Appointment', status: 'booked', start: '2025-06-10T10:15:00+01:00', end: '2025-06-10T10:45:00+01:00', participant: [{ actor: { reference: 'Patient/abc' }, status: 'accepted' }] };
      const r = read(appt);
      expect(r.errors).to.deep.equal([]);
      const doc = json(write(r.records.map((x) => x.record)).output);
      expect(doc.entry[1].resource.participant[0].actor.reference).to.equal('Patient/abc');
    });

    it('says nothing to convert for a resource that is not a Patient or Appointment', () => {
      const r = read({ resourceType: 'Location', name: 'Clinic' });
      expect(r.records).to.deep.equal([]);
      expect(r.errors).to.deep.equal([]);
      expect(r.notes[0].code).to.equal('FHIR_NO_RECORDS');
    });

    it('reads FHIR XML: repeats, choice types, primitive extensions and nested resources from the R4 definitions', () => {
      const r = format.read!(fixture('appointment-bundle.xml'));
      expect(r.errors).to.deep.equal([]);
      const rec = r.records[0].record as AppointmentEvent;
      expect(rec.event).to.equal('cancel');
      expect(rec.message.messageId).to.equal('XML-0001');
      expect(rec.appointment.fillerId).to.deep.equal({ system: 'urn:meshd:local:RRF', value: 'FL-3001', type: 'FILL' });
      expect(rec.appointment.minutesDuration).to.equal(20);
      expect(rec.appointment.cancellationReason).to.deep.equal({ text: 'Patient request' });
      expect(rec.patient?.names).to.deep.equal([{ family: 'Xmlperson', given: ['Gwen', 'Iris'] }]);
      expect(rec.patient?.nhsNumberVerification).to.equal('01');
      expect(rec.patient?.birthTime?.utc).to.equal('1966-05-04T02:10:00.000Z');
      expect(rec.patient?.deceased).to.equal(false);
    });

    it('refuses XML with a DOCTYPE, outside the FHIR namespace or not well-formed, and invalid JSON', () => {
      expect(read('<!DOCTYPE x [<!ENTITY a "b">]><Patient xmlns="http://hl7.org/fhir"/>').errors[0].code).to.equal('FHIR_INVALID_XML');
      expect(read('<Patient xmlns="urn:other"/>').errors[0].text).to.contain('namespace');
      expect(read('<Patient xmlns="http://hl7.org/fhir"><id value="a"></Patient>').errors[0].code).to.equal('FHIR_INVALID_XML');
      const bad = read('{\n "resourceType": "Patient",\n oops\n}');
      expect(bad.errors[0]).to.include({ code: 'FHIR_INVALID_JSON', position: 'line 3' });
    });

    it('accepts a UTF-8 BOM', () => {
      const r = format.read!(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(bareAppointment()))]));
      expect(r.errors).to.deep.equal([]);
      expect(r.records).to.have.length(1);
    });

    it('never throws on damaged input: any element replaced by any JSON value (property, fixed seed)', () => {
      const base = JSON.parse(fixture('bars-style-booking.json').toString('utf8'));
      const paths = jsonPaths(base);
      fc.assert(
        fc.property(fc.integer({ min: 0, max: paths.length - 1 }), fc.jsonValue(), fc.boolean(), (i, value, light) => {
          const doc = structuredClone(base);
          const { parent, key } = holderOf(doc, paths[i]);
          parent[key] = value;
          const r = read(doc, light ? { validate: 'light' } : undefined);
          expect(r.records.length + r.errors.length + r.notes.length).to.be.greaterThan(0);
          expect(r.errors.map((e) => e.code)).to.not.include('FHIR_UNREADABLE');
          if (r.records.length) write(r.records.map((x) => x.record));
        }),
        { seed: 424242, numRuns: 300 },
      );
    });

    it('skips the structural validator with validate=light (code checks still run)', () => {
      const r = read(bareAppointment({ colour: 'blue' }), { validate: 'light' });
      expect(r.errors).to.deep.equal([]);
      expect(read(bareAppointment({ status: 'BOOKED' }), { validate: 'light' }).errors).to.have.length(1);
    });
  });

  it('reads a collection of message Bundles one message at a time, each part that message\'s records and issues', () => {
    const messages = write(canonical()).output;
    const doc = json(messages);
    expect(doc.type).to.equal('collection');
    const bad = JSON.parse(JSON.stringify(doc));
    bad.entry[1].resource.entry[0].resource.eventCoding = 'not a Coding';
    const parts = [...format.readParts!(Buffer.from(JSON.stringify(bad)))];
    expect(parts).to.have.length(doc.entry.length);
    parts.forEach((p, i) => {
      expect(p.messageCount).to.equal(1);
      for (const r of p.records) expect(r.message).to.equal(i);
      for (const e of p.errors) expect(e.message).to.equal(i);
      expect(p.records.length > 0, `message ${i}`).to.equal(i !== 1);
    });
    expect(parts[1].errors).to.not.deep.equal([]);
  });
});
