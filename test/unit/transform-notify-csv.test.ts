import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { format, messageReference } from '../../src/transform/notify-csv';
import type { AppointmentEvent, CanonicalRecord } from '../../src/transform/model';

const FIXTURES = join(__dirname, '..', '..', '..', 'fixtures', 'csv');
const canonical = (): CanonicalRecord[] => JSON.parse(readFileSync(join(FIXTURES, 'canonical-records.json'), 'utf8'));
const write = (records: CanonicalRecord[], options?: Record<string, unknown>) => format.write!(records, options ? { options } : undefined);
const rows = (b: Buffer): string[][] => parse(b, { bom: false });

function booking(overrides: Partial<AppointmentEvent['appointment']> = {}, event: AppointmentEvent['event'] = 'book'): AppointmentEvent {
  return {
    kind: 'appointment',
    event,
    message: { messageId: 'N-1', sender: { organization: 'RRF' } },
    patient: { nhsNumber: '9991000003', identifiers: [] },
    appointment: {
      fillerId: { system: 'urn:meshd:local:RRF', value: 'FL-1', type: 'FILL' },
      status: 'booked',
      // 08:15 UTC on a BST date is 09:15 in the UK.
      start: { utc: '2025-06-10T08:15:00.000Z', offset: '+00:00', precision: 'second', assumedZone: false, local: '2025-06-10T08:15:00' },
      locations: [{ identifiers: [], name: 'Fracture Clinic, Leeds' }],
      serviceTypes: [{ text: 'Orthopaedics' }],
      practitioners: [{ identifiers: [], name: { prefix: ['Dr'], given: ['Alex'], family: 'Testdoctor' } }],
      organization: { identifiers: [], name: 'Synthetic Hospitals NHS Trust' },
      ...overrides,
    },
  };
}

describe('notify-csv format', () => {
  it('has no reader: it is write-only', () => {
    expect(format.read).to.equal(undefined);
    expect(format.name).to.equal('notify-csv');
  });

  it('writes the header messageReference, nhsNumber, personalisation_* exactly', () => {
    const [header] = rows(write([booking()]).output);
    expect(header).to.deep.equal([
      'messageReference',
      'nhsNumber',
      'personalisation_appointment_date',
      'personalisation_appointment_time',
      'personalisation_location',
      'personalisation_service',
      'personalisation_clinician',
      'personalisation_organisation',
    ]);
  });

  it('fills each column of a booking row', () => {
    const ev = booking();
    const w = write([ev]);
    expect(w.errors).to.deep.equal([]);
    const [, row] = rows(w.output);
    expect(row[0]).to.equal(messageReference(ev));
    expect(row[0]).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(row[1]).to.equal('9991000003');
    expect(row[2]).to.equal('Tuesday 10 June 2025');
    expect(row[3]).to.equal('09:15');
    expect(row[4]).to.equal('Fracture Clinic, Leeds');
    expect(row[5]).to.equal('Orthopaedics');
    expect(row[6]).to.equal('Dr Alex Testdoctor');
    expect(row[7]).to.equal('Synthetic Hospitals NHS Trust');
    expect(w.appointments).to.deep.equal([{ key: 'RRF|filler|FL-1', event: 'book', status: 'booked', start: '2025-06-10T08:15:00.000Z' }]);
  });

  it('shows UK local time in winter too (GMT)', () => {
    const ev = booking({ start: { utc: '2025-12-01T14:05:00.000Z', offset: '+01:00', precision: 'second', assumedZone: false, local: '2025-12-01T15:05:00' } });
    const [, row] = rows(write([ev]).output);
    expect(row.slice(2, 4)).to.deep.equal(['Monday 1 December 2025', '14:05']);
  });

  it('makes messageReference deterministic per event and distinct between events', () => {
    const a = rows(write([booking()]).output)[1][0];
    const b = rows(write([booking()]).output)[1][0];
    const reminder = rows(write([booking({}, 'reminder')]).output)[1][0];
    const moved = rows(write([booking({ start: { utc: '2025-06-11T08:15:00.000Z', offset: '+01:00', precision: 'second', assumedZone: false, local: '2025-06-11T09:15:00' } })]).output)[1][0];
    expect(a).to.equal(b);
    expect(new Set([a, reminder, moved]).size).to.equal(3);
  });

  it('skips events that are not reminders or bookings, with a note for each', () => {
    const records = canonical(); // book, cancel, update (registration), merge, reminder
    const w = write(records);
    const out = rows(w.output);
    expect(out).to.have.length(2); // header + the booking; the reminder has no NHS number
    expect(out[1][1]).to.equal('9991000003');
    const skipped = w.notes.filter((n) => n.code === 'NOTIFY_SKIPPED').map((n) => n.message);
    expect(skipped).to.deep.equal([1, 2, 3]);
    expect(w.errors.map((e) => [e.code, e.message])).to.deep.equal([['NOTIFY_NO_NHS_NUMBER', 4]]);
  });

  it('restricts and orders personalisation columns from options, and refuses unknown ones', () => {
    const w = write([booking()], { personalisation: 'appointment_time,location' });
    const out = rows(w.output);
    expect(out[0]).to.deep.equal(['messageReference', 'nhsNumber', 'personalisation_appointment_time', 'personalisation_location']);
    expect(out[1].slice(2)).to.deep.equal(['09:15', 'Fracture Clinic, Leeds']);
    const bad = write([booking()], { personalisation: 'appointment_time,shoe_size' });
    expect(bad.errors[0]).to.include({ code: 'NOTIFY_UNKNOWN_FIELD', field: 'shoe_size' });
  });

  it('can include reschedules when asked through options.events', () => {
    const ev = booking({}, 'reschedule');
    expect(rows(write([ev]).output)).to.have.length(1);
    expect(rows(write([ev], { events: 'book,reschedule,reminder' }).output)).to.have.length(2);
  });

  it('refuses a reminder without a start time, and notes empty personalisation', () => {
    const noStart = write([booking({ start: undefined })]);
    expect(noStart.errors[0].code).to.equal('NOTIFY_NO_START');
    const noPlace = write([booking({ locations: undefined })]);
    expect(noPlace.errors).to.deep.equal([]);
    expect(rows(noPlace.output)[1][4]).to.equal('');
    expect(noPlace.notes[0].text).to.contain('location');
  });
});
