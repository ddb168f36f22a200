import { expect } from 'chai';
import { addMinutes, formatIsoDateTime, instantFromDate, isoUtc, londonOffsetMinutes, makeInstant, parseIsoDateTime, type TimeResult } from '../../src/transform/time';
import { dateOfDtm, formatDtm, parseDtm } from '../../src/transform/hl7v2/datetime';
import type { Instant } from '../../src/transform/model';

function ok(r: TimeResult): Instant {
  if (!r.ok) throw new Error(`expected a time, got ${r.problem}`);
  return r.instant;
}

describe('UK local time resolution (Europe/London)', () => {
  it('reads a summer wall time as BST (+01:00) and a winter one as GMT', () => {
    const summer = ok(makeInstant({ year: 2025, month: 7, day: 14, hour: 9, minute: 30 }));
    expect(summer).to.deep.equal({ utc: '2025-07-14T08:30:00.000Z', offset: '+01:00', precision: 'minute', assumedZone: true, local: '2025-07-14T09:30' });
    const winter = ok(makeInstant({ year: 2025, month: 1, day: 14, hour: 9, minute: 30 }));
    expect(winter.utc).to.equal('2025-01-14T09:30:00.000Z');
    expect(winter.offset).to.equal('+00:00');
  });

  it('detects the spring-forward gap (01:00–01:59 on the last Sunday of March does not exist)', () => {
    const r = makeInstant({ year: 2025, month: 3, day: 30, hour: 1, minute: 30 });
    expect(r.ok).to.equal(false);
    expect(r.ok === false && r.problem).to.equal('gap');
    expect(ok(makeInstant({ year: 2025, month: 3, day: 30, hour: 0, minute: 59 })).offset).to.equal('+00:00');
    expect(ok(makeInstant({ year: 2025, month: 3, day: 30, hour: 2, minute: 0 })).utc).to.equal('2025-03-30T01:00:00.000Z');
  });

  it('detects the autumn overlap (01:00–01:59 on the last Sunday of October happens twice)', () => {
    const r = makeInstant({ year: 2025, month: 10, day: 26, hour: 1, minute: 30 });
    expect(r.ok === false && r.problem).to.equal('overlap');
    // With an offset it is unambiguous.
    expect(ok(makeInstant({ year: 2025, month: 10, day: 26, hour: 1, minute: 30 }, 0)).utc).to.equal('2025-10-26T01:30:00.000Z');
    expect(ok(makeInstant({ year: 2025, month: 10, day: 26, hour: 1, minute: 30 }, 60)).utc).to.equal('2025-10-26T00:30:00.000Z');
  });

  it('knows 1925 British Summer Time: 19250704000000 local is 3 July 23:00Z, but the birth date stays 4 July', () => {
    const t = ok(parseDtm('19250704000000'));
    expect(t.utc).to.equal('1925-07-03T23:00:00.000Z');
    expect(t.offset).to.equal('+01:00');
    expect(dateOfDtm('19250704')).to.equal('1925-07-04');
    expect(dateOfDtm('19250704000000')).to.equal('1925-07-04');
  });

  it('keeps local midnight in summer on its own day', () => {
    const t = ok(parseDtm('20250601000000'));
    expect(t.local).to.equal('2025-06-01T00:00:00');
    expect(t.utc).to.equal('2025-05-31T23:00:00.000Z');
    expect(formatDtm(t)).to.equal('20250601000000');
  });

  it('keeps an explicit offset and the received precision (no invented seconds)', () => {
    const t = ok(parseDtm('202109240930+0215'));
    expect(t).to.deep.equal({ utc: '2021-09-24T07:15:00.000Z', offset: '+02:15', precision: 'minute', assumedZone: false, local: '2021-09-24T09:30' });
    expect(formatDtm(t)).to.equal('202109240930+0215');
    expect(formatIsoDateTime(t, 'second')).to.equal('2021-09-24T09:30:00+02:15');
    expect(ok(parseDtm('20140529080238.241+0100')).precision).to.equal('millisecond');
  });

  it('writes assumed zones back without an offset unless asked', () => {
    const t = ok(parseDtm('202507140930'));
    expect(formatDtm(t)).to.equal('202507140930');
    expect(formatDtm(t, true)).to.equal('202507140930+0100');
  });

  it('rejects impossible dates and malformed text', () => {
    expect(parseDtm('20250230').ok).to.equal(false);
    expect(parseDtm('2025-01-01').ok).to.equal(false);
    expect(parseDtm('202501011260').ok).to.equal(false);
    expect(parseIsoDateTime('yesterday').ok).to.equal(false);
  });

  it('knows the days of each month, 29 February only in leap years', () => {
    for (const [text, valid] of [['20000229', true], ['20240229', true], ['19000229', false], ['20250229', false], ['21000229', false], ['20250430', true], ['20250431', false], ['20251231', true], ['20251232', false]] as const) {
      expect(parseDtm(text).ok, text).to.equal(valid);
    }
    expect(makeInstant({ year: 4, month: 2, day: 29 }).ok).to.equal(true);
    expect(makeInstant({ year: 100, month: 2, day: 29 }).ok).to.equal(false);
  });

  it('writes UTC instants exactly as Date.toISOString does, across years 0–9999 and beyond', () => {
    const first = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
    const last = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    const samples = [first, first - 1, last, last + 1, 0, -1, 1, 951_782_400_000, 951_868_799_999, 4_107_542_400_000, -2_208_988_800_001, 1.5, Number.MAX_SAFE_INTEGER / 1000];
    // A fixed pseudo-random spread (reproducible): every day of the range is as likely.
    let seed = 42;
    for (let i = 0; i < 20_000; i++) {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      const r = (seed / 2_147_483_648) * (last - first);
      samples.push(first + Math.floor(r) + (i % 1000));
    }
    for (const ms of samples) expect(isoUtc(ms), String(ms)).to.equal(new Date(ms).toISOString());
  });

  it('gives a date alone as makeInstant does, without a zone, and nothing for a day that does not exist', () => {
    for (const text of ['19250704', '20000229', '00010101', '99991231', '1925', '192507', '20250330', '20251026', '19000229', '20250431', '20251300', '0000']) {
      const m = /^(\d{4})(\d{2})?(\d{2})?/.exec(text)!;
      const parts = { year: Number(m[1]), month: m[2] === undefined ? undefined : Number(m[2]), day: m[3] === undefined ? undefined : Number(m[3]) };
      const full = makeInstant(parts);
      expect(dateOfDtm(text), text).to.equal(full.ok ? full.instant.local : undefined);
    }
  });

  it('parses FHIR dateTime and instant text', () => {
    expect(ok(parseIsoDateTime('2025-06-01T08:30:00+01:00')).utc).to.equal('2025-06-01T07:30:00.000Z');
    expect(ok(parseIsoDateTime('2025-06-01T07:30:00.000Z')).offset).to.equal('+00:00');
    expect(ok(parseIsoDateTime('2025-06-01')).precision).to.equal('day');
  });

  it('adds minutes across the autumn change keeping UK local time', () => {
    const start = ok(makeInstant({ year: 2025, month: 10, day: 26, hour: 0, minute: 30 }));
    const end = addMinutes(start, 120);
    expect(end.utc).to.equal('2025-10-26T01:30:00.000Z');
    expect(end.local).to.equal('2025-10-26T01:30');
    expect(end.offset).to.equal('+00:00');
    // 01:30 happens twice that night: written out, it must carry its offset.
    expect(formatDtm(end)).to.equal('202510260130+0000');
  });

  it('shows a real moment in UK local time', () => {
    expect(instantFromDate(new Date('2025-07-01T12:00:00Z')).local).to.equal('2025-07-01T13:00:00');
  });

  it('agrees with ICU Europe/London on both sides of every change 1996–2037 (the fast path)', () => {
    const icu = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/London', timeZoneName: 'longOffset' });
    const icuOffset = (ms: number) => {
      const name = icu.formatToParts(new Date(ms)).find((p) => p.type === 'timeZoneName')?.value ?? '';
      return name === 'GMT+01:00' ? 60 : 0;
    };
    for (let year = 1996; year <= 2037; year++) {
      for (const month of [2, 9]) {
        const lastDay = Date.UTC(year, month + 1, 0);
        for (let ms = lastDay - 8 * 86_400_000; ms <= lastDay + 86_400_000; ms += 3_600_000) {
          expect(londonOffsetMinutes(ms), new Date(ms).toISOString()).to.equal(icuOffset(ms));
        }
      }
    }
  });
});
