import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { MeshdError } from '../../src/errors';
import { TransformInvalidError, convert, describeIssue } from '../../src/transform/convert';
import { formatNames, formats, getFormat } from '../../src/transform/registry';

const FIXTURES = join(__dirname, '..', '..', '..', 'fixtures', 'hl7v2');
const now = () => new Date('2025-06-01T12:00:00Z');

describe('transform registry', () => {
  it('maps every name to a module of that name', () => {
    expect(formatNames()).to.include.members(['hl7v2', 'fhir-r4']);
    for (const name of formatNames()) {
      expect(formats[name].name).to.equal(name);
      expect(Boolean(formats[name].read || formats[name].write), name).to.equal(true);
    }
  });

  it('refuses an unknown name with TRANSFORM_UNKNOWN_FORMAT (kind input), listing the known ones', () => {
    let err: unknown;
    try {
      getFormat('hl7v3');
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(MeshdError);
    expect((err as MeshdError).code).to.equal('TRANSFORM_UNKNOWN_FORMAT');
    expect((err as MeshdError).kind).to.equal('input');
    expect((err as MeshdError).hint).to.include('hl7v2');
    expect(() => getFormat('constructor')).to.throw(MeshdError);
  });
});

describe('convert', () => {
  it('returns the output plus per-message errors when only some messages fail', () => {
    const r = convert(readFileSync(join(FIXTURES, 'uk-batch-one-bad.hl7')), { from: 'hl7v2', to: 'hl7v2', now });
    expect(r.messageCount).to.equal(3);
    expect(r.records).to.equal(2);
    expect(r.errors.map((e) => [e.code, e.message])).to.deep.equal([['HL7_BAD_NHS_NUMBER', 1]]);
    expect(r.output.toString().split('MSH|').length - 1).to.equal(2);
  });

  it('throws TRANSFORM_INVALID (InputError) with the issues when every message fails', () => {
    const bad = Buffer.from('MSH|^~\\&|PAS|RX1|||20250601||ADT^A28^ADT_A05|X|P|2.4\rPID|1||9991000004^^^NHS^NH||SMITH^Jo\r');
    let err: unknown;
    try {
      convert(bad, { from: 'hl7v2', to: 'hl7v2' });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(TransformInvalidError);
    const e = err as TransformInvalidError;
    expect(e.code).to.equal('TRANSFORM_INVALID');
    expect(e.kind).to.equal('input');
    expect(e.issues[0].position).to.equal('PID-3.1');
    expect(e.message).to.include('message 1, PID-3.1 (patient.nhsNumber)');
    expect(e.message).to.not.include('9991000004').and.not.include('SMITH');
  });

  it('throws TRANSFORM_INVALID for an empty input', () => {
    expect(() => convert(Buffer.alloc(0), { from: 'hl7v2', to: 'hl7v2' })).to.throw(TransformInvalidError);
  });

  it('converts valid input that holds no event to nothing, with a note (not an error)', () => {
    const r = convert(Buffer.from(JSON.stringify({ resourceType: 'Location', status: 'active', name: 'Clinic 3' })), { from: 'fhir-r4', to: 'hl7v2', now });
    expect(r.output.length).to.equal(0);
    expect(r.records).to.equal(0);
    expect(r.errors).to.deep.equal([]);
    expect(r.notes.map((n) => n.code)).to.include('TRANSFORM_NOTHING');
  });

  it('refuses to read a write-only format (notify-csv)', () => {
    expect(() => convert(Buffer.from('x'), { from: 'notify-csv', to: 'hl7v2' })).to.throw(MeshdError).with.property('code', 'TRANSFORM_UNSUPPORTED');
  });

  it('returns the appointments written, for the ledger', () => {
    const both = Buffer.concat([readFileSync(join(FIXTURES, 'uk-adt-a28.hl7')), readFileSync(join(FIXTURES, 'uk-siu-s12-rgs.hl7'))]);
    const r = convert(both, { from: 'hl7v2', to: 'hl7v2', now });
    expect(r.errors).to.deep.equal([]);
    expect(r.appointments.map((a) => a.trigger)).to.deep.equal(['S12']);
  });

  it('passes the ledger history through to the writer (a known appointment with a new start → S13)', () => {
    const keys: string[] = [];
    const r = convert(readFileSync(join(FIXTURES, 'uk-siu-s12-rgs.hl7')), {
      from: 'hl7v2',
      to: 'hl7v2',
      now,
      previousAppointment: (key) => {
        keys.push(key);
        return { lastEvent: 'book', start: '2025-07-01T08:30:00.000Z' };
      },
    });
    expect(keys).to.deep.equal(['RX1|filler|APPT-2001']);
    expect(r.appointments.map((a) => a.trigger)).to.deep.equal(['S13']);
  });

  it('describes an issue for people with a 1-based message number', () => {
    expect(describeIssue({ code: 'X', message: 0, position: 'PID-7', field: 'patient.birthDate', text: 'bad' })).to.equal('message 1, PID-7 (patient.birthDate): bad [X]');
  });
});
