import { expect } from 'chai';
import { CLEARED, appointmentKey, isCleared, isSent, localAuthority, localSystem, triValue, type AppointmentEvent } from '../../src/transform/model';
import { isTestNhsNumber, isValidNhsNumber, nhsCheckDigit, normaliseNhsNumber } from '../../src/transform/nhs-number';

describe('canonical model', () => {
  describe('three-state fields', () => {
    it('tells a value, not sent and cleared apart', () => {
      expect(triValue('x')).to.equal('x');
      expect(triValue(undefined)).to.equal(undefined);
      expect(triValue(CLEARED)).to.equal(undefined);
      expect(isCleared(CLEARED)).to.equal(true);
      expect(isCleared({ cleared: true })).to.equal(true, 'a JSON copy of CLEARED is still cleared');
      expect(isCleared({ cleared: true, code: 'x' })).to.equal(false);
      expect(isCleared('')).to.equal(false);
      expect(isSent(undefined)).to.equal(false);
      expect(isSent(CLEARED)).to.equal(true);
    });
  });

  describe('local identifier systems', () => {
    it('keep the assigning authority through a round trip', () => {
      expect(localAuthority(localSystem('RX1 A/B'))).to.equal('RX1 A/B');
      expect(localAuthority(localSystem(undefined))).to.equal(undefined);
      expect(localAuthority('https://fhir.nhs.uk/Id/nhs-number')).to.equal(undefined);
    });
  });

  describe('appointmentKey', () => {
    const ev = (filler?: string, placer?: string): AppointmentEvent => ({
      kind: 'appointment',
      event: 'book',
      message: { sender: { application: 'PAS', organization: 'RX1' } },
      appointment: {
        status: 'booked',
        ...(filler && { fillerId: { system: 'urn:x', value: filler } }),
        ...(placer && { placerId: { system: 'urn:x', value: placer } }),
      },
    });
    it('is sender + filler id, else sender + placer id', () => {
      expect(appointmentKey(ev('F1', 'P1'))).to.equal('RX1|filler|F1');
      expect(appointmentKey(ev(undefined, 'P1'))).to.equal('RX1|placer|P1');
      expect(appointmentKey(ev('F1'), 'MAILBOX01')).to.equal('MAILBOX01|filler|F1');
      expect(appointmentKey(ev())).to.equal(undefined);
    });
  });
});

describe('NHS number', () => {
  it('accepts 999-range test numbers with a valid Modulus 11 check digit', () => {
    for (const n of ['9991000003', '9991007911', '9990500002', '9999999999', '9000000009']) expect(isValidNhsNumber(n), n).to.equal(true);
    expect(isTestNhsNumber('9991000003')).to.equal(true);
    expect(isTestNhsNumber('9000000009')).to.equal(false);
  });
  it('rejects a wrong check digit, wrong length and display form', () => {
    expect(isValidNhsNumber('9991000004')).to.equal(false);
    expect(isValidNhsNumber('999100000')).to.equal(false);
    expect(isValidNhsNumber('999 100 0003')).to.equal(false);
    expect(isValidNhsNumber(normaliseNhsNumber('999 100 0003'))).to.equal(true);
  });
  it('treats a remainder giving check digit 10 as invalid, whatever the last digit', () => {
    expect(nhsCheckDigit('999100002')).to.equal(undefined);
    for (let d = 0; d <= 9; d++) expect(isValidNhsNumber(`999100002${d}`)).to.equal(false);
  });
  it('maps check 11 to 0', () => {
    let found = '';
    for (let i = 0; i < 1000 && !found; i++) {
      const nine = `999000${String(i).padStart(3, '0')}`;
      let sum = 0;
      for (let k = 0; k < 9; k++) sum += Number(nine[k]) * (10 - k);
      if (sum % 11 === 0) found = nine;
    }
    expect(found).to.not.equal('');
    expect(nhsCheckDigit(found)).to.equal(0);
    expect(isValidNhsNumber(`${found}0`)).to.equal(true);
  });
});
