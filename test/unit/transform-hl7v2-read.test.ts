import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { CLEARED, SYSTEMS, type AppointmentEvent, type PatientRegistration } from '../../src/transform/model';
import { readHl7v2 } from '../../src/transform/hl7v2/read';
import { Hl7Message } from '../../src/transform/hl7v2/message';

const FIXTURES = join(__dirname, '..', '..', '..', 'fixtures', 'hl7v2');
const fixture = (name: string) => readFileSync(join(FIXTURES, name));
const reg = (r: { record: unknown }) => r.record as PatientRegistration;
const appt = (r: { record: unknown }) => r.record as AppointmentEvent;
const msg = (segs: string[]) => Buffer.from(segs.join('\r') + '\r', 'utf8');
const MSH = (type: string, id = 'T-1') => `MSH|^~\\&|PAS|RX1|EPR|Y12345|20250601091500||${type}|${id}|P|2.4`;

describe('HL7 v2 read', () => {
  describe('ADT registration (HL7 UK conventions)', () => {
    it('reads NHS number, verification, names, birth date, GP practice and GP from an A28', () => {
      const r = readHl7v2(fixture('uk-adt-a28.hl7'));
      expect(r.errors).to.deep.equal([]);
      const rec = reg(r.records[0]);
      expect(rec.event).to.equal('register');
      expect(rec.message.sender).to.deep.equal({ application: 'PAS', organization: 'RX1' });
      expect(rec.message.sentAt?.assumedZone).to.equal(true);
      expect(rec.message.sentAt?.offset).to.equal('+01:00');
      const p = rec.patient;
      expect(p.nhsNumber).to.equal('9991000003');
      expect(p.nhsNumberVerification).to.equal('01');
      expect(p.identifiers).to.deep.equal([{ system: 'urn:meshd:local:RX1', value: 'RX1000123', type: 'MR', assigner: 'RX1' }]);
      expect(p.names).to.deep.equal([{ use: 'official', family: "O'BRIEN&SMITH", given: ['Aoife', 'Mary'], prefix: ['Ms'] }]);
      expect(p.birthDate).to.equal('1925-07-04');
      expect(p.gender).to.equal('female');
      expect(p.gpPractice).to.equal('Y12345');
      expect(p.generalPractitioner).to.deep.equal({ identifiers: [{ system: SYSTEMS.gmp, value: 'G9990012' }], name: { family: 'Jones', given: ['Sam'], prefix: ['Dr'] } });
      expect(p.ethnicCategory).to.deep.equal({ system: SYSTEMS.ethnicCategory, code: 'A' });
      expect(p.restricted).to.equal('R');
      expect(p.telecom).to.deep.equal([
        { system: 'phone', value: '0113 496 0000', use: 'home' },
        { system: 'phone', value: '07700 900123', use: 'mobile' },
        { system: 'phone', value: '0113 496 0999', use: 'work' },
      ]);
    });

    it('reads "" as cleared and empty as not sent', () => {
      const r = readHl7v2(fixture('uk-batch-one-bad.hl7'));
      const p = reg(r.records[1]).patient;
      expect(p.names).to.deep.equal(CLEARED);
      expect(p.birthDate).to.deep.equal(CLEARED);
      expect(p.gender).to.deep.equal(CLEARED);
      expect(p.addresses).to.deep.equal(CLEARED);
      expect(p).to.not.have.property('telecom');
      const first = reg(r.records[0]).patient;
      expect(first).to.not.have.property('birthDate');
    });

    it('reads an A40 with several PID/MRG pairs as one merge per pair', () => {
      const r = readHl7v2(fixture('uk-adt-a40-pairs.hl7'));
      expect(r.errors).to.deep.equal([]);
      expect(r.records).to.have.length(2);
      const [a, b] = r.records.map(reg);
      expect(a.event).to.equal('merge');
      expect(a.patient.nhsNumber).to.equal('9991015833');
      expect(a.patient.mergedFrom).to.deep.equal([
        { system: SYSTEMS.nhsNumber, value: '9991023755' },
        { system: 'urn:meshd:local:RX1', value: 'RX1000999', type: 'MR', assigner: 'RX1' },
      ]);
      expect(b.patient.identifiers[0].value).to.equal('RX1000126');
      expect(b.patient.gpPractice).to.equal('Y12345');
      expect(b.patient.mergedFrom).to.deep.equal([{ system: 'urn:meshd:local:RX1', value: 'RX1000998', type: 'MR', assigner: 'RX1' }]);
    });

    it('quarantines only the bad message of a batch, naming message, position and field but no value', () => {
      const r = readHl7v2(fixture('uk-batch-one-bad.hl7'));
      expect(r.messageCount).to.equal(3);
      expect(r.records.map((x) => x.message)).to.deep.equal([0, 2]);
      expect(r.errors).to.have.length(1);
      const e = r.errors[0];
      expect([e.code, e.message, e.position, e.field]).to.deep.equal(['HL7_BAD_NHS_NUMBER', 1, 'PID-3.1', 'patient.nhsNumber']);
      expect(JSON.stringify(r.errors)).to.not.include('9991031678').and.not.include('OKAFOR').and.not.include('RX1000555');
    });

    it('reads local UK variants: NHS^HN, NHS number in PID-2, bare verification code, PD1 NAME^^CODE', () => {
      const r = readHl7v2(
        Buffer.concat([
          msg([MSH('ADT^A31^ADT_A05'), 'EVN|A31|20250601091400', 'PID|1|9991007911|RX9^^^RX1^MR||SMITH^Jo|||||||||||||||||||||||||||01', 'PD1|||Practice^^Y54321', 'PV1|1|N']),
          msg([MSH('ADT^A31^ADT_A05', 'T-2'), 'EVN|A31|20250601091400', 'PID|1||9991015833^^^^HN||SMITH^Jo', 'PV1|1|N']),
        ]),
      );
      expect(r.errors).to.deep.equal([]);
      const [a, b] = r.records.map(reg);
      expect(a.patient.nhsNumber).to.equal('9991007911');
      expect(a.patient.nhsNumberVerification).to.equal('01');
      expect(a.patient.gpPractice).to.equal('Y54321');
      expect(r.notes.map((n) => n.code)).to.include('HL7_LEGACY_FIELD');
      expect(b.patient.nhsNumber).to.equal('9991015833');
      const zu1 = readHl7v2(msg([MSH('ADT^A31^ADT_A05'), 'EVN|A31|20250601091400', 'PID|1||9991000003^^^NHS^NH', 'PV1|1|N', `ZU1|${'|'.repeat(26)}NSTS02`]));
      expect(reg(zu1.records[0]).patient.nhsNumberVerification).to.equal('02');
    });

    it('refuses a registration whose PID-3 holds no identifier, and a merge pair without MRG', () => {
      const r = readHl7v2(
        Buffer.concat([
          msg([MSH('ADT^A28^ADT_A05'), 'EVN|A28|20250601091400', 'PID|1||""||SMITH^Jo', 'PV1|1|N']),
          msg([MSH('ADT^A40^ADT_A39', 'T-2'), 'EVN|A40|20250601091400', 'PID|1||9991015833^^^NHS^NH', 'MRG|RX1^^^RX1^MR', 'PID|1||9991007911^^^NHS^NH']),
        ]),
      );
      expect(r.records).to.deep.equal([]);
      expect(r.errors.map((e) => [e.code, e.message, e.position])).to.deep.equal([
        ['HL7_MISSING_FIELD', 0, 'PID-3'],
        ['HL7_MISSING_SEGMENT', 1, 'MRG'],
      ]);
    });

    it('reads the patient data of any other ADT event as an update, with a note', () => {
      const r = readHl7v2(msg([MSH('ADT^A01^ADT_A01'), 'EVN|A01|20250601091400', 'PID|1||9991000003^^^NHS^NH||SMITH^Jo', 'PV1|1|I']));
      expect(reg(r.records[0]).event).to.equal('update');
      expect(r.notes.map((n) => n.code)).to.include('HL7_EVENT_AS_UPDATE');
    });

    it('keeps the birth day as sent and reads A29 as delete-person', () => {
      const r = readHl7v2(msg([MSH('ADT^A29^ADT_A21'), 'EVN|A29|20250601091400', 'PID|1||9991000003^^^NHS^NH||SMITH^Jo||19250704000000', 'PV1|1|N']));
      const rec = reg(r.records[0]);
      expect(rec.event).to.equal('delete-person');
      expect(rec.patient.birthDate).to.equal('1925-07-04');
      expect(rec.patient.birthTime?.utc).to.equal('1925-07-03T23:00:00.000Z');
    });

    it('refuses unsupported message types and a missing MSH-9', () => {
      const r = readHl7v2(Buffer.concat([msg([MSH('ORU^R01^ORU_R01'), 'PID|1||9991000003^^^NHS^NH']), msg(['MSH|^~\\&|PAS|RX1|||20250601||||P|2.4'])]));
      expect(r.errors.map((e) => [e.code, e.message])).to.deep.equal([
        ['HL7_UNSUPPORTED_MESSAGE', 0],
        ['HL7_MISSING_FIELD', 1],
      ]);
    });
  });

  describe('SIU appointments', () => {
    it('reads an S12 with several RGS groups into one appointment with all resources', () => {
      const r = readHl7v2(fixture('uk-siu-s12-rgs.hl7'));
      expect(r.errors).to.deep.equal([]);
      const ev = appt(r.records[0]);
      const a = ev.appointment;
      expect(ev.event).to.equal('book');
      expect(a.status).to.equal('booked');
      expect(a.fillerId).to.deep.equal({ system: 'urn:meshd:local:RX1', value: 'APPT-2001', type: 'FILL', assigner: 'RX1' });
      expect(a.start).to.deep.equal({ utc: '2025-07-14T08:30:00.000Z', offset: '+01:00', precision: 'second', assumedZone: true, local: '2025-07-14T09:30:00' });
      expect(a.minutesDuration).to.equal(30);
      expect(a.appointmentType).to.deep.equal({ coding: [{ system: SYSTEMS.appointmentReason, code: 'FOLLOWUP', display: 'Follow up' }] });
      expect(a.comment).to.equal('Bring a list of medicines.\nArrive 10 minutes early.\n[AIL] Level 2');
      expect(a.locations?.map((l) => l.identifiers)).to.deep.equal([[{ system: 'urn:meshd:local:location', value: 'OPD-3' }, { system: SYSTEMS.odsSite, value: 'RX1AB' }]]);
      expect(a.practitioners?.map((p) => [p.identifiers[0].system, p.identifiers[0].value, p.status])).to.deep.equal([
        [SYSTEMS.gmc, 'C1234567', 'accepted'],
        [SYSTEMS.nmc, 'N7654321', 'tentative'],
      ]);
      expect(ev.patient?.nhsNumber).to.equal('9991000003');
    });

    const siu = (trigger: string, status: string, reason = 'CANCEL^Cancelled') =>
      msg([MSH(`SIU^${trigger}^SIU_S12`), `SCH||APPT-1^RX1||||${reason}|||30|min|^^^202507140930+0100||||||||||||||${status}`, 'PID|1||9991000003^^^NHS^NH', 'RGS|1|A']);

    it('takes status from the trigger first (stale SCH-25 ignored), then SCH-25', () => {
      const cases: Array<[string, string, string, string]> = [
        ['S12', 'Booked', 'book', 'booked'],
        ['S12', 'Pending', 'book', 'pending'],
        ['S13', 'Booked', 'reschedule', 'booked'],
        ['S14', 'Complete', 'modify', 'fulfilled'],
        ['S15', 'Booked', 'cancel', 'cancelled'],
        ['S16', 'Booked', 'discontinue', 'cancelled'],
        ['S17', 'Booked', 'delete', 'entered-in-error'],
        ['S26', 'Booked', 'noshow', 'noshow'],
      ];
      for (const [trigger, fillerStatus, event, status] of cases) {
        const a = appt(readHl7v2(siu(trigger, fillerStatus)).records[0]);
        expect([a.event, a.appointment.status], trigger).to.deep.equal([event, status]);
      }
    });

    it('reads SCH-6 as the cancellation reason on S15, and computes end from start + duration', () => {
      const a = appt(readHl7v2(siu('S15', 'Cancelled', 'pat^Patient')).records[0]).appointment;
      expect(a.cancellationReason).to.deep.equal({ coding: [{ system: SYSTEMS.cancellationReason, code: 'pat', display: 'Patient' }] });
      expect(a.end).to.deep.include({ utc: '2025-07-14T09:00:00.000Z', local: '2025-07-14T10:00' });
    });

    it('refuses a start in the autumn overlap without an offset, naming the field', () => {
      const r = readHl7v2(msg([MSH('SIU^S12^SIU_S12'), 'SCH||APPT-1^RX1||||BOOK|||30|min|^^^202510260130|||||||||||||Booked']));
      expect(r.records).to.have.length(0);
      expect(r.errors.map((e) => [e.code, e.position, e.field])).to.deep.equal([['HL7_TIME_AMBIGUOUS', 'SCH-11.4', 'appointment.start']]);
    });

    it('refuses an appointment with no placer or filler id', () => {
      const r = readHl7v2(msg([MSH('SIU^S12^SIU_S12'), 'SCH||||||BOOK|||30|min|^^^202507140930|||||||||||||Booked']));
      expect(r.errors[0].code).to.equal('HL7_MISSING_FIELD');
      expect(r.errors[0].position).to.equal('SCH-2');
    });

    it('converts duration units (60 s is 1 minute, 2 h is 120)', () => {
      const d = (amount: string, units: string) =>
        appt(readHl7v2(msg([MSH('SIU^S12^SIU_S12'), `SCH||A^RX1||||BOOK|||${amount}|${units}||||||||||||||Booked`, 'PID|1||9991000003^^^NHS^NH'])).records[0]).appointment.minutesDuration;
      expect(d('60', 's')).to.equal(1);
      expect(d('2', 'h')).to.equal(120);
      expect(d('45', 'MIN')).to.equal(45);
    });
  });

  describe('component and subcomponent access', () => {
    const parse = (text: string) => {
      const m = Hl7Message.parse(text);
      if (!(m instanceof Hl7Message)) throw new Error(m.problem);
      return m;
    };

    it('finds each component of a repetition, empty ones and those past the end as empty', () => {
      const m = parse('MSH|^~\\&|A|B\rPID|||1^^NHS^X&Y&Z^^F\r');
      const rep = m.reps(m.first('PID')!, 3)[0];
      expect([0, 1, 2, 3, 4, 5, 6, 7].map((c) => m.rawComp(rep, c))).to.deep.equal(['', '1', '', 'NHS', 'X&Y&Z', '', 'F', '']);
      expect([1, 2, 3, 4].map((s) => m.leaf(rep, 4, s))).to.deep.equal(['X', 'Y', 'Z', '']);
      expect(m.rawComp('plain', 1)).to.equal('plain');
      expect(m.rawComp('plain', 2)).to.equal('');
      expect(m.rawComp('', 1)).to.equal('');
      expect(m.rawComp('a^', 2)).to.equal('');
      expect(m.rawComp('^b', 1)).to.equal('');
    });

    it('uses the message\'s own component separator', () => {
      const m = parse('MSH|*~\\&|A|B\rPID|||1*2^3*4\r');
      const rep = m.reps(m.first('PID')!, 3)[0];
      expect([1, 2, 3].map((c) => m.rawComp(rep, c))).to.deep.equal(['1', '2^3', '4']);
    });
  });
});
