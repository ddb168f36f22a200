import { expect } from 'chai';
import { convert, TransformInvalidError } from '../../src/transform/convert';
import { format as fhir } from '../../src/transform/fhir-r4';
import { readHl7v2 } from '../../src/transform/hl7v2/read';
import { writeHl7v2 } from '../../src/transform/hl7v2/write';
import { format as notifyCsv } from '../../src/transform/notify-csv';
import { SYSTEMS, type AppointmentEvent, type CanonicalRecord, type PatientRegistration } from '../../src/transform/model';

/** Issue 10, "Transform fidelity": one test per case (synthetic people, 999 test-range NHS numbers). */

const now = () => new Date('2025-06-01T12:00:00Z');
const msg = (segs: string[]) => Buffer.from(segs.join('\r') + '\r', 'latin1');
const MSH = (type: string, extra = '') => `MSH|^~\\&|PAS|RX1|EPR|Y12345|20250601091500||${type}|T-1|P|2.4${extra}`;
const SCH = (status = 'Booked', timing = '^^^202507140930+0100^202507141000+0100') =>
  `SCH||APPT-1^RX1||||BOOK|||30|min|${timing}||||||||||||||${status}`;
const PID_OK = 'PID|1||9991000003^^^NHS^NH||SMITH^John||19800101|M';
const appt = (r: { record: CanonicalRecord }) => r.record as AppointmentEvent;
const reg = (r: { record: CanonicalRecord }) => r.record as PatientRegistration;
const codes = (issues: Array<{ code: string }>) => issues.map((i) => i.code);
const fhirRead = (doc: unknown) => fhir.read!(Buffer.from(JSON.stringify(doc)));
const fhirWrite = (records: CanonicalRecord[]) => fhir.write!(records, { now });
const hl7Write = (records: CanonicalRecord[], options?: Record<string, unknown>) => writeHl7v2(records, { now, ...(options ? { options } : {}) });
const NHS = SYSTEMS.nhsNumber;

function fhirAppointment(participant: unknown[], extra: Record<string, unknown> = {}) {
  return {
    resourceType: 'Appointment',
    identifier: [{ system: 'https://trust-a.example/Id/appt', value: 'A1' }],
    status: 'booked',
    start: '2025-07-14T09:30:00+01:00',
    end: '2025-07-14T10:00:00+01:00',
    participant,
    ...extra,
  };
}

function patientResource(extra: Record<string, unknown> = {}) {
  return { resourceType: 'Patient', id: 'p1', identifier: [{ system: NHS, value: '9991000003' }], name: [{ family: 'SMITH', given: ['John'] }], ...extra };
}

function collection(resources: unknown[]) {
  return { resourceType: 'Bundle', type: 'collection', entry: resources.map((resource, i) => ({ fullUrl: `urn:uuid:00000000-0000-4000-8000-00000000000${i}`, resource })) };
}

const patientRef = { actor: { reference: 'urn:uuid:00000000-0000-4000-8000-000000000001', type: 'Patient' }, status: 'accepted' };

describe('transform fidelity (issue 10)', function () {
  this.timeout(20000); // first FHIR use loads the R4 definitions

  describe('wrong patient: refuse, or carry exactly', () => {
    it('1. refuses two different NHS numbers in PID-3; the same one twice is fine', () => {
      const r = readHl7v2(msg([MSH('ADT^A31^ADT_A05'), 'EVN|A31', 'PID|1||9991000119^^^NHS^NH~9991000127^^^NHS^NH||SMITH^John']));
      expect(r.records).to.have.length(0);
      expect(r.errors.map((e) => [e.code, e.position])).to.deep.equal([['HL7_CONFLICTING_NHS_NUMBERS', 'PID-3[2].1']]);
      const same = readHl7v2(msg([MSH('ADT^A31^ADT_A05'), 'EVN|A31', 'PID|1||9991000119^^^NHS^NH~999 100 0119^^^NHS^NH||SMITH^John']));
      expect(same.errors).to.deep.equal([]);
      expect(reg(same.records[0]).patient.nhsNumber).to.equal('9991000119');
    });

    it('2. refuses an SIU whose PID-3 is empty, an SIU with no PID, and a local id with no authority', () => {
      for (const pid of ['PID|1||||SMITH^John', undefined, 'PID|1||LTH123^^^^MR||SMITH^John']) {
        const r = readHl7v2(msg([MSH('SIU^S12^SIU_S12'), SCH(), ...(pid ? [pid] : []), 'RGS|1|A']));
        expect(r.records, String(pid)).to.have.length(0);
        expect(codes(r.errors), String(pid)).to.deep.equal(['HL7_NO_PATIENT_IDENTITY']);
      }
      const ok = readHl7v2(msg([MSH('SIU^S12^SIU_S12'), SCH(), 'PID|1||LTH123^^^RX1^MR||SMITH^John', 'RGS|1|A']));
      expect(ok.errors).to.deep.equal([]);
    });

    it('2. refuses FHIR Appointments with no patient, and the HL7 writer refuses to write one', () => {
      const r = fhirRead(collection([fhirAppointment([{ actor: { reference: 'urn:uuid:00000000-0000-4000-8000-000000000009', type: 'Location' }, status: 'accepted' }])]));
      expect(codes(r.errors)).to.include('FHIR_NO_PATIENT_IDENTITY');
      expect(r.records).to.have.length(0);
      const orphan: AppointmentEvent = { kind: 'appointment', event: 'book', message: {}, appointment: { status: 'booked', fillerId: { system: 'urn:meshd:local:RX1', value: 'A1' } } };
      const w = hl7Write([orphan, { ...orphan, patient: { identifiers: [], names: [{ family: 'SMITH' }] } }]);
      expect(codes(w.errors)).to.deep.equal(['HL7_NO_PATIENT_IDENTITY', 'HL7_NO_PATIENT_IDENTITY']);
      expect(w.output.toString()).to.equal('');
    });

    it('3. checks and normalises an NHS number given in a participant reference', () => {
      const bad = fhirRead(collection([fhirAppointment([{ actor: { identifier: { system: NHS, value: '9991000118' }, type: 'Patient' }, status: 'accepted' }])]));
      expect(bad.records).to.have.length(0);
      expect(bad.errors.map((e) => e.position)).to.include('Collection.entry[0].resource.participant[0].actor.identifier.value'.replace('Collection', 'Bundle'));
      const spaced = fhirRead(collection([fhirAppointment([{ actor: { identifier: { system: NHS, value: '999 100 0119' }, type: 'Patient' }, status: 'accepted' }])]));
      expect(spaced.errors).to.deep.equal([]);
      expect(appt(spaced.records[0]).patient?.nhsNumber).to.equal('9991000119');
      const out = hl7Write(spaced.records.map((r) => r.record)).output.toString();
      expect(out).to.contain('PID|1||9991000119^^^NHS^NH');
      const doc = Buffer.from(JSON.stringify(collection([fhirAppointment([{ actor: { identifier: { system: NHS, value: '999-100-0119' }, type: 'Patient' }, status: 'accepted' }])])));
      expect(convert(doc, { from: 'fhir-r4', to: 'csv', now }).output.toString()).to.contain(',9991000119,');
      const w = hl7Write([{ ...appt(spaced.records[0]), patient: { identifiers: [], nhsNumber: '9991000118' } }]);
      expect(codes(w.errors)).to.deep.equal(['HL7_BAD_NHS_NUMBER']);
    });

    it('4. keeps identifier systems through FHIR → HL7 → FHIR (CX.4 HD with URI), and reads CX.6', () => {
      const patient = patientResource({
        identifier: [
          { system: NHS, value: '9991000003' },
          { system: 'https://trust-a.example/Id/mrn', value: 'LTH123' },
          { system: 'https://trust-b.example/Id/mrn', value: 'LTH123', assigner: { display: 'Trust B' } },
          { system: 'urn:meshd:local:RX1', value: 'RX9', assigner: { display: 'RX1' } },
        ],
      });
      const first = fhirRead(patient);
      expect(first.errors).to.deep.equal([]);
      const v2 = hl7Write(first.records.map((r) => r.record)).output.toString();
      expect(v2).to.contain('LTH123^^^&https://trust-a.example/Id/mrn&URI~LTH123^^^Trust B&https://trust-b.example/Id/mrn&URI~RX9^^^RX1');
      const back = reg(readHl7v2(Buffer.from(v2)).records[0]).patient;
      expect(back.identifiers.map((i) => [i.system, i.value, i.assigner])).to.deep.equal([
        ['https://trust-a.example/Id/mrn', 'LTH123', undefined],
        ['https://trust-b.example/Id/mrn', 'LTH123', 'Trust B'],
        ['urn:meshd:local:RX1', 'RX9', 'RX1'],
      ]);
      const doctor: AppointmentEvent = {
        kind: 'appointment',
        event: 'book',
        message: {},
        appointment: { status: 'booked', fillerId: { system: 'urn:meshd:local:RX1', value: 'A1' }, practitioners: [{ identifiers: [{ system: 'https://trust-a.example/Id/staff', value: 'S1' }] }, { identifiers: [{ system: SYSTEMS.gmc, value: 'C1234567' }] }] },
        patient: { identifiers: [], nhsNumber: '9991000003' },
      };
      const siu = hl7Write([doctor]);
      expect(siu.output.toString()).to.contain('AIP|1|A|S1^^^^^^^^&https://trust-a.example/Id/staff&URI');
      const staff = appt(readHl7v2(siu.output).records[0]).appointment.practitioners!.map((p) => p.identifiers[0].system);
      expect(staff).to.deep.equal(['https://trust-a.example/Id/staff', SYSTEMS.gmc]);
      const cx6 = readHl7v2(msg([MSH('ADT^A31^ADT_A05'), 'EVN|A31', 'PID|1||LTH123^^^^MR^RXF||SMITH^John']));
      expect(reg(cx6.records[0]).patient.identifiers[0]).to.deep.equal({ system: 'urn:meshd:local:RXF', value: 'LTH123', type: 'MR', assigner: 'RXF' });
    });

    it('5. writes a Patient.link replaced-by as the merge it describes (A40 with MRG), or refuses', () => {
      const old = patientResource({ identifier: [{ system: NHS, value: '9991000119' }], link: [{ type: 'replaced-by', other: { identifier: { system: NHS, value: '9991000127' } } }] });
      const r = fhirRead(old);
      expect(r.errors).to.deep.equal([]);
      expect(reg(r.records[0]).event).to.equal('merge');
      expect(codes(r.notes)).to.include('FHIR_SUPERSEDED_AS_MERGE');
      const v2 = hl7Write(r.records.map((x) => x.record)).output.toString();
      expect(v2).to.match(/ADT\^A40\^ADT_A39/);
      expect(v2).to.contain('PID|1||9991000127^^^NHS^NH');
      expect(v2).to.contain('MRG|9991000119^^^NHS^NH');
      const unknown = fhirRead(patientResource({ link: [{ type: 'replaced-by', other: { reference: 'Patient/elsewhere' } }] }));
      expect(codes(unknown.errors)).to.deep.equal(['FHIR_MERGE_TARGET_UNKNOWN']);
      const seeAlso = fhirRead(patientResource({ link: [{ type: 'seealso', other: { identifier: { system: NHS, value: '9991000127' } } }] }));
      expect(codes(seeAlso.notes)).to.include('FHIR_LINK_NOT_CARRIED');
    });
  });

  describe('silent clinical loss or change', () => {
    it('6. carries HL7 expiry dates (XPN.13, XAD.14) into FHIR periods', () => {
      const r = readHl7v2(msg([MSH('ADT^A31^ADT_A05'), 'EVN|A31', 'PID|1||9991000003^^^NHS^NH||JONES^Ann^^^^^L^^^^^20000101^20200101~SMITH^Ann^^^^^L||19800101|F|||1 Old Street^^LEEDS^^LS1 1AA^^H^^^^^^20000101^20190601~2 New Street^^LEEDS^^LS2 2BB^^H']));
      expect(r.errors).to.deep.equal([]);
      const f = JSON.parse(fhirWrite(r.records.map((x) => x.record)).output.toString());
      const p = f.entry.find((e: any) => e.resource.resourceType === 'Patient').resource;
      expect(p.name[0].period).to.deep.equal({ start: '2000-01-01', end: '2020-01-01' });
      expect(p.name[1].period).to.equal(undefined);
      expect(p.address[0].period).to.deep.equal({ start: '2000-01-01', end: '2019-06-01' });
    });

    it('6. never writes an old or ended FHIR name, address or phone as current in HL7; billing survives', () => {
      const r = fhirRead(
        patientResource({
          name: [{ use: 'official', family: 'SMITH', given: ['Ann'] }, { use: 'old', family: 'JONES' }, { use: 'official', family: 'BROWN', period: { end: '2019-01-01' } }],
          address: [{ use: 'billing', line: ['1 Pay Street'], postalCode: 'LS1 1AA' }, { use: 'home', line: ['2 Gone Road'], period: { start: '2001-02-03', end: '2010-01-01' } }],
          telecom: [{ system: 'phone', value: '01130000000', use: 'old' }, { system: 'phone', value: '01130000001', use: 'home' }],
        }),
      );
      expect(r.errors).to.deep.equal([]);
      const w = hl7Write(r.records.map((x) => x.record));
      const pid = w.output.toString().split('\r').find((l) => l.startsWith('PID'))!.split('|');
      expect(pid[5]).to.equal('SMITH^Ann^^^^^L~JONES^^^^^^BAD~BROWN^^^^^^BAD^^^^^^20190101');
      expect(pid[11]).to.equal('1 Pay Street^^^^LS1 1AA^^BI~2 Gone Road^^^^^^BA^^^^^^20010203^20100101');
      expect(pid[13]).to.equal('01130000001^PRN^PH');
      expect(codes(w.notes)).to.include('FIELD_NOT_CARRIED');
      const back = reg(readHl7v2(w.output).records[0]).patient;
      expect((back.names as any[]).map((n) => n.use)).to.deep.equal(['official', 'old', 'old']);
      expect((back.addresses as any[]).map((a) => a.use)).to.deep.equal(['billing', 'old']);
    });

    it('7. carries resource-group NTEs and the appointment NTE after a Z-segment', () => {
      const r = readHl7v2(
        msg([MSH('SIU^S12^SIU_S12'), SCH(), 'ZSC|1|local', 'NTE|1||BSL interpreter booked', PID_OK, 'RGS|1|A', 'AIS|1|A|ENDO^Endoscopy^RX1-SVC', 'NTE|1||Nil by mouth from midnight', 'AIL|1|A|OPD-3', 'NTE|1||Level 2']),
      );
      expect(r.errors).to.deep.equal([]);
      expect(appt(r.records[0]).appointment.comment).to.equal('BSL interpreter booked\n[AIS] Nil by mouth from midnight\n[AIL] Level 2');
      expect(codes(r.notes)).to.include('HL7_GROUP_NOTES');
      const f = JSON.parse(fhirWrite(r.records.map((x) => x.record)).output.toString());
      expect(f.entry.find((e: any) => e.resource.resourceType === 'Appointment').resource.comment).to.contain('Nil by mouth from midnight');
    });

    it('8. maps every table 0278 code; Dc is not booked and survives a round trip; an unknown code is a note, never booked', () => {
      const status = (trigger: string, code: string) => readHl7v2(msg([MSH(`SIU^${trigger}^SIU_S12`), SCH(code), PID_OK, 'RGS|1|A']));
      const table: Array<[string, string]> = [
        ['Pending', 'pending'], ['Waitlist', 'waitlist'], ['Booked', 'booked'], ['Overbook', 'booked'], ['Started', 'checked-in'], ['Complete', 'fulfilled'],
        ['Cancelled', 'cancelled'], ['Discontinued', 'cancelled'], ['Dc', 'cancelled'], ['Deleted', 'entered-in-error'], ['Blocked', 'pending'], ['Noshow', 'noshow'],
      ];
      for (const trigger of ['S12', 'S13', 'S14']) {
        for (const [code, expected] of table) expect(appt(status(trigger, code).records[0]).appointment.status, `${trigger} ${code}`).to.equal(expected);
      }
      const dc = status('S14', 'Dc');
      const out = hl7Write(dc.records.map((x) => x.record)).output.toString();
      expect(out.split('\r').find((l) => l.startsWith('SCH'))!.split('|')[25]).to.equal('Dc');
      const unknown = status('S12', 'Xyz');
      expect(appt(unknown.records[0]).appointment.status).to.equal('pending');
      expect(codes(unknown.notes)).to.include('HL7_UNKNOWN_FILLER_STATUS');
    });

    it('9. refuses a resource with a modifierExtension; notes interpreterRequired, death notification status and active: false', () => {
      const mod = fhirRead(patientResource({ modifierExtension: [{ url: 'https://example.org/not-really', valueBoolean: true }] }));
      expect(codes(mod.errors)).to.deep.equal(['FHIR_MODIFIER_EXTENSION']);
      expect(mod.errors[0].position).to.equal('Patient.modifierExtension');
      const nested = fhirRead(collection([patientResource({ name: [{ family: 'SMITH', modifierExtension: [{ url: 'https://example.org/x', valueBoolean: true }] }] })]));
      expect(codes(nested.errors)).to.include('FHIR_MODIFIER_EXTENSION');
      const noted = fhirRead(
        patientResource({
          active: false,
          extension: [
            { url: 'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSCommunication', extension: [{ url: 'language', valueCodeableConcept: { coding: [{ system: 'https://fhir.hl7.org.uk/CodeSystem/UKCore-HumanLanguage', code: 'sgn' }] } }, { url: 'interpreterRequired', valueBoolean: true }] },
            { url: 'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus', extension: [{ url: 'deathNotificationStatus', valueCodeableConcept: { coding: [{ system: 'https://fhir.hl7.org.uk/CodeSystem/UKCore-DeathNotificationStatus', code: '1' }] } }] },
          ],
        }),
      );
      expect(noted.errors).to.deep.equal([]);
      expect(codes(noted.notes)).to.include.members(['FHIR_PATIENT_INACTIVE', 'FHIR_INTERPRETER_REQUIRED', 'FHIR_DEATH_NOTIFICATION_NOT_CARRIED']);
      expect(JSON.stringify(noted.notes)).to.not.contain('SMITH');
    });
  });

  describe('valid bookings refused', () => {
    it('10. reads a duration given only in SCH-11.3, TQ1-6 or AIS-7, so the FHIR Appointment has an end', () => {
      const cases = [
        [SCH('Booked', '^^M30^202507140930+0100').replace('|30|min|', '|||'), PID_OK, 'RGS|1|A'],
        [SCH('Booked', '').replace('|30|min|', '|||'), 'TQ1|1|||||30^min|202507140930+0100', PID_OK, 'RGS|1|A'],
        [SCH('Booked', '').replace('|30|min|', '|||'), PID_OK, 'RGS|1|A', 'AIS|1|A|ENDO^Endoscopy|202507140930+0100|||30|min'],
      ];
      for (const segs of cases) {
        const out = convert(msg([MSH('SIU^S12^SIU_S12'), ...segs]), { from: 'hl7v2', to: 'fhir-r4', now });
        expect(out.errors, segs[1]).to.deep.equal([]);
        const a = JSON.parse(out.output.toString()).entry.find((e: any) => e.resource.resourceType === 'Appointment').resource;
        expect(a.end, segs[1]).to.equal('2025-07-14T10:00:00+01:00');
      }
    });
  });

  describe('lower impact', () => {
    it('11. writes a FHIR name or address given only as text into PID-5 / PID-11, with a note', () => {
      const r = fhirRead(patientResource({ name: [{ text: 'John Smith' }], address: [{ text: '1 High Street, Leeds' }] }));
      const w = hl7Write(r.records.map((x) => x.record));
      const pid = w.output.toString().split('\r').find((l) => l.startsWith('PID'))!.split('|');
      expect(pid[5]).to.equal('John Smith');
      expect(pid[11]).to.equal('1 High Street, Leeds');
      expect(w.notes.map((n) => n.field)).to.include.members(['patient.names', 'patient.addresses']);
    });

    it('12. notes the second patient of an appointment (mother and baby) instead of dropping it silently', () => {
      const baby = { ...patientResource({ id: 'p2', identifier: [{ system: NHS, value: '9991000119' }] }) };
      const r = fhirRead(collection([fhirAppointment([patientRef, { actor: { reference: 'urn:uuid:00000000-0000-4000-8000-000000000002', type: 'Patient' }, status: 'accepted' }]), patientResource(), baby]));
      expect(r.errors).to.deep.equal([]);
      expect(codes(r.notes)).to.include('FHIR_PATIENT_DROPPED');
      const v2 = readHl7v2(msg([MSH('SIU^S12^SIU_S12'), SCH(), PID_OK, 'PID|2||9991000119^^^NHS^NH', 'RGS|1|A']));
      expect(codes(v2.notes)).to.include('HL7_PATIENT_DROPPED');
    });

    it('13. writes url, sms and other telecoms with their own types, and address lines 3–5 in XAD.8', () => {
      const r = fhirRead(
        patientResource({
          telecom: [{ system: 'url', value: 'https://example.org/me' }, { system: 'sms', value: '07700900123' }, { system: 'other', value: 'x-1' }],
          address: [{ line: ['Flat 1', 'Mill House', 'Mill Lane', 'Upper Town', 'Hamlet'], city: 'LEEDS' }],
        }),
      );
      const w = hl7Write(r.records.map((x) => x.record));
      const pid = w.output.toString().split('\r').find((l) => l.startsWith('PID'))!.split('|');
      expect(pid[13]).to.equal('^NET^^https://example.org/me~07700900123^ORN^SMS~x-1^ORN^OTHER');
      expect(pid[11]).to.equal('Flat 1^Mill House^LEEDS^^^^^Mill Lane&Upper Town&Hamlet');
      const back = reg(readHl7v2(w.output).records[0]).patient;
      expect((back.telecom as any[]).map((t) => t.system)).to.deep.equal(['url', 'sms', 'other']);
      expect((back.addresses as any[])[0].lines).to.deep.equal(['Flat 1', 'Mill House', 'Mill Lane', 'Upper Town', 'Hamlet']);
    });

    it("14. decodes MSH-18 CP1252 as Windows-1252 (O'BRIEN with a curly apostrophe)", () => {
      const head = Buffer.from(`${MSH('ADT^A31^ADT_A05', '||||||CP1252')}\rEVN|A31\rPID|1||9991000003^^^NHS^NH||O`, 'latin1');
      const r = readHl7v2(Buffer.concat([head, Buffer.from([0x92]), Buffer.from('BRIEN^Aoife\r', 'latin1')]));
      expect(r.errors).to.deep.equal([]);
      expect((reg(r.records[0]).patient.names as any[])[0].family).to.equal('O\u2019BRIEN');
    });

    it('15. notes an NH-typed identifier under a trust authority (read as local, not as an NHS number)', () => {
      const r = readHl7v2(msg([MSH('ADT^A31^ADT_A05'), 'EVN|A31', 'PID|1||9991000003^^^RX1^NH~M1^^^RX1^MR||SMITH^John']));
      expect(codes(r.notes)).to.include('HL7_NHS_TYPE_LOCAL_AUTHORITY');
      expect(reg(r.records[0]).patient.nhsNumber).to.equal(undefined);
    });

    it('16. refuses an end before the start (HL7 and FHIR), and notes a duration that contradicts them', () => {
      const v2 = readHl7v2(msg([MSH('SIU^S12^SIU_S12'), SCH('Booked', '^^^202507141000+0100^202507140930+0100'), PID_OK, 'RGS|1|A']));
      expect(codes(v2.errors)).to.deep.equal(['HL7_END_BEFORE_START']);
      const mismatch = readHl7v2(msg([MSH('SIU^S12^SIU_S12'), SCH('Booked', '^^^202507140930+0100^202507141030+0100'), PID_OK, 'RGS|1|A']));
      expect(codes(mismatch.notes)).to.include('HL7_DURATION_MISMATCH');
      const f = fhirRead(collection([fhirAppointment([patientRef], { start: '2025-07-14T10:00:00+01:00', end: '2025-07-14T09:30:00+01:00' }), patientResource()]));
      expect(codes(f.errors)).to.include('FHIR_END_BEFORE_START');
    });

    it('16. a computed end across the clock change takes the new UK offset', () => {
      const r = readHl7v2(msg([MSH('SIU^S12^SIU_S12'), SCH('Booked', '^^^202510260030+0100'), PID_OK, 'RGS|1|A'].map((s) => s.replace('|30|min|', '|120|min|'))));
      expect(r.errors).to.deep.equal([]);
      const end = appt(r.records[0]).appointment.end as { local: string; offset: string };
      expect([end.local, end.offset]).to.deep.equal(['2025-10-26T01:30', '+00:00']);
    });

    it('16. notes an unsupported version option instead of silently writing 2.4', () => {
      const r = readHl7v2(msg([MSH('ADT^A31^ADT_A05'), 'EVN|A31', PID_OK]));
      const w = hl7Write(r.records.map((x) => x.record), { version: '9.9' });
      expect(codes(w.notes)).to.include('HL7_VERSION_UNSUPPORTED');
      expect(w.output.toString()).to.match(/\|P\|2\.4/);
    });

    it('16. when no message converts, transform throws rather than returning an empty collection', () => {
      expect(() => convert(msg([MSH('SIU^S12^SIU_S12'), SCH(), 'RGS|1|A']), { from: 'hl7v2', to: 'fhir-r4', now })).to.throw(TransformInvalidError);
    });
  });

  describe('CSV spreadsheet safety (hardening)', () => {
    it('notify-csv guards formula-like personalisation by default; profile=raw opts out', () => {
      const ev: AppointmentEvent = {
        kind: 'appointment',
        event: 'book',
        message: {},
        appointment: { status: 'booked', fillerId: { system: 'urn:meshd:local:RX1', value: 'A1' }, start: readStart(), locations: [{ identifiers: [], name: '=HYPERLINK("x")' }] },
        patient: { identifiers: [], nhsNumber: '9991000003' },
      };
      const safe = notifyCsv.write!([ev], { options: { personalisation: 'location' } });
      expect(safe.output.toString()).to.contain(`"'=HYPERLINK(""x"")"`);
      const raw = notifyCsv.write!([ev], { options: { personalisation: 'location', profile: 'raw' } });
      expect(raw.output.toString()).to.contain(`"=HYPERLINK(""x"")"`);
      expect(raw.output.toString()).to.not.contain("'=");
    });
  });
});

function readStart() {
  const r = readHl7v2(msg([MSH('SIU^S12^SIU_S12'), SCH(), PID_OK, 'RGS|1|A']));
  return appt(r.records[0]).appointment.start;
}
