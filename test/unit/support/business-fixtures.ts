import { createHash } from 'node:crypto';
import type { AppointmentEvent, Instant } from '../../../src/transform/model';

/** Synthetic payloads for the business-identity and acknowledgement tests. */

/** Synthetic people only: 9991000003 is a test-range NHS number with a valid check digit. */
export const NHS = '9991000003';
export const MRN_KEY = 'patient:local:urn:meshd:local:RX1|RX1000123';
export const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
export const now = () => new Date('2026-01-10T12:00:00Z');

export function instant(utc: string, local: string, offset: string): Instant {
  return { utc, offset, precision: 'second', assumedZone: false, local };
}

export function appointmentRecord(o: { event?: AppointmentEvent['event']; verified?: boolean; messageId?: string; sentAt?: Instant; recordedAt?: Instant; filler?: string } = {}): AppointmentEvent {
  return {
    kind: 'appointment',
    event: o.event ?? 'book',
    message: {
      sender: { application: 'PAS', organization: 'RX1' },
      receiver: { application: 'EPR', organization: 'Y12345' },
      ...(o.messageId && { messageId: o.messageId }),
      ...(o.sentAt && { sentAt: o.sentAt }),
      ...(o.recordedAt && { recordedAt: o.recordedAt }),
    },
    appointment: {
      fillerId: { system: 'urn:meshd:local:RX1', value: o.filler ?? 'APPT-1', type: 'FILL', assigner: 'RX1' },
      status: o.event === 'cancel' ? 'cancelled' : 'booked',
      start: instant('2026-07-01T08:00:00.000Z', '2026-07-01T09:00:00', '+01:00'),
      end: instant('2026-07-01T08:30:00.000Z', '2026-07-01T09:30:00', '+01:00'),
    },
    patient: {
      nhsNumber: NHS,
      nhsNumberVerification: o.verified === false ? '02' : '01',
      identifiers: [{ system: 'urn:meshd:local:RX1', value: 'RX1000123', type: 'MR', assigner: 'RX1' }],
      names: [{ family: 'ZEBEDEE', given: ['Quill'] }],
      birthDate: '1971-02-03',
      gender: 'female',
    },
  };
}

/** An ADT^A31 whose PID-32 says NSTS01 (verified) or not. */
export function adt(o: { control?: string; msh7?: string; evn2?: string | null; verified?: boolean; pid3?: string }): string {
  const pid = ['PID', '1', '', o.pid3 ?? `${NHS}^^^NHS^NH~RX1000123^^^RX1^MR`, '', 'ZEBEDEE^Quill', '', '19710203', 'F'];
  while (pid.length < 32) pid.push('');
  if (o.verified !== false) pid.push('NSTS01');
  const lines = [`MSH|^~\\&|PAS|RX1|EPR|Y12345|${o.msh7 ?? ''}||ADT^A31^ADT_A05|${o.control ?? 'CTRL-1'}|P|2.4`];
  if (o.evn2 !== null) lines.push(`EVN|A31|${o.evn2 ?? ''}`);
  lines.push(pid.join('|'), 'PV1|1|N');
  return lines.join('\r') + '\r';
}
export const hl7 = (...messages: string[]) => Buffer.from(messages.join(''), 'latin1');
