import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { businessIdHl7, payloadFacts } from '../../src/transform/business';
import { convert } from '../../src/transform/convert';
import { writeCsv } from '../../src/transform/csv';
import { writeFhirR4 } from '../../src/transform/fhir-r4';
import { writeHl7v2 } from '../../src/transform/hl7v2/write';
import { MRN_KEY, NHS, adt, appointmentRecord, hl7, instant, now, sha256 } from './support/business-fixtures';

const SUMMER_SENT = instant('2026-06-21T08:30:00.000Z', '2026-06-21T09:30:00', '+01:00');

function fhirDoc(record = appointmentRecord({ sentAt: SUMMER_SENT })): any {
  const w = writeFhirR4([record], { now });
  expect(w.errors).to.deep.equal([]);
  return JSON.parse(w.output.toString('utf8'));
}
const json = (doc: unknown) => Buffer.from(JSON.stringify(doc), 'utf8');

describe('payloadFacts: business identity, event time and ordering keys', () => {
  describe('FHIR R4', () => {
    it('takes MessageHeader.id as the business id and Bundle.timestamp (+01:00) as the event time in UTC', () => {
      const doc = fhirDoc();
      expect(doc.timestamp).to.equal('2026-06-21T09:30:00+01:00');
      const f = payloadFacts(json(doc))!;
      expect(f.format).to.equal('fhir-r4');
      expect(f.businessId).to.equal(doc.entry[0].resource.id).and.to.be.a('string');
      expect(f.eventTime).to.equal('2026-06-21T08:30:00.000Z');
      expect(f.messages).to.have.length(1);
      expect(f.messages[0].keys).to.deep.equal(['appointment:RX1|filler|APPT-1']);
    });

    it('reads a timestamp in Z', () => {
      const doc = fhirDoc();
      doc.timestamp = '2026-12-21T08:30:00Z';
      expect(payloadFacts(json(doc))!.eventTime).to.equal('2026-12-21T08:30:00.000Z');
    });

    it('falls back to MessageHeader meta.lastUpdated, then to the focus resource meta.lastUpdated, else has none', () => {
      const doc = fhirDoc();
      delete doc.timestamp;
      doc.entry[0].resource.meta = { lastUpdated: '2026-06-21T10:00:00+01:00' };
      const appointment = doc.entry.find((e: any) => e.resource.resourceType === 'Appointment').resource;
      appointment.meta.lastUpdated = '2026-06-20T10:00:00.000Z';
      expect(payloadFacts(json(doc))!.eventTime).to.equal('2026-06-21T09:00:00.000Z');
      delete doc.entry[0].resource.meta;
      expect(payloadFacts(json(doc))!.eventTime).to.equal('2026-06-20T10:00:00.000Z');
      delete appointment.meta.lastUpdated;
      const f = payloadFacts(json(doc))!;
      expect(f.eventTime).to.equal(undefined);
      expect(f.messages[0].eventTime).to.equal(undefined);
      expect(f.businessId).to.equal(doc.entry[0].resource.id);
    });

    it('uses Bundle.id when the MessageHeader has no id', () => {
      const doc = fhirDoc();
      delete doc.entry[0].resource.id;
      expect(payloadFacts(json(doc))!.businessId).to.equal(doc.id);
    });

    it('keys an appointment by the appointment alone, whatever its patient (another appointment of theirs is ordered apart)', () => {
      const f = payloadFacts(json(fhirDoc(appointmentRecord({ verified: false, sentAt: SUMMER_SENT }))))!;
      expect(f.messages[0].keys).to.deep.equal(['appointment:RX1|filler|APPT-1']);
    });

    it('gives a Bundle of several message Bundles the outer Bundle id and the latest event time', () => {
      const later = instant('2026-06-22T08:30:00.000Z', '2026-06-22T09:30:00', '+01:00');
      const w = writeFhirR4([appointmentRecord({ sentAt: SUMMER_SENT }), appointmentRecord({ sentAt: later, filler: 'APPT-2' })], { now });
      const doc = JSON.parse(w.output.toString('utf8'));
      const f = payloadFacts(w.output)!;
      expect(f.messages).to.have.length(2);
      expect(f.businessId).to.equal(doc.id);
      expect(f.eventTime).to.equal('2026-06-22T08:30:00.000Z');
      expect(f.messages.map((m) => m.id)).to.deep.equal(doc.entry.map((e: any) => e.resource.entry[0].resource.id));
    });
  });

  describe('HL7 v2', () => {
    it('qualifies MSH-10 by MSH-3/MSH-4 (businessIdHl7), escaping the separator inside a part', () => {
      const f = payloadFacts(hl7(adt({ control: 'CTRL-1', evn2: '20260621093000+0100' })))!;
      expect(f.format).to.equal('hl7v2');
      expect(f.businessId).to.equal('PAS|RX1|CTRL-1').and.to.equal(businessIdHl7('CTRL-1', 'PAS', 'RX1'));
      expect(businessIdHl7('A|B', 'P', undefined)).to.equal('P||A%7CB');
      expect(businessIdHl7('A%7CB', 'P')).to.not.equal(businessIdHl7('A|B', 'P'));
    });

    const cases: Array<[string, { msh7?: string; evn2?: string | null }, string | undefined]> = [
      ['EVN-2 with an offset in summer', { evn2: '20260621093000+0100', msh7: '20260621120000' }, '2026-06-21T08:30:00.000Z'],
      ['EVN-2 without an offset in summer (BST)', { evn2: '20260621093000', msh7: '20260621120000' }, '2026-06-21T08:30:00.000Z'],
      ['EVN-2 with an offset in winter', { evn2: '20261221093000+0000' }, '2026-12-21T09:30:00.000Z'],
      ['EVN-2 without an offset in winter (GMT)', { evn2: '20261221093000' }, '2026-12-21T09:30:00.000Z'],
      ['MSH-7 when there is no EVN segment', { evn2: null, msh7: '20260621100000' }, '2026-06-21T09:00:00.000Z'],
      ['MSH-7 when EVN-2 is empty', { evn2: '', msh7: '20261221100000' }, '2026-12-21T10:00:00.000Z'],
      ['nothing when neither is there', { evn2: null }, undefined],
    ];
    for (const [name, o, expected] of cases) {
      it(`event time: ${name}`, () => {
        const f = payloadFacts(hl7(adt(o)))!;
        expect(f.eventTime).to.equal(expected);
        expect(f.businessId).to.equal('PAS|RX1|CTRL-1');
      });
    }

    it('keys a verified NHS number (NSTS01), else the local MRN', () => {
      expect(payloadFacts(hl7(adt({})))!.messages[0].keys).to.deep.equal([`patient:nhs:${NHS}`]);
      expect(payloadFacts(hl7(adt({ verified: false })))!.messages[0].keys).to.deep.equal([MRN_KEY]);
      expect(payloadFacts(hl7(adt({ verified: false, pid3: `${NHS}^^^NHS^NH` })))!.messages[0].keys).to.deep.equal([]);
    });

    it('keys an SIU by its appointment', () => {
      const w = writeHl7v2([appointmentRecord({ messageId: 'S-1' })], { now });
      const f = payloadFacts(w.output)!;
      expect(f.businessId).to.equal('PAS|RX1|S-1');
      expect(f.messages[0].keys).to.deep.equal(['appointment:RX1|filler|APPT-1']);
    });

    it('still finds the id of a message the reader refuses (bad NHS number check digit)', () => {
      const f = payloadFacts(hl7(adt({ control: 'BAD-1', pid3: '9991000004^^^NHS^NH', evn2: '20260621093000' })))!;
      expect(f.businessId).to.equal('PAS|RX1|BAD-1');
      expect(f.eventTime).to.equal('2026-06-21T08:30:00.000Z');
      expect(f.messages[0].keys).to.deep.equal([]);
    });

    it('gives a batch without a batch control id the hash of its message ids, and the latest event time', () => {
      const batch = Buffer.concat([
        Buffer.from('FHS|^~\\&|PAS|RX1\rBHS|^~\\&|PAS|RX1\r'),
        hl7(adt({ control: 'B-1', evn2: '20260621093000' }), adt({ control: 'B-2', evn2: '20260622093000' })),
        Buffer.from('BTS|2\rFTS|1\r'),
      ]);
      const f = payloadFacts(batch)!;
      expect(f.messages.map((m) => m.id)).to.deep.equal(['PAS|RX1|B-1', 'PAS|RX1|B-2']);
      expect(f.businessId).to.equal('batch:' + sha256('PAS|RX1|B-1\nPAS|RX1|B-2'));
      expect(f.eventTime).to.equal('2026-06-22T08:30:00.000Z');
    });

    it('gives a batch its BHS-11 batch control id (qualified like MSH-10) when it has one', () => {
      const batch = Buffer.concat([Buffer.from('BHS|^~\\&|PAS|RX1|||20260621||||BATCH-7\r'), hl7(adt({ control: 'B-1' }), adt({ control: 'B-2' })), Buffer.from('BTS|2\r')]);
      expect(payloadFacts(batch)!.businessId).to.equal('PAS|RX1|BATCH-7');
    });

    it('has no batch id when a message of the batch has none', () => {
      const f = payloadFacts(hl7(adt({ control: 'B-1' }), adt({ control: '' })))!;
      expect(f.messages).to.have.length(2);
      expect(f.businessId).to.equal(undefined);
    });
  });

  describe('CSV', () => {
    const HEADER = 'schema_version,event,message_id,recorded_at,sent_at,nhs_number,nhs_number_status,mrn,mrn_authority,filler_id,appointment_authority,start\r\n';
    const row = (id: string, recorded: string, sent = '', status = '01') => `1,book,${id},${recorded},${sent},${NHS},${status},RX1000123,RX1,APPT-1,RX1,2026-07-01T09:00:00+01:00\r\n`;

    it('takes the message_id column as the business id and recorded_at as the event time', () => {
      const f = payloadFacts(Buffer.from(HEADER + row('CSV-1', '2026-06-21T09:30:00+01:00', '2026-06-21T12:00:00+01:00')), 'csv')!;
      expect(f.format).to.equal('csv');
      expect(f.businessId).to.equal('CSV-1');
      expect(f.eventTime).to.equal('2026-06-21T08:30:00.000Z');
      expect(f.messages[0].keys).to.deep.equal(['appointment:|filler|APPT-1']);
    });

    it('falls back to sent_at for the event time', () => {
      const f = payloadFacts(Buffer.from(HEADER + row('CSV-1', '', '2026-12-21T09:30:00Z', '02')), 'csv')!;
      expect(f.eventTime).to.equal('2026-12-21T09:30:00.000Z');
      expect(f.messages[0].keys).to.deep.equal(['appointment:|filler|APPT-1']);
    });

    it('has neither id nor event time without those columns', () => {
      const f = payloadFacts(Buffer.from(`event,nhs_number,filler_id\r\nbook,${NHS},APPT-1\r\n`), 'csv')!;
      expect(f.messages).to.have.length(1);
      expect(f.businessId).to.equal(undefined);
      expect(f.eventTime).to.equal(undefined);
    });

    it('gives a file of several rows the hash of their ids and the latest event time', () => {
      const f = payloadFacts(Buffer.from(HEADER + row('CSV-1', '2026-06-21T09:30:00+01:00') + row('CSV-2', '2026-06-20T09:30:00+01:00')), 'csv')!;
      expect(f.businessId).to.equal('batch:' + sha256('CSV-1\nCSV-2'));
      expect(f.eventTime).to.equal('2026-06-21T08:30:00.000Z');
    });
  });

  describe('sniffing and hostile input', () => {
    it('sniffs HL7 v2 after a BOM and whitespace (MSH, FHS or BHS first), FHIR by its resourceType, CSV only when named', () => {
      expect(payloadFacts(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('\r\n  '), hl7(adt({}))]))?.format).to.equal('hl7v2');
      expect(payloadFacts(Buffer.from('BHS|^~\\&|PAS|RX1\r' + adt({})))?.format).to.equal('hl7v2');
      expect(payloadFacts(Buffer.from(' \n'.repeat(100) + JSON.stringify(fhirDoc())))?.format).to.equal('fhir-r4');
      expect(payloadFacts(Buffer.from('\x0b' + adt({}) + '\x1c\r'))?.format).to.equal('hl7v2');
      const csv = writeCsv([appointmentRecord({ messageId: 'CSV-9' })], { now }).output;
      expect(payloadFacts(csv)).to.equal(undefined);
      expect(payloadFacts(csv, 'csv')?.businessId).to.equal('CSV-9');
      expect(payloadFacts(Buffer.from('{"no":"resourceType"}'))).to.equal(undefined);
      expect(payloadFacts(Buffer.from('[1,2]'))).to.equal(undefined);
    });

    it('returns undefined or id-less facts for hostile input, never throws', () => {
      const binary = randomBytes(256 * 1024);
      expect(payloadFacts(binary)).to.equal(undefined);
      expect(payloadFacts(binary, 'fhir-r4')).to.equal(undefined);
      expect(payloadFacts(binary, 'hl7v2')).to.equal(undefined);
      expect(() => payloadFacts(binary, 'csv')).to.not.throw();
      expect(payloadFacts(Buffer.from('{"resourceType":"Bundle","type":"message","entry":[{"resource":'))).to.equal(undefined);
      const depth = 200_000;
      const deep = Buffer.from(`{"resourceType":"Bundle","type":"message","entry":${'['.repeat(depth)}${']'.repeat(depth)}}`);
      expect(payloadFacts(deep)?.businessId).to.equal(undefined);
      expect(payloadFacts(Buffer.from('MSH|'))?.businessId).to.equal(undefined);
      expect(payloadFacts(hl7(adt({})).subarray(0, 40))?.businessId).to.equal(undefined);
      expect(payloadFacts(Buffer.from('MSH|^~\\&|' + 'x'.repeat(2_000_000)))?.businessId).to.equal(undefined);
      expect(payloadFacts(Buffer.alloc(0))).to.equal(undefined);
      expect(payloadFacts(hl7(adt({})), 'notify-csv')).to.equal(undefined);
      expect(payloadFacts(hl7(adt({})), 'no-such-format')).to.equal(undefined);
    });
  });

  describe('outbound ids are stable', () => {
    const csvInput = writeCsv([appointmentRecord({ messageId: 'CSV-1' }), appointmentRecord({ filler: 'APPT-2' })], { now }).output;
    const single = writeCsv([appointmentRecord({ filler: 'APPT-3' })], { now }).output;
    const fhirInput = json(fhirDoc(appointmentRecord({})));
    const conversions: Array<[string, Buffer, string, string]> = [
      ['csv → fhir-r4 (several rows)', csvInput, 'csv', 'fhir-r4'],
      ['csv → fhir-r4 (one row without a message id)', single, 'csv', 'fhir-r4'],
      ['csv → hl7v2 (several rows)', csvInput, 'csv', 'hl7v2'],
      ['csv → hl7v2 (one row without a message id)', single, 'csv', 'hl7v2'],
      ['fhir-r4 → hl7v2', fhirInput, 'fhir-r4', 'hl7v2'],
      ['hl7v2 → fhir-r4', hl7(adt({ evn2: '20260621093000' })), 'hl7v2', 'fhir-r4'],
    ];
    for (const [name, input, from, to] of conversions) {
      it(`${name}: converting the same input twice, at different times, gives the same business id`, () => {
        const first = convert(input, { from, to, now: () => new Date('2026-01-10T12:00:00Z') });
        const second = convert(input, { from, to, now: () => new Date('2026-08-10T18:30:00Z') });
        const a = payloadFacts(first.output, to);
        const b = payloadFacts(second.output, to);
        expect(a?.businessId).to.be.a('string');
        expect(b?.businessId).to.equal(a?.businessId);
      });
    }

    it('the FHIR writer derives MessageHeader.id from the record (not the clock)', () => {
      const a = fhirDoc(appointmentRecord({}));
      const b = JSON.parse(writeFhirR4([appointmentRecord({})], { now: () => new Date('2030-01-01T00:00:00Z') }).output.toString('utf8'));
      expect(a.entry[0].resource.id).to.be.a('string').and.to.equal(b.entry[0].resource.id);
      expect(a.timestamp).to.not.equal(b.timestamp);
      const other = fhirDoc(appointmentRecord({ filler: 'APPT-9' }));
      expect(other.entry[0].resource.id).to.not.equal(a.entry[0].resource.id);
    });
  });
});
