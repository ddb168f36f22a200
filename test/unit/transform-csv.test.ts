import { expect } from 'chai';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { COLUMNS, format } from '../../src/transform/csv';
import { quotedFields } from '../../src/transform/csv/rfc4180';
import { CLEARED, type AppointmentEvent, type CanonicalRecord, type PatientRegistration } from '../../src/transform/model';

const FIXTURES = join(__dirname, '..', '..', '..', 'fixtures', 'csv');
const canonical = (): CanonicalRecord[] => JSON.parse(readFileSync(join(FIXTURES, 'canonical-records.json'), 'utf8'));
const read = (text: string | Buffer) => format.read!(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
const write = (records: CanonicalRecord[], options?: Record<string, unknown>) => format.write!(records, options ? { options } : undefined);

/** A CSV with the given columns and rows (cells written verbatim). */
function csv(header: string[], ...rows: string[][]): string {
  return [header.join(','), ...rows.map((r) => r.join(','))].join('\r\n') + '\r\n';
}

describe('csv format', () => {
  it('round-trips canonical → csv → canonical on the fixtures', () => {
    const records = canonical();
    const w = write(records);
    expect(w.errors).to.deep.equal([]);
    const r = read(w.output);
    expect(r.errors).to.deep.equal([]);
    expect(r.messageCount).to.equal(records.length);
    expect(r.records.map((x) => x.record)).to.deep.equal(records);
  });

  it('writes UTF-8 without BOM, CRLF, a snake_case header starting with schema_version', () => {
    const out = write(canonical()).output;
    expect(out[0]).to.not.equal(0xef);
    const text = out.toString('utf8');
    const header = text.slice(0, text.indexOf('\r\n')).split(',');
    expect(header).to.deep.equal([...COLUMNS]);
    expect(header[0]).to.equal('schema_version');
    for (const h of header) expect(h).to.match(/^[a-z][a-z0-9_]*$/);
    expect(text.split('\r\n')[1].startsWith('1,book,')).to.equal(true);
  });

  it('reads a quoted empty field as cleared and an unquoted empty one as not sent', () => {
    const r = read(csv(['schema_version', 'event', 'nhs_number', 'gender', 'birth_date', 'family_name'], ['1', 'update', '9991000003', '""', '', '""']));
    expect(r.errors).to.deep.equal([]);
    const p = (r.records[0].record as PatientRegistration).patient;
    expect(p.gender).to.deep.equal(CLEARED);
    expect('birthDate' in p).to.equal(false);
    expect(p.names).to.deep.equal(CLEARED);
  });

  it('keeps three-state values through write and read (property, fixed seed)', () => {
    const tri = <T>(value: fc.Arbitrary<T>) => fc.oneof(fc.constant(undefined), fc.constant(CLEARED), value);
    const text = fc.string({ minLength: 1, maxLength: 30 }).filter((s) => s.trim() === s && s.length > 0);
    fc.assert(
      fc.property(
        tri(text),
        tri(fc.constantFrom('male', 'female', 'other', 'unknown' as const)),
        tri(fc.integer({ min: 0, max: 9 })),
        tri(fc.constantFrom('In-person', 'Telephone', 'Video')),
        tri(fc.constantFrom('9991000003', '9991012370', '9991086595')),
        (comment, gender, priority, channel, nhs) => {
          const rec: AppointmentEvent = {
            kind: 'appointment',
            event: 'modify',
            message: {},
            appointment: { status: 'booked', fillerId: { system: 'urn:meshd:local:RRF', value: 'F1', type: 'FILL', assigner: 'RRF' } },
            patient: { identifiers: [{ system: 'urn:meshd:local:RRF', value: 'M1', type: 'MR', assigner: 'RRF' }] },
          };
          const put = (o: any, k: string, v: unknown) => {
            if (v !== undefined) o[k] = v;
          };
          put(rec.appointment, 'comment', comment);
          put(rec.appointment, 'priority', priority);
          put(rec.appointment, 'deliveryChannel', channel);
          put(rec.patient, 'gender', gender);
          put(rec.patient, 'nhsNumber', nhs);
          const back = read(write([rec]).output);
          expect(back.errors).to.deep.equal([]);
          expect(back.records[0].record).to.deep.equal(rec);
        },
      ),
      { seed: 20261124, numRuns: 200 },
    );
  });

  it('is spreadsheet-safe by default (phone numbers and negative numbers untouched), reads back exactly, and profile=raw opts out', () => {
    const rec: PatientRegistration = {
      kind: 'registration',
      event: 'update',
      message: { messageId: '=HYPERLINK("x")' },
      patient: { nhsNumber: '9991000003', identifiers: [], names: [{ family: '@SUM(A1)', given: ['-1+1', '-12.5'] }], telecom: [{ system: 'phone', value: '+447700900001', use: 'mobile' }] },
    };
    const safe = write([rec]);
    const text = safe.output.toString('utf8');
    expect(text).to.contain(`,"'=HYPERLINK(""x"")",`);
    expect(text).to.contain(",'@SUM(A1),");
    expect(text).to.contain("'-1+1");
    expect(text).to.contain(',+447700900001,');
    expect(text).to.not.contain("'-12.5");
    expect(safe.notes.map((n) => n.code)).to.include('CSV_SPREADSHEET_SAFE');
    for (const bad of ['\tcmd', '\rcmd', '+cmd|calc']) {
      const t = write([{ ...rec, message: { messageId: bad } }]).output.toString('utf8');
      expect(t).to.contain(`'${bad}`);
    }
    const back = read(safe.output).records[0].record as PatientRegistration;
    expect(back.message.messageId).to.equal('=HYPERLINK("x")');
    const quoted = read(write([{ ...rec, message: { messageId: "'=x" } }]).output).records[0].record;
    expect(quoted.message.messageId).to.equal("'=x");
    const plain = write([rec], { profile: 'raw' });
    expect(plain.output.toString('utf8')).to.contain(',@SUM(A1),');
    expect(plain.notes.map((n) => n.code)).to.not.include('CSV_SPREADSHEET_SAFE');
  });

  it('accepts a UTF-8 BOM on input', () => {
    const body = Buffer.from(csv(['schema_version', 'event', 'nhs_number'], ['1', 'register', '9991000003']), 'utf8');
    const r = read(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body]));
    expect(r.errors).to.deep.equal([]);
    expect((r.records[0].record as PatientRegistration).patient.nhsNumber).to.equal('9991000003');
  });

  it('reports a bad row by line and column, never its value, and reads the other rows', () => {
    const r = read(
      csv(
        ['schema_version', 'event', 'nhs_number', 'birth_date'],
        ['1', 'register', '9991000003', '1980-01-01'],
        ['1', 'register', '9992000008', '1980-02-30'],
        ['1', 'register', '9991012370', ''],
      ),
    );
    expect(r.messageCount).to.equal(3);
    expect(r.records.map((x) => x.message)).to.deep.equal([0, 2]);
    expect(r.errors.map((e) => [e.message, e.position, e.field])).to.deep.equal([
      [1, 'line 3, column nhs_number', 'nhs_number'],
      [1, 'line 3, column birth_date', 'birth_date'],
    ]);
    expect(JSON.stringify(r.errors)).to.not.contain('9992000008');
  });

  it('names the starting line of a row that follows a multi-line quoted field', () => {
    const text = csv(['schema_version', 'event', 'comment', 'status', 'nhs_number'], ['1', 'book', '"two\r\nlines"', 'booked', '9991000003'], ['1', 'book', 'x', 'BOOKED', '9991000003']);
    const r = read(text);
    expect(r.errors).to.have.length(1);
    expect(r.errors[0].position).to.equal('line 4, column status');
  });

  it('rejects rows with the wrong number of fields, unknown events and bad quoting, row by row', () => {
    const text = csv(['schema_version', 'event', 'nhs_number'], ['1', 'register'], ['1', 'explode', '9991000003'], ['1', 'register', '9991012370'], ['1', 'register', '"99910"24743'], ['1', 'register', '9991024743']);
    const r = read(text);
    const codes = r.errors.map((e) => `${e.code} ${e.position}`);
    expect(codes[0]).to.equal('CSV_BAD_ROW line 2');
    expect(codes[1]).to.equal('CSV_BAD_VALUE line 3, column event');
    expect(codes[2]).to.match(/^CSV_SYNTAX line 5/);
    expect(r.records.map((x) => (x.record as PatientRegistration).patient.nhsNumber)).to.include('9991012370');
  });

  it('ignores unknown columns (with a note) and reads columns in any order', () => {
    const r = read(csv(['nhs_number', 'extra_thing', 'event', 'schema_version'], ['9991000003', 'whatever', 'register', '1']));
    expect(r.errors).to.deep.equal([]);
    expect(r.notes.map((n) => n.code)).to.include('CSV_UNKNOWN_COLUMNS');
    expect(r.records[0].record.event).to.equal('register');
  });

  it('rejects a schema version it does not know', () => {
    const r = read(csv(['schema_version', 'event', 'nhs_number'], ['2', 'register', '9991000003']));
    expect(r.errors[0]).to.include({ code: 'CSV_BAD_VALUE', field: 'schema_version' });
  });

  it('streams a large file across parser chunk boundaries without losing rows', () => {
    const rec = canonical()[0];
    const rows = Array.from({ length: 3000 }, (_v, i) => ({ ...rec, message: { ...rec.message, messageId: `M${i}` } }));
    const out = write(rows).output;
    expect(out.length).to.be.greaterThan(3 * 64 * 1024);
    const r = read(out);
    expect(r.errors).to.deep.equal([]);
    expect(r.records).to.have.length(3000);
    expect(r.records[2999].record.message.messageId).to.equal('M2999');
    expect(r.records[1234].record).to.deep.equal(rows[1234]);
  });

  it('never throws on arbitrary bytes after a valid header (property, fixed seed)', () => {
    const header = 'schema_version,event,nhs_number,start,comment,given_names\r\n';
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (body) => {
        const r = read(header + body);
        expect(r.records.length).to.be.at.most(r.messageCount);
      }),
      { seed: 99, numRuns: 500 },
    );
  });

  it('tells quoted from unquoted fields in a raw record (escaped quotes, commas and line breaks inside quotes)', () => {
    expect(quotedFields('"a""b",,"",x\r\n', 4)).to.deep.equal([true, false, true, false]);
    expect(quotedFields('"x,\r\ny","",', 3)).to.deep.equal([true, true, false]);
    expect(quotedFields('\uFEFF"",a', 2)).to.deep.equal([true, false]);
  });

  it('derives the appointment status from the event when the status column is empty', () => {
    const r = read(csv(['schema_version', 'event', 'filler_id', 'nhs_number'], ['1', 'noshow', 'F9', '9991000003']));
    expect((r.records[0].record as AppointmentEvent).appointment.status).to.equal('noshow');
  });

  it('refuses an appointment row with no patient identity (an mrn needs its authority)', () => {
    const r = read(csv(['schema_version', 'event', 'filler_id', 'mrn', 'mrn_authority'], ['1', 'book', 'F9', '', ''], ['1', 'book', 'F9', 'M1', ''], ['1', 'book', 'F9', 'M1', 'RRF']));
    expect(r.errors.map((e) => [e.code, e.message, e.field])).to.deep.equal([
      ['CSV_BAD_VALUE', 0, 'nhs_number'],
      ['CSV_BAD_VALUE', 1, 'nhs_number'],
    ]);
    expect(r.records.map((x) => x.message)).to.deep.equal([2]);
  });

  it('writes the current name, address and phones, never an ended one as current, and notes the periods it drops', () => {
    const rec: PatientRegistration = {
      kind: 'registration',
      event: 'update',
      message: {},
      patient: {
        nhsNumber: '9991000003',
        identifiers: [],
        names: [{ use: 'official', family: 'JONES', period: { end: '2019-01-01' } }, { use: 'official', family: 'SMITH' }],
        addresses: [{ use: 'home', lines: ['1 Old Road'], period: { end: '2019-01-01' } }],
        telecom: [{ system: 'phone', value: '01130000000', use: 'home', period: { end: '2019-01-01' } }],
      },
    };
    const w = format.write!([rec], { now: () => new Date('2025-06-01T00:00:00Z') });
    const back = (read(w.output).records[0].record as PatientRegistration).patient;
    expect(back.names).to.deep.equal([{ use: 'official', family: 'SMITH' }]);
    expect((back.addresses as Array<{ use?: string }>)[0].use).to.equal('old');
    expect(back.telecom).to.equal(undefined);
    expect(w.notes[0].text).to.contain('old or ended telecom entries');
  });

  it('notes what the schema cannot carry when writing', () => {
    const rec = structuredClone(canonical()[0]) as AppointmentEvent;
    rec.patient!.names = [{ family: 'A' }, { family: 'B', use: 'maiden' }];
    const w = write([rec]);
    expect(w.notes[0].code).to.equal('FIELD_DROPPED');
    expect(w.notes[0].text).to.contain('patient names after the first');
  });
});
