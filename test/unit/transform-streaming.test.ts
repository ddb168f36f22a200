import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { hl7Messages, hl7Templates } from '../../bench/batches';
import { convert, fileSink } from '../../src/transform/convert';

const now = () => new Date('2025-06-01T12:00:00Z');
const CSV_HEADER_END = '\r\n';

/** The collection id the FHIR writer derives from its entries' fullUrls (name-based UUID v5 layout). */
function collectionId(fullUrls: string[]): string {
  const hash = createHash('sha1');
  for (const u of fullUrls) hash.update(u).update('\0');
  const h = hash.digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16], 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

describe('transform: message-by-message conversion of large batches', function () {
  this.timeout(180_000);

  it('converts a 20,500-message batch exactly as its parts converted separately, issues at their source index', () => {
    const messages = hl7Messages(20_500);
    // One message the reader refuses, deep in the batch: its error must name its own index.
    messages[15_000] = messages[15_000].replace('SIU^S12^SIU_S12', 'ORM^O01^ORM_O01');
    const whole = convert(Buffer.from(messages.join(''), 'latin1'), { from: 'hl7v2', to: 'csv', now });
    expect(whole.messageCount).to.equal(20_500);
    expect(whole.records).to.equal(20_499);
    expect(whole.errors.map((e) => [e.code, e.message])).to.deep.equal([['HL7_UNSUPPORTED_MESSAGE', 15_000]]);
    const quarters = [0, 5000, 10_000, 15_000, 20_500];
    const rows: string[] = [];
    let appointments = 0;
    for (let q = 0; q < 4; q++) {
      const part = convert(Buffer.from(messages.slice(quarters[q], quarters[q + 1]).join(''), 'latin1'), { from: 'hl7v2', to: 'csv', now });
      const text = part.output.toString('utf8');
      rows.push(text.slice(text.indexOf(CSV_HEADER_END) + 2));
      appointments += part.appointments.length;
    }
    const text = whole.output.toString('utf8');
    expect(text.slice(text.indexOf(CSV_HEADER_END) + 2)).to.equal(rows.join(''));
    expect(whole.appointments.length).to.equal(appointments);
  });

  it('writes a FHIR collection of thousands of messages whose entries and id match the messages converted one by one', () => {
    const messages = hl7Messages(1200);
    const input = Buffer.from(messages.join(''), 'latin1');
    const whole = convert(input, { from: 'hl7v2', to: 'fhir-r4', now });
    const doc = JSON.parse(whole.output.toString('utf8'));
    expect(doc.entry).to.have.length(1200);
    for (const i of [0, 1, 255, 256, 257, 700, 1199]) {
      const alone = JSON.parse(convert(Buffer.from(messages[i], 'latin1'), { from: 'hl7v2', to: 'fhir-r4', now }).output.toString('utf8'));
      expect(doc.entry[i].resource, `message ${i}`).to.deep.equal(alone);
    }
    expect(doc.id).to.equal(collectionId(doc.entry.map((e: { fullUrl: string }) => e.fullUrl)));
    // Written to a file as it goes, the opening rewritten in place: the same bytes.
    const dir = mkdtempSync(join(tmpdir(), 'meshd-stream-test-'));
    try {
      const fd = openSync(join(dir, 'out.json'), 'w');
      const streamed = convert(input, { from: 'hl7v2', to: 'fhir-r4', now }, fileSink(fd));
      closeSync(fd);
      expect(streamed.output.length).to.equal(0);
      expect(readFileSync(join(dir, 'out.json')).equals(whole.output)).to.equal(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('converts a batch whose collection has more entries than a spread call can take (was "Maximum call stack size exceeded")', () => {
    // 32,000 SIU messages, five resources each: 160,000 entries in one collection Bundle.
    const siu = hl7Templates()[0];
    const input = Buffer.from(Array.from({ length: 32_000 }, (_, i) => siu.replace(/#/g, String(i + 1))).join(''), 'latin1');
    const r = convert(input, { from: 'hl7v2', to: 'fhir-r4', now, options: { output: 'resources', validate: 'light' } });
    expect(r.errors).to.deep.equal([]);
    expect(r.records).to.equal(32_000);
    const doc = JSON.parse(r.output.toString('utf8'));
    expect(doc.entry.length).to.be.greaterThan(150_000);
    expect(doc.id).to.equal(collectionId(doc.entry.map((e: { fullUrl: string }) => e.fullUrl)));
  });
});
