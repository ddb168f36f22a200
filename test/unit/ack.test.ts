import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { buildAck, readAck, type AckCode } from '../../src/transform/ack';
import { payloadFacts } from '../../src/transform/business';
import { convert } from '../../src/transform/convert';
import { writeCsv } from '../../src/transform/csv';
import { readFhirR4, structuralIssues, writeFhirR4 } from '../../src/transform/fhir-r4';
import { Hl7Message } from '../../src/transform/hl7v2/message';
import { writeHl7v2 } from '../../src/transform/hl7v2/write';
import type { CanonicalRecord } from '../../src/transform/model';
import { getFormat } from '../../src/transform/registry';
import { NHS, adt, appointmentRecord, hl7, now } from './support/business-fixtures';

const CODES: AckCode[] = ['ok', 'transient-error', 'fatal-error'];
const REASON = { code: 'STALE_EVENT', text: 'a newer event for this appointment superseded it' };
/** Patient values of the originals: none may appear in an acknowledgement. */
const PATIENT_VALUES = [NHS, 'ZEBEDEE', 'Quill', '19710203', '1971-02-03'];

const originals: Record<'hl7v2' | 'fhir-r4', Buffer> = {
  hl7v2: writeHl7v2([appointmentRecord({ messageId: 'S-1' })], { now }).output,
  'fhir-r4': writeFhirR4([appointmentRecord({})], { now }).output,
};

/** Three appointment events (book, reschedule, modify) of one synthetic patient. */
const canonical = (JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'fixtures', 'canonical', 'appointments.json'), 'utf8')) as CanonicalRecord[]).slice(0, 3);
const CANONICAL_PATIENT = [NHS, "O'Brien-Smith", 'Aoife', '1925-07-04', 'RX1000123'];
/** meshd's own conversion of a 3-row CSV to FHIR: a collection Bundle of three message Bundles. */
const threeRowCsv = getFormat('csv').write!(canonical, { now }).output;
const fhirBatch = convert(threeRowCsv, { from: 'csv', to: 'fhir-r4', now }).output;
/** An HL7 v2 batch with a batch control id (BHS-11). */
const hl7Batch = Buffer.concat([Buffer.from('FHS|^~\\&|PAS|RX1\rBHS|^~\\&|PAS|RX1|EPR|Y12345|20260621||||BATCH-7\r'), hl7(adt({ control: 'B-1' }), adt({ control: 'B-2' })), Buffer.from('BTS|2\rFTS|1\r')]);

function hl7Ack(buf: Buffer): Hl7Message {
  const parsed = Hl7Message.parse(buf.toString('latin1'));
  if (!(parsed instanceof Hl7Message)) throw new Error(parsed.problem);
  return parsed;
}

describe('application acknowledgements', () => {
  for (const format of ['hl7v2', 'fhir-r4'] as const) {
    for (const code of CODES) {
      for (const reason of [undefined, REASON]) {
        it(`${format}, ${code}${reason ? ', with a reason' : ''}: readAck gives back the original's business id, the code and the reason`, () => {
          const original = originals[format];
          const ack = buildAck(original, format, code, reason, now())!;
          expect(ack.format).to.equal(format);
          expect(ack.refersTo).to.equal(payloadFacts(original)!.businessId);
          const read = readAck(ack.payload)!;
          expect(read.refersTo).to.equal(payloadFacts(original)!.businessId);
          expect(read.code).to.equal(code);
          expect(read.reason).to.equal(reason?.text);
          expect(read.reasonCode).to.equal(reason?.code);
          expect(read.ackId).to.equal(ack.businessId);
          expect(payloadFacts(ack.payload)!.businessId).to.equal(ack.businessId);
          const text = ack.payload.toString('utf8');
          for (const value of PATIENT_VALUES) expect(text, value).to.not.include(value);
        });
      }
    }
  }

  it('HL7 v2: MSH with sides swapped and ACK^<trigger>^ACK in the same version, MSA-1 AA/AE/AR and MSA-2 the original MSH-10, ERR only with a reason', () => {
    const codes = { ok: 'AA', 'transient-error': 'AE', 'fatal-error': 'AR' };
    for (const code of CODES) {
      const msg = hl7Ack(buildAck(originals.hl7v2, 'hl7v2', code, undefined, now())!.payload);
      const msh = msg.segments[0];
      expect([3, 4, 5, 6].map((f) => msg.get(msh, { field: f }))).to.deep.equal(['EPR', 'Y12345', 'PAS', 'RX1']);
      expect(msh.raw(9)).to.equal('ACK^S12^ACK');
      expect(msg.get(msh, { field: 12 })).to.equal('2.4');
      expect(msg.get(msh, { field: 7 })).to.equal('20260110120000+0000');
      const msa = msg.first('MSA')!;
      expect(msg.get(msa, { field: 1 })).to.equal(codes[code]);
      expect(msg.get(msa, { field: 2 })).to.equal('S-1');
      expect(msg.first('ERR')).to.equal(undefined);
    }
    const v24 = hl7Ack(buildAck(originals.hl7v2, 'hl7v2', 'fatal-error', REASON, now())!.payload);
    expect(v24.first('ERR')!.raw(1)).to.equal('^^^207&Application internal error&HL70357&STALE_EVENT&a newer event for this appointment superseded it&MESHD');
  });

  it('HL7 v2.5 and later: ERR-3 (code 207, meshd code as the alternate) and ERR-4 severity E; escapes the delimiters of a reason', () => {
    const v25 = writeHl7v2([appointmentRecord({ messageId: 'S-2' })], { now, options: { version: '2.5' } }).output;
    const ack = buildAck(v25, undefined, 'transient-error', { code: 'X_Y', text: 'field | component ^ & done' }, now())!;
    const msg = hl7Ack(ack.payload);
    expect(msg.get(msg.segments[0], { field: 12 })).to.equal('2.5');
    const err = msg.first('ERR')!;
    expect(msg.get(err, { field: 3, comp: 1 })).to.equal('207');
    expect(msg.get(err, { field: 3, comp: 4 })).to.equal('X_Y');
    expect(msg.get(err, { field: 4 })).to.equal('E');
    expect(readAck(ack.payload)).to.include({ code: 'transient-error', reason: 'field | component ^ & done', reasonCode: 'X_Y' });
  });

  it('HL7 v2: readAck qualifies MSA-2 by the ack MSH-5/MSH-6 (the original sender) and reads enhanced-mode codes and MSA-3', () => {
    const foreign = Buffer.from('MSH|^~\\&|EPR|Y12345|PAS|RX1|20260110120000||ACK|X-9|P|2.3\rMSA|CR|CTRL-1|Not today\r');
    expect(readAck(foreign)).to.deep.equal({ refersTo: payloadFacts(hl7(adt({})))!.businessId, code: 'fatal-error', reason: 'Not today', ackId: 'EPR|Y12345|X-9' });
  });

  it('FHIR: a response message Bundle that the FHIR validator and reader accept, sides swapped, the event kept, the reason in an OperationOutcome', () => {
    const original = JSON.parse(originals['fhir-r4'].toString('utf8'));
    const header = original.entry[0].resource;
    const ack = buildAck(originals['fhir-r4'], 'fhir-r4', 'fatal-error', REASON, now())!;
    const doc = JSON.parse(ack.payload.toString('utf8'));
    expect(structuralIssues(doc, 'Bundle')).to.deep.equal([]);
    expect(readFhirR4(ack.payload).errors).to.deep.equal([]);
    expect(doc.type).to.equal('message');
    expect(doc.timestamp).to.equal('2026-01-10T12:00:00.000Z');
    const ackHeader = doc.entry[0].resource;
    expect(ackHeader.id).to.equal(ack.businessId);
    expect(ackHeader.eventCoding).to.deep.equal(header.eventCoding);
    expect(ackHeader.source.endpoint).to.equal(header.destination[0].endpoint);
    expect(ackHeader.destination[0].endpoint).to.equal(header.source.endpoint);
    expect(ackHeader.response.identifier).to.equal(header.id);
    expect(ackHeader.response.code).to.equal('fatal-error');
    const outcome = doc.entry.find((e: any) => e.fullUrl === ackHeader.response.details.reference).resource;
    expect(outcome.resourceType).to.equal('OperationOutcome');
    expect(outcome.issue).to.deep.equal([{ severity: 'error', code: 'processing', details: { coding: [{ system: 'https://fhir.meshd.dev/CodeSystem/error-code', code: 'STALE_EVENT' }], text: REASON.text } }]);
    const ok = JSON.parse(buildAck(originals['fhir-r4'], 'fhir-r4', 'ok', undefined, now())!.payload.toString('utf8'));
    expect(structuralIssues(ok, 'Bundle')).to.deep.equal([]);
    expect(ok.entry).to.have.length(1);
    expect(ok.entry[0].resource.response.details).to.equal(undefined);
  });

  for (const format of ['hl7v2', 'fhir-r4'] as const) {
    it(`${format}: the ack id derives from the original id and the code only (rebuilt later, it is the same message)`, () => {
      const a = buildAck(originals[format], format, 'ok', undefined, new Date('2026-01-10T12:00:00Z'))!;
      const b = buildAck(originals[format], format, 'ok', REASON, new Date('2026-07-10T18:00:00Z'))!;
      const c = buildAck(originals[format], format, 'fatal-error', undefined, new Date('2026-01-10T12:00:00Z'))!;
      expect(b.businessId).to.equal(a.businessId);
      expect(c.businessId).to.not.equal(a.businessId);
      expect(payloadFacts(b.payload)!.businessId).to.equal(a.businessId);
    });
  }

  describe('a payload of several messages, acknowledged as a whole', () => {
    const batches: Record<'hl7v2' | 'fhir-r4', Buffer> = { hl7v2: hl7Batch, 'fhir-r4': fhirBatch };
    for (const format of ['hl7v2', 'fhir-r4'] as const) {
      for (const code of CODES) {
        it(`${format}, ${code}: one ack whose readAck refersTo is the batch's business id`, () => {
          const facts = payloadFacts(batches[format])!;
          expect(facts.messages.length).to.be.greaterThan(1);
          const ack = buildAck(batches[format], format, code, REASON, now())!;
          expect(ack.format).to.equal(format);
          expect(ack.refersTo).to.equal(facts.businessId);
          const read = readAck(ack.payload)!;
          expect(read).to.deep.equal({ refersTo: facts.businessId, code, reason: REASON.text, reasonCode: REASON.code, ackId: ack.businessId });
          const ackFacts = payloadFacts(ack.payload)!;
          expect(ackFacts.messages).to.have.length(1);
          expect(ackFacts.businessId).to.equal(ack.businessId);
          const text = ack.payload.toString('utf8');
          for (const value of [...PATIENT_VALUES, ...CANONICAL_PATIENT]) expect(text, value).to.not.include(value);
        });
      }

      it(`${format}: the batch ack id derives from the batch id and the code only`, () => {
        const a = buildAck(batches[format], format, 'ok', undefined, new Date('2026-01-10T12:00:00Z'))!;
        const b = buildAck(batches[format], format, 'ok', REASON, new Date('2026-07-10T18:00:00Z'))!;
        const c = buildAck(batches[format], format, 'transient-error', undefined, new Date('2026-01-10T12:00:00Z'))!;
        expect(b.businessId).to.equal(a.businessId);
        expect(c.businessId).to.not.equal(a.businessId);
      });
    }

    it('HL7 v2 batch: one ACK to the batch sender (BHS-3/BHS-4) naming the batch control id (BHS-11) in MSA-2', () => {
      expect(payloadFacts(hl7Batch)!.businessId).to.equal('PAS|RX1|BATCH-7');
      const msg = hl7Ack(buildAck(hl7Batch, undefined, 'ok', undefined, now())!.payload);
      expect(msg.segments.map((seg) => seg.name)).to.deep.equal(['MSH', 'MSA']);
      const msh = msg.segments[0];
      expect([3, 4, 5, 6].map((f) => msg.get(msh, { field: f }))).to.deep.equal(['EPR', 'Y12345', 'PAS', 'RX1']);
      expect(msh.raw(9)).to.equal('ACK^^ACK');
      expect(msg.get(msh, { field: 12 })).to.equal('2.4');
      expect(msg.get(msg.first('MSA')!, { field: 2 })).to.equal('BATCH-7');
    });

    it('HL7 v2 batch: the id parts are named exactly as the business id has them (an empty BHS-3 stays empty, FHS-11 when BHS has none)', () => {
      const noApp = Buffer.concat([Buffer.from('BHS|^~\\&||RX1|||||||B^X\r'), hl7(adt({ control: 'B-1' }), adt({ control: 'B-2' }))]);
      const fileId = Buffer.concat([Buffer.from('FHS|^~\\&|FILEAPP|FILEFAC|||||||F-9\rBHS|^~\\&|PAS|RX1\r'), hl7(adt({ control: 'B-1' }), adt({ control: 'B-2' }))]);
      for (const [batch, id] of [[noApp, '|RX1|B'], [fileId, 'FILEAPP|FILEFAC|F-9']] as const) {
        expect(payloadFacts(batch)!.businessId).to.equal(id);
        expect(readAck(buildAck(batch, 'hl7v2', 'ok', undefined, now())!.payload)!.refersTo).to.equal(id);
      }
    });

    it('HL7 v2 batch without a batch control id (synthetic batch: id, as meshd\'s own batch writer gives): no ack, since MSA-2 cannot name it', () => {
      const own = writeHl7v2(canonical, { now, options: { batch: true } }).output;
      const bare = Buffer.concat([Buffer.from('FHS|^~\\&|PAS|RX1\rBHS|^~\\&|PAS|RX1\r'), hl7(adt({ control: 'B-1' }), adt({ control: 'B-2' })), Buffer.from('BTS|2\rFTS|1\r')]);
      for (const batch of [own, bare, hl7(adt({ control: 'A' }), adt({ control: 'B' }))]) {
        expect(payloadFacts(batch)!.businessId).to.match(/^batch:[0-9a-f]{64}$/);
        expect(buildAck(batch, 'hl7v2', 'ok', undefined, now())).to.equal(undefined);
      }
    });

    it('FHIR collection of message Bundles (csv → fhir-r4 of 3 rows): a response Bundle the validator and reader accept, sides from the first message, the outer Bundle.id as response.identifier', () => {
      const outer = JSON.parse(fhirBatch.toString('utf8'));
      expect(outer.type).to.equal('collection');
      expect(outer.entry).to.have.length(3);
      const first = outer.entry[0].resource.entry[0].resource;
      const ack = buildAck(fhirBatch, 'fhir-r4', 'fatal-error', REASON, now())!;
      const doc = JSON.parse(ack.payload.toString('utf8'));
      expect(structuralIssues(doc, 'Bundle')).to.deep.equal([]);
      expect(readFhirR4(ack.payload).errors).to.deep.equal([]);
      expect(doc.type).to.equal('message');
      const header = doc.entry[0].resource;
      expect(header.response.identifier).to.equal(outer.id);
      expect(header.response.code).to.equal('fatal-error');
      expect(header.source.endpoint).to.equal(first.destination[0].endpoint);
      expect(header.destination[0].endpoint).to.equal(first.source.endpoint);
      // Book, reschedule and modify: no one event to repeat, so the ack names its own.
      expect(header.eventCoding).to.deep.equal({ system: 'https://fhir.meshd.dev/CodeSystem/event-kind', code: 'acknowledgement' });
      const outcome = doc.entry.find((e: any) => e.fullUrl === header.response.details.reference).resource;
      expect(outcome.issue[0].details.coding[0].code).to.equal('STALE_EVENT');
    });

    it('FHIR: a batch of one event keeps that event; a batch without an outer Bundle.id is named by its synthetic batch: id as is', () => {
      const sameEvent = writeFhirR4([appointmentRecord({}), appointmentRecord({ filler: 'APPT-2' })], { now }).output;
      const inner = JSON.parse(sameEvent.toString('utf8')).entry[0].resource.entry[0].resource;
      const header = JSON.parse(buildAck(sameEvent, 'fhir-r4', 'ok', undefined, now())!.payload.toString('utf8')).entry[0].resource;
      expect(header.eventCoding).to.deep.equal(inner.eventCoding);
      const anonymous = JSON.parse(fhirBatch.toString('utf8'));
      delete anonymous.id;
      const payload = Buffer.from(JSON.stringify(anonymous));
      const id = payloadFacts(payload)!.businessId!;
      expect(id).to.match(/^batch:[0-9a-f]{64}$/);
      const ack = buildAck(payload, 'fhir-r4', 'ok', undefined, now())!;
      expect(JSON.parse(ack.payload.toString('utf8')).entry[0].resource.response.identifier).to.equal(id);
      expect(readAck(ack.payload)!.refersTo).to.equal(id);
    });

    it('FHIR: no ack when a message of the collection is not a message Bundle with its MessageHeader first', () => {
      const doc = JSON.parse(fhirBatch.toString('utf8'));
      doc.entry[1].resource.entry.reverse();
      expect(buildAck(Buffer.from(JSON.stringify(doc)), 'fhir-r4', 'ok', undefined, now())).to.equal(undefined);
    });
  });

  it('gives no ack when there is nothing to acknowledge in-format: CSV, no business id, no MessageHeader, garbage', () => {
    const csv = writeCsv([appointmentRecord({ messageId: 'C-1' })], { now }).output;
    expect(buildAck(csv, 'csv', 'ok', undefined, now())).to.equal(undefined);
    expect(buildAck(hl7(adt({ control: '' })), undefined, 'ok', undefined, now())).to.equal(undefined);
    const resources = writeFhirR4([appointmentRecord({})], { now, options: { output: 'resources' } }).output;
    expect(payloadFacts(resources)?.businessId).to.be.a('string');
    expect(buildAck(resources, 'fhir-r4', 'ok', undefined, now())).to.equal(undefined);
    expect(buildAck(Buffer.from([0, 1, 2, 0xff]), undefined, 'ok', undefined, now())).to.equal(undefined);
  });

  it('readAck gives undefined for anything that is not an acknowledgement', () => {
    for (const input of [originals.hl7v2, originals['fhir-r4'], hl7(adt({})), Buffer.from('MSH|^~\\&|A|B|C|D|2026||ACK|1|P|2.4\r'), Buffer.from('{"resourceType":"Bundle","type":"message","entry":[{"resource":{"resourceType":"MessageHeader","response":{"identifier":"x","code":"maybe"}}}]}'), Buffer.from('not a message'), Buffer.alloc(0), Buffer.from('{"resourceType":')]) {
      expect(readAck(input), input.toString('latin1').slice(0, 40)).to.equal(undefined);
    }
  });
});
