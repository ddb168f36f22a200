import { expect } from 'chai';
import { buildAck, readAck, type AckCode } from '../../src/transform/ack';
import { payloadFacts } from '../../src/transform/business';
import { writeCsv } from '../../src/transform/csv';
import { readFhirR4, structuralIssues, writeFhirR4 } from '../../src/transform/fhir-r4';
import { Hl7Message } from '../../src/transform/hl7v2/message';
import { writeHl7v2 } from '../../src/transform/hl7v2/write';
import { NHS, adt, appointmentRecord, hl7, now } from './support/business-fixtures';

const CODES: AckCode[] = ['ok', 'transient-error', 'fatal-error'];
const REASON = { code: 'STALE_EVENT', text: 'a newer event for this appointment superseded it' };
/** Patient values of the originals: none may appear in an acknowledgement. */
const PATIENT_VALUES = [NHS, 'ZEBEDEE', 'Quill', '19710203', '1971-02-03'];

const originals: Record<'hl7v2' | 'fhir-r4', Buffer> = {
  hl7v2: writeHl7v2([appointmentRecord({ messageId: 'S-1' })], { now }).output,
  'fhir-r4': writeFhirR4([appointmentRecord({})], { now }).output,
};

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

  it('gives no ack when there is nothing to acknowledge in-format: CSV, no business id, no MessageHeader, several messages, garbage', () => {
    const csv = writeCsv([appointmentRecord({ messageId: 'C-1' })], { now }).output;
    expect(buildAck(csv, 'csv', 'ok', undefined, now())).to.equal(undefined);
    expect(buildAck(hl7(adt({ control: '' })), undefined, 'ok', undefined, now())).to.equal(undefined);
    const resources = writeFhirR4([appointmentRecord({})], { now, options: { output: 'resources' } }).output;
    expect(payloadFacts(resources)?.businessId).to.be.a('string');
    expect(buildAck(resources, 'fhir-r4', 'ok', undefined, now())).to.equal(undefined);
    expect(buildAck(hl7(adt({ control: 'A' }), adt({ control: 'B' })), 'hl7v2', 'ok', undefined, now())).to.equal(undefined);
    expect(buildAck(Buffer.from([0, 1, 2, 0xff]), undefined, 'ok', undefined, now())).to.equal(undefined);
  });

  it('readAck gives undefined for anything that is not an acknowledgement', () => {
    for (const input of [originals.hl7v2, originals['fhir-r4'], hl7(adt({})), Buffer.from('MSH|^~\\&|A|B|C|D|2026||ACK|1|P|2.4\r'), Buffer.from('{"resourceType":"Bundle","type":"message","entry":[{"resource":{"resourceType":"MessageHeader","response":{"identifier":"x","code":"maybe"}}}]}'), Buffer.from('not a message'), Buffer.alloc(0), Buffer.from('{"resourceType":')]) {
      expect(readAck(input), input.toString('latin1').slice(0, 40)).to.equal(undefined);
    }
  });
});
