import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect } from 'chai';
import { TransformInvalidError, convert } from '../../src/transform/convert';
import { formatNames, formats } from '../../src/transform/registry';
import { readHl7v2 } from '../../src/transform/hl7v2/read';
import type { AppointmentEvent, CanonicalRecord, PatientRegistration } from '../../src/transform/model';

/**
 * The corpus harness: every HL7 v2 and every FHIR R4 sample written by others converts to
 * every other writable format (the CLI exits 0 for hl7v2 ⇄ fhir-r4; notify-csv may only refuse
 * bookings that have no NHS number), key fields survive, and STU3 is refused.
 * The corpus lives beside the repository (../shared/corpus) and is read in place.
 * This suite runs only where CI provides the corpus; a missing folder is a failure, not a skip.
 */

const ROOT = join(__dirname, '..', '..', '..');
const CORPUS = join(ROOT, '..', 'shared', 'corpus');
const BIN = join(ROOT, 'bin', 'meshd.js');
const now = () => new Date('2025-06-01T12:00:00Z');

function walk(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const p = join(dir, name);
      return statSync(p).isDirectory() ? walk(p) : [p];
    })
    .sort();
}

if (!existsSync(CORPUS)) {
  throw new Error(`corpus not found at ${CORPUS}: the corpus suite needs ../shared/corpus beside the repository (run it only where CI provides it)`);
}
const all = walk(CORPUS);
const hl7Files = all.filter((f) => f.endsWith('.hl7'));
const stu3Files = all.filter((f) => f.includes(`${join('fhir', 'gpconnect-stu3')}`) && f.endsWith('.json'));
const r4Files = all.filter((f) => f.endsWith('.json') && f.includes(`${join('corpus', 'fhir')}`) && !stu3Files.includes(f));
const xmlFiles = all.filter((f) => f.endsWith('.xml'));
const writable = (from: string) => formatNames().filter((n) => n !== from && formats[n].write);
const name = (f: string) => relative(CORPUS, f);

const EVENT_OF_TRIGGER: Record<string, string> = {
  A04: 'register', A28: 'register', A08: 'update', A31: 'update', A40: 'merge',
  S12: 'book', S13: 'reschedule', S14: 'modify', S15: 'cancel', S16: 'discontinue', S17: 'delete', S26: 'noshow',
};

/** MSH-9.2 read straight from the bytes (not through our reader). */
function triggerOf(buf: Buffer): string {
  const m = /MSH\|[^\r\n]*?\|(?:ADT|SIU)\^([A-Z]\d\d)/.exec(buf.toString('latin1'));
  if (!m) throw new Error('no MSH-9 in sample');
  return m[1];
}

/**
 * Errors a correct conversion must give: NHS Notify cannot reach a patient without an NHS
 * number, so those records are quarantined (and only those). Anything else is a failure.
 */
function expectOnlyLegitimateErrors(from: string, to: string, buf: Buffer, errors: Array<{ code: string; message?: number }>): void {
  if (to !== 'notify-csv') {
    expect(errors, JSON.stringify(errors)).to.deep.equal([]);
    return;
  }
  const read = formats[from].read!(buf, {});
  for (const e of errors) {
    expect(e.code, JSON.stringify(e)).to.equal('NOTIFY_NO_NHS_NUMBER');
    const sources = read.records.filter((r) => r.message === e.message).map((r) => r.record);
    expect(sources.length).to.be.greaterThan(0);
    for (const rec of sources) expect(rec.kind === 'registration' ? rec.patient.nhsNumber : rec.patient?.nhsNumber).to.equal(undefined);
  }
}

/**
 * A conversion's outcome: when every record is refused, convert() throws rather than hand on an
 * empty envelope; the refusals it carries are then checked like any others.
 */
function convertOrRefused(buf: Buffer, opts: Parameters<typeof convert>[1]): { output: Buffer; records: number; errors: Array<{ code: string; message?: number }>; notes: Array<{ code: string }> } {
  try {
    return convert(buf, opts);
  } catch (err) {
    if (!(err instanceof TransformInvalidError)) throw err;
    return { output: Buffer.alloc(0), records: 0, errors: err.issues, notes: err.notes };
  }
}

/** A comparable summary of what matters: identity, event, status, start, NHS number. */
function keyFields(r: CanonicalRecord): Record<string, unknown> {
  if (r.kind === 'appointment') {
    const a = (r as AppointmentEvent).appointment;
    const start = a.start && typeof a.start === 'object' && 'utc' in a.start ? a.start.utc : undefined;
    return { kind: r.kind, filler: a.fillerId?.value, placer: a.placerId?.value, status: a.status, start, nhs: r.patient?.nhsNumber };
  }
  const p = (r as PatientRegistration).patient;
  return { kind: r.kind, event: r.event, nhs: p.nhsNumber, ids: p.identifiers.map((i) => i.value).sort(), birthDate: p.birthDate };
}

describe('corpus: HL7 v2 samples', () => {
  it('finds the samples', () => {
    expect(hl7Files.length).to.be.greaterThan(10);
    expect(r4Files.length).to.be.greaterThan(5);
    expect(stu3Files.length).to.be.greaterThan(0);
  });

  for (const file of hl7Files) {
    describe(name(file), () => {
      const buf = readFileSync(file);

      it('reads with the event its MSH-9 names and a usable identity', () => {
        const r = readHl7v2(buf);
        expect(r.errors, JSON.stringify(r.errors)).to.deep.equal([]);
        expect(r.records.length).to.be.greaterThan(0);
        const expected = EVENT_OF_TRIGGER[triggerOf(buf)];
        for (const { record } of r.records) {
          expect(record.event).to.equal(expected);
          if (record.kind === 'appointment') expect(record.appointment.fillerId?.value ?? record.appointment.placerId?.value).to.be.a('string');
          else expect(Boolean(record.patient.nhsNumber) || record.patient.identifiers.length > 0).to.equal(true);
        }
      });

      for (const to of writable('hl7v2')) {
        it(`converts to ${to} (only legitimate per-record refusals)`, () => {
          const r = convertOrRefused(buf, { from: 'hl7v2', to, now });
          expectOnlyLegitimateErrors('hl7v2', to, buf, r.errors);
          if (r.records > 0) expect(r.output.length).to.be.greaterThan(0);
          else expect(r.errors.length, 'nothing written only when every record was refused').to.be.greaterThan(0);
        });
      }

      if (formats['fhir-r4']?.write && formats['fhir-r4']?.read) {
        it('keeps identity, event, status, start and NHS number through fhir-r4 and back', () => {
          const before = readHl7v2(buf).records.map((r) => keyFields(r.record));
          const fhir = convert(buf, { from: 'hl7v2', to: 'fhir-r4', now });
          const back = convert(fhir.output, { from: 'fhir-r4', to: 'hl7v2', now });
          expect(back.errors, JSON.stringify(back.errors)).to.deep.equal([]);
          const after = readHl7v2(back.output).records.map((r) => keyFields(r.record));
          expect(after).to.deep.equal(before);
        });
      }
    });
  }
});

describe('corpus: FHIR R4 samples', () => {
  for (const file of r4Files) {
    describe(name(file), () => {
      const buf = readFileSync(file);
      for (const to of writable('fhir-r4')) {
        it(`converts to ${to} (only legitimate per-record refusals)`, () => {
          const r = convertOrRefused(buf, { from: 'fhir-r4', to, now });
          expectOnlyLegitimateErrors('fhir-r4', to, buf, r.errors);
          if (r.records === 0 && r.errors.length === 0) expect(r.notes.map((n) => n.code)).to.include('TRANSFORM_NOTHING');
        });
      }

      it('keeps status, start and NHS number when written as hl7v2', () => {
        const src = JSON.parse(buf.toString('utf8'));
        const resources: Array<Record<string, any>> = src.resourceType === 'Bundle' ? (src.entry ?? []).map((e: { resource: unknown }) => e.resource) : [src];
        const r = convert(buf, { from: 'fhir-r4', to: 'hl7v2', now });
        const records = r.records > 0 ? readHl7v2(r.output).records.map((x) => x.record) : [];
        const appt = resources.find((x) => x?.resourceType === 'Appointment');
        if (appt) {
          const ev = records.find((x): x is AppointmentEvent => x.kind === 'appointment');
          expect(ev, 'an appointment event').to.not.equal(undefined);
          expect(ev!.appointment.status).to.equal(appt.status);
          if (appt.start) expect(Date.parse((ev!.appointment.start as { utc: string }).utc)).to.equal(Date.parse(appt.start));
        }
        const patient = resources.find((x) => x?.resourceType === 'Patient');
        const nhs = patient?.identifier?.find((i: { system?: string }) => /fhir\.nhs\.uk\/id\/nhs-number/i.test(i.system ?? ''))?.value;
        if (nhs) {
          const withPatient = records.find((x) => (x.kind === 'registration' ? x.patient : x.patient));
          const got = withPatient?.kind === 'registration' ? withPatient.patient.nhsNumber : withPatient?.patient?.nhsNumber;
          expect(got).to.equal(nhs);
        }
      });
    });
  }

  it('covers every XML sample through its JSON twin (fhir-r4 reads JSON)', () => {
    for (const xml of xmlFiles) expect(existsSync(xml.replace(/\.xml$/, '.json')), name(xml)).to.equal(true);
  });
});

describe('corpus: FHIR STU3 samples (GP Connect) are refused', () => {
  for (const file of stu3Files) {
    for (const to of writable('fhir-r4')) {
      it(`${name(file)} → ${to} is refused with "STU3" in the message`, () => {
        let err: unknown;
        try {
          convert(readFileSync(file), { from: 'fhir-r4', to, now });
        } catch (e) {
          err = e;
        }
        expect(err).to.be.instanceOf(TransformInvalidError);
        expect((err as Error).message).to.include('STU3');
      });
    }
  }
});

describe('corpus: the CLI exits 0 on every sample', () => {
  for (const file of [...hl7Files, ...r4Files]) {
    const from = file.endsWith('.hl7') ? 'hl7v2' : 'fhir-r4';
    const to = from === 'hl7v2' ? 'fhir-r4' : 'hl7v2';
    it(`meshd transform --from ${from} --to ${to} ${name(file)}`, () => {
      const r = spawnSync(process.execPath, [BIN, 'transform', '--from', from, '--to', to, file], { encoding: 'utf8' });
      expect(r.status, r.stderr).to.equal(0);
    });
  }
  for (const file of stu3Files) {
    it(`meshd transform refuses STU3 ${name(file)} with exit 7`, () => {
      const r = spawnSync(process.execPath, [BIN, 'transform', '--from', 'fhir-r4', '--to', 'hl7v2', file], { encoding: 'utf8' });
      expect(r.status).to.equal(7);
      expect(r.stderr).to.include('STU3');
    });
  }
});
