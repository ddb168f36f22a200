import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { splitMessages } from '../../src/transform/hl7v2/input';
import { readHl7v2 } from '../../src/transform/hl7v2/read';

const FIXTURES = join(__dirname, '..', '..', '..', 'fixtures', 'hl7v2');
const a28 = readFileSync(join(FIXTURES, 'uk-adt-a28.hl7'));

function nhsOf(buf: Buffer): unknown[] {
  return readHl7v2(buf).records.map((r) => r.record.kind === 'registration' && r.record.patient.nhsNumber);
}

describe('HL7 v2 input framing', () => {
  it('accepts CR, LF and CRLF segment terminators alike', () => {
    const cr = a28.toString('latin1');
    for (const sep of ['\r', '\n', '\r\n']) {
      const buf = Buffer.from(cr.replace(/\r/g, sep), 'latin1');
      const split = splitMessages(buf);
      expect(split.messages, JSON.stringify(sep)).to.have.length(1);
      expect(split.messages[0].text.split('\r').filter(Boolean)).to.have.length(5);
      expect(nhsOf(buf)).to.deep.equal(['9991000003']);
    }
  });

  it('accepts CR, LF, CRLF and LFCR mixed in one payload', () => {
    const segs = a28.toString('latin1').split('\r').filter(Boolean);
    const mixed = ['\r', '\n', '\r\n', '\n\r'];
    const twice = [...segs, ...segs].map((seg, i) => seg + mixed[i % mixed.length]).join('');
    const split = splitMessages(Buffer.from(twice, 'latin1'));
    expect(split.messages.map((m) => m.text)).to.deep.equal([segs.join('\r'), segs.join('\r')]);
    expect(nhsOf(Buffer.from(twice, 'latin1'))).to.deep.equal(['9991000003', '9991000003']);
  });

  it('counts DEL (0x7F) as ASCII and any byte from 0x80 up as not', () => {
    const text = a28.toString('latin1').replace('|AL|NE', '|AL|NE||ASCII');
    const del = splitMessages(Buffer.from(text.replace('PID|', 'PID|\x7f'), 'latin1'));
    expect(del.messages[0].charset).to.equal('ascii');
    expect(del.notes).to.deep.equal([]);
    const high = splitMessages(Buffer.from(text.replace('PID|', 'PID|\u00c3\u00a9'), 'latin1'));
    expect(high.messages[0].charset).to.equal('utf8');
    expect(high.notes.map((n) => n.code)).to.deep.equal(['HL7_CHARSET']);
  });

  it('strips a leading UTF-8 BOM', () => {
    const buf = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), a28]);
    expect(nhsOf(buf)).to.deep.equal(['9991000003']);
  });

  it('strips MLLP framing (VT … FS CR), also around several messages', () => {
    const frame = (b: Buffer) => Buffer.concat([Buffer.from([0x0b]), b, Buffer.from([0x1c, 0x0d])]);
    const buf = Buffer.concat([frame(a28), frame(a28)]);
    expect(nhsOf(buf)).to.deep.equal(['9991000003', '9991000003']);
  });

  it('splits back-to-back messages without batch segments', () => {
    const buf = Buffer.concat([a28, a28, a28]);
    const r = readHl7v2(buf);
    expect(r.messageCount).to.equal(3);
    expect(r.records.map((x) => x.message)).to.deep.equal([0, 1, 2]);
  });

  it('splits files concatenated without a final segment terminator', () => {
    const noFinal = Buffer.from(a28.toString('latin1').replace(/\r$/, ''), 'latin1');
    expect(nhsOf(Buffer.concat([noFinal, noFinal, a28]))).to.deep.equal(['9991000003', '9991000003', '9991000003']);
  });

  it('unwraps FHS/BHS…BTS/FTS batches and checks the BTS count', () => {
    const batch = readFileSync(join(FIXTURES, 'uk-batch-one-bad.hl7'));
    expect(splitMessages(batch).messageCount).to.equal(3);
    const wrong = Buffer.from(batch.toString('latin1').replace('BTS|3', 'BTS|5'), 'latin1');
    const notes = splitMessages(wrong).notes;
    expect(notes.map((n) => n.code)).to.include('HL7_BATCH_COUNT');
  });

  it('decodes each message by its MSH-18: 8859/1 and UNICODE UTF-8', () => {
    const msh = (cs: string) => `MSH|^~\\&|PAS|RX1|EPR|Y12345|20250601091500||ADT^A31^ADT_A05|C-${cs.length}|P|2.4||||||${cs}\rEVN|A31|20250601091400\rPID|1||9991000003^^^NHS^NH||ZO\u00cb^Ren\u00e9e\rPV1|1|N\r`;
    const latin = Buffer.from(msh('8859/1'), 'latin1');
    const utf8 = Buffer.from(msh('UNICODE UTF-8'), 'utf8');
    for (const buf of [latin, utf8, Buffer.concat([latin, utf8])]) {
      const r = readHl7v2(buf);
      expect(r.errors).to.deep.equal([]);
      for (const rec of r.records) {
        const names = rec.record.kind === 'registration' ? rec.record.patient.names : undefined;
        expect(names).to.deep.equal([{ family: 'ZO\u00cb', given: ['Ren\u00e9e'] }]);
      }
    }
  });

  it('refuses a message whose MSH-18 names an unknown charset, and only that one', () => {
    const bad = Buffer.from(a28.toString('latin1').replace('|AL|NE', '|AL|NE||EBCDIC'), 'latin1');
    const r = readHl7v2(Buffer.concat([bad, a28]));
    expect(r.messageCount).to.equal(2);
    expect(r.errors.map((e) => [e.code, e.message, e.position])).to.deep.equal([['HL7_CHARSET', 0, 'MSH-18']]);
    expect(r.records.map((x) => x.message)).to.deep.equal([1]);
  });

  it('says so when the input holds no HL7 at all', () => {
    const r = readHl7v2(Buffer.from('{"resourceType":"Patient"}'));
    expect(r.messageCount).to.equal(0);
    expect(r.errors[0].code).to.equal('HL7_NO_MESSAGE');
  });
});
