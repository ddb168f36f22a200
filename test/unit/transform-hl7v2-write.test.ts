import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import type { AppointmentHistory } from '../../src/transform/format';
import type { AppointmentEvent, CanonicalRecord, PatientRegistration } from '../../src/transform/model';
import { readHl7v2 } from '../../src/transform/hl7v2/read';
import { hl7v2Writer, selectTrigger, writeHl7v2 } from '../../src/transform/hl7v2/write';

const FIXTURES = join(__dirname, '..', '..', '..', 'fixtures');
const load = (name: string) => JSON.parse(readFileSync(join(FIXTURES, 'canonical', name), 'utf8')) as CanonicalRecord[];
const now = () => new Date('2025-06-01T12:00:00Z');
const plain = (x: unknown) => JSON.parse(JSON.stringify(x));
const segs = (buf: Buffer) => buf.toString('utf8').split('\r').filter(Boolean);

describe('HL7 v2 write', () => {
  it('round-trips canonical → hl7v2 → canonical unchanged (registrations.json)', () => {
    const records = load('registrations.json');
    const w = writeHl7v2(records, { now });
    expect(w.errors).to.deep.equal([]);
    const back = readHl7v2(w.output);
    expect(back.errors).to.deep.equal([]);
    expect(plain(back.records.map((r) => r.record))).to.deep.equal(records);
  });

  it('round-trips canonical → hl7v2 → canonical unchanged (appointments.json, one conversion per event)', () => {
    // The fixture's events are independent examples for one appointment key: in one conversion
    // each would inform the next (the modify after the reschedule's new start would be S13).
    const records = load('appointments.json');
    const written = records.map((r) => writeHl7v2([r], { now }));
    expect(written.flatMap((w) => w.errors)).to.deep.equal([]);
    const back = readHl7v2(Buffer.concat(written.map((w) => w.output)));
    expect(back.errors).to.deep.equal([]);
    expect(plain(back.records.map((r) => r.record))).to.deep.equal(records);
  });

  it('writes v2.4 HL7 UK style: NHS number first in PID-3 as ^^^NHS^NH, NSTS in PID-32, PD1 practice/GP, PV1|1|N', () => {
    const [a28] = load('registrations.json');
    const lines = segs(writeHl7v2([a28], { now }).output);
    expect(lines[0]).to.match(/^MSH\|\^~\\&\|PAS\|RX1\|EPR\|Y12345\|20250601091500\+0100\|\|ADT\^A28\^ADT_A05\|REG0001\|P\|2\.4$/);
    expect(lines[1]).to.equal('EVN|A28|202506010914');
    const pid = lines[2].split('|');
    expect(pid[3]).to.equal('9991000003^^^NHS^NH~RX1000123^^^RX1^MR');
    expect(pid[32]).to.equal('NSTS01');
    expect(lines[3]).to.equal('PD1|||Synthetic Practice^^Y12345|G9990012^Jones^Sam^^^Dr||||||||Y');
    expect(lines[4]).to.equal('PV1|1|N');
  });

  it('writes A04/A08 instead of A28/A31 when the receiver asks (--option register=A04, update=A08)', () => {
    const [a28, a31] = load('registrations.json');
    const out = writeHl7v2([a28, a31], { now, options: { register: 'A04', update: 'A08' } }).output;
    const mshs = segs(out).filter((l) => l.startsWith('MSH'));
    expect(mshs.map((l) => l.split('|')[8])).to.deep.equal(['ADT^A04^ADT_A01', 'ADT^A08^ADT_A01']);
    expect(readHl7v2(out).records.map((r) => r.record.event)).to.deep.equal(['register', 'update']);
  });

  it('writes "" only for cleared values', () => {
    const update = load('registrations.json')[1];
    const pid = segs(writeHl7v2([update], { now }).output)[2].split('|');
    expect(pid[8]).to.equal('""');
    expect(pid[11]).to.equal('""');
    expect(pid[13]).to.equal('""');
    expect(pid[22] ?? '').to.equal('', 'not sent stays empty');
  });

  it('writes consecutive merges of one message as one A40 with several PID/MRG pairs', () => {
    const merges = load('registrations.json').filter((r) => r.event === 'merge');
    const lines = segs(writeHl7v2(merges, { now }).output);
    expect(lines.map((l) => l.slice(0, 3))).to.deep.equal(['MSH', 'EVN', 'PID', 'MRG', 'PID', 'MRG']);
    expect(lines[3]).to.equal('MRG|9991023755^^^NHS^NH~RX1000999^^^RX1^MR');
  });

  it('says when a very restricted (V) marking is written as the one v2.4 protection flag', () => {
    const r = plain(load('registrations.json')[0]) as PatientRegistration;
    r.patient.restricted = 'V';
    const w = writeHl7v2([r], { now });
    expect(segs(w.output)[3].split('|')[12]).to.equal('Y');
    expect(w.notes.map((n) => [n.code, n.field])).to.deep.equal([['FIELD_NOT_CARRIED', 'patient.restricted']]);
  });

  it('notes appointment fields SIU cannot carry instead of dropping them silently', () => {
    const [book] = load('appointments.json') as AppointmentEvent[];
    const ev = plain(book) as AppointmentEvent;
    ev.appointment.priority = 5;
    ev.appointment.deliveryChannel = 'Video';
    const w = writeHl7v2([ev], { now });
    expect(w.notes.map((n) => [n.code, n.message, n.field])).to.deep.equal([['FIELD_NOT_CARRIED', 0, 'appointment']]);
    expect(w.notes[0].text).to.include('priority, deliveryChannel');
    expect(writeHl7v2([book], { now }).notes).to.deep.equal([]);
  });

  it('names UTF-8 in MSH-18 only when the message is not plain ASCII', () => {
    const r = plain(load('registrations.json')[0]) as PatientRegistration;
    expect(segs(writeHl7v2([r], { now }).output)[0].split('|')[17]).to.equal(undefined);
    r.patient.names = [{ family: 'Zoë' }];
    const out = writeHl7v2([r], { now }).output;
    expect(segs(out)[0].split('|')[17]).to.equal('UNICODE UTF-8');
    expect((readHl7v2(out).records[0].record as PatientRegistration).patient.names).to.deep.equal([{ family: 'Zoë' }]);
  });

  it('adds TQ1 timing and the asked MSH-12 for v2.5+ receivers (--option version=2.5.1)', () => {
    const [book] = load('appointments.json');
    const w = writeHl7v2([book], { now, options: { version: '2.5.1' } });
    const lines = segs(w.output);
    expect(lines[0].split('|')[11]).to.equal('2.5.1');
    expect(lines[2]).to.equal('TQ1|1|||||30^min|20250714093000+0100|20250714100000+0100');
    expect(plain(readHl7v2(w.output).records[0].record)).to.deep.equal(book);
    expect(segs(writeHl7v2([book], { now, options: { version: '9.9' } }).output)[0].split('|')[11]).to.equal('2.4');
  });

  it('wraps messages in FHS/BHS…BTS/FTS when asked', () => {
    const out = writeHl7v2(load('appointments.json').slice(0, 2), { now, options: { batch: 'true' } }).output.toString();
    expect(out.startsWith('FHS|^~\\&|')).to.equal(true);
    expect(out).to.include('\rBTS|2\rFTS|1\r');
    expect(readHl7v2(Buffer.from(out)).records).to.have.length(2);
  });

  it('records the appointments written for the ledger', () => {
    const w = writeHl7v2(load('appointments.json').slice(0, 1), { now });
    expect(w.appointments).to.deep.equal([{ key: 'RX1|filler|APPT-2001', event: 'book', start: '2025-07-14T08:30:00.000Z', status: 'booked', trigger: 'S12' }]);
  });

  it('refuses (per record) what SIU cannot carry: reminders, and appointments without ids', () => {
    const [book] = load('appointments.json') as AppointmentEvent[];
    const reminder = { ...plain(book), event: 'reminder' };
    const anonymous = plain(book);
    delete anonymous.appointment.fillerId;
    delete anonymous.appointment.placerId;
    const w = writeHl7v2([reminder, book, anonymous], { now });
    expect(w.errors.map((e) => [e.code, e.message])).to.deep.equal([
      ['HL7_NO_TRIGGER', 0],
      ['HL7_MISSING_FIELD', 2],
    ]);
    expect(readHl7v2(w.output).records).to.have.length(1);
  });

  describe('trigger selection (docs/formats/hl7v2.md)', () => {
    const [book] = load('appointments.json') as AppointmentEvent[];
    const ev = (event: string, status: string): AppointmentEvent => ({ ...plain(book), event, appointment: { ...plain(book.appointment), status } });
    const prev = (lastEvent: string, start = '2025-07-14T08:30:00.000Z'): AppointmentHistory => ({ lastEvent, start });
    const cases: Array<[string, string, AppointmentHistory | undefined, string, string]> = [
      ['book', 'booked', undefined, 'S12', 'Booked'],
      ['book', 'pending', undefined, 'S12', 'Pending'],
      ['book', 'waitlist', undefined, 'S12', 'Waitlist'],
      ['modify', 'booked', undefined, 'S14', 'Booked'],
      ['book', 'booked', prev('book'), 'S14', 'Booked'],
      ['book', 'booked', prev('book', '2025-07-13T08:30:00.000Z'), 'S13', 'Booked'],
      ['modify', 'booked', prev('book', '2025-07-13T08:30:00.000Z'), 'S13', 'Booked'],
      ['book', 'booked', prev('cancel'), 'S12', 'Booked'],
      ['reschedule', 'booked', undefined, 'S13', 'Booked'],
      ['cancel', 'cancelled', prev('book'), 'S15', 'Cancelled'],
      ['modify', 'cancelled', prev('book'), 'S15', 'Cancelled'],
      ['discontinue', 'cancelled', prev('book'), 'S16', 'Discontinued'],
      ['delete', 'entered-in-error', prev('book'), 'S17', 'Deleted'],
      ['modify', 'entered-in-error', undefined, 'S17', 'Deleted'],
      ['noshow', 'noshow', prev('book'), 'S26', 'Noshow'],
      ['modify', 'fulfilled', prev('book'), 'S14', 'Complete'],
      ['modify', 'arrived', prev('book'), 'S14', 'Started'],
    ];
    for (const [event, status, history, trigger, filler] of cases) {
      it(`${event}/${status} with ${history ? `last ${history.lastEvent}${history.start !== '2025-07-14T08:30:00.000Z' ? ', other start' : ''}` : 'no history'} → ${trigger}`, () => {
        expect(selectTrigger(ev(event, status), history)).to.deep.equal({ trigger, fillerStatus: filler });
      });
    }

    it('uses the ledger history passed in WriteContext.previousAppointment, by appointment key', () => {
      const seen: string[] = [];
      const w = writeHl7v2([ev('book', 'booked')], {
        now,
        previousAppointment: (key) => {
          seen.push(key);
          return prev('book', '2025-07-01T08:30:00.000Z');
        },
      });
      expect(seen).to.deep.equal(['RX1|filler|APPT-2001']);
      expect(w.appointments[0].trigger).to.equal('S13');
      expect(segs(w.output)[0]).to.include('|SIU^S13^SIU_S12|');
    });

    describe('within one conversion, each record informs the later ones of the same appointment', () => {
      const at = (utc: string) => ({ utc, offset: '+01:00', precision: 'second' as const, assumedZone: false, local: new Date(Date.parse(utc) + 3_600_000).toISOString().slice(0, 19) });
      const T1 = '2025-07-14T08:30:00.000Z';
      const T2 = '2025-07-21T08:30:00.000Z';
      const step = (event: string, status: string, start?: string) => {
        const r = ev(event, status);
        delete r.appointment.end;
        if (start) r.appointment.start = at(start);
        else delete r.appointment.start;
        return r;
      };
      const triggers = (records: AppointmentEvent[], ctx: Parameters<typeof writeHl7v2>[1] = { now }) => {
        const w = writeHl7v2(records, ctx);
        expect(w.errors).to.deep.equal([]);
        // The triggers written in the messages themselves, in order.
        return segs(w.output).filter((l) => l.startsWith('MSH')).map((l) => l.split('|')[8].split('^')[1]);
      };

      it('book, reschedule, modify, cancel in one batch → S12, S13, S14, S15', () => {
        expect(triggers([step('book', 'booked', T1), step('reschedule', 'booked', T2), step('modify', 'booked', T2), step('cancel', 'cancelled', T2)])).to.deep.equal(['S12', 'S13', 'S14', 'S15']);
      });

      it('a modify after a reschedule is read against the reschedule, not the older ledger state (S14, not S13)', () => {
        const ledger = { now, previousAppointment: () => prev('book', T1) };
        expect(triggers([step('reschedule', 'booked', T2), step('modify', 'booked', T2)], ledger)).to.deep.equal(['S13', 'S14']);
      });

      it('a modify that moves the start of an appointment booked earlier in the batch → S13; one that sends no start keeps the known start', () => {
        expect(triggers([step('book', 'booked', T1), step('modify', 'booked', T2), step('modify', 'booked'), step('modify', 'booked', T2)])).to.deep.equal(['S12', 'S13', 'S14', 'S14']);
      });

      it('remembers across groups of one writer, and keeps appointments apart by key', () => {
        const w = hl7v2Writer({ now });
        const other = step('book', 'booked', T1);
        other.appointment.fillerId = { ...other.appointment.fillerId!, value: 'APPT-OTHER' };
        const first = w.write([step('book', 'booked', T1)], 0);
        const second = w.write([step('modify', 'booked', T2), other], 1);
        expect([...first.appointments, ...second.appointments].map((a) => a.trigger)).to.deep.equal(['S12', 'S13', 'S12']);
      });
    });
  });
});
