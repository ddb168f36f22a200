/**
 * The `notify-csv` format (write-only): appointment reminders as the CSV NHS Notify takes
 * over MESH (workflow NHS_NOTIFY_SEND_REQUEST; docs/mapping-basis.md, NHS services over MESH). Columns:
 * `messageReference`, `nhsNumber`, then `personalisation_<name>` for the template fields.
 * Only reminder and booking events become rows; every other record is skipped with a note.
 */
import { createHash } from 'node:crypto';
import { formatModule, writeAll, type FormatWriter, type TransformIssue, type WriteContext, type WriteResult } from './format';
import { appointmentKey, triValue, type AppointmentEvent, type CanonicalRecord, type HumanName, type Instant } from './model';
import { isValidNhsNumber } from './nhs-number';
import { formatRow, isRawProfile, spreadsheetSafe } from './csv/rfc4180';

/** Personalisation fields meshd can fill, in column order (docs/formats/notify-csv.md). */
export const PERSONALISATION_FIELDS = ['appointment_date', 'appointment_time', 'location', 'service', 'clinician', 'organisation'] as const;
export type PersonalisationField = (typeof PERSONALISATION_FIELDS)[number];

const DEFAULT_EVENTS = ['book', 'reminder'];

let dateFormat: Intl.DateTimeFormat | undefined;
let timeFormat: Intl.DateTimeFormat | undefined;

/** "Tuesday 10 June 2025" in UK local time, whatever offset the time was sent with. */
function ukDate(i: Instant): string {
  dateFormat ??= new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/London', weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
  return dateFormat.format(new Date(i.utc)).replace(',', '');
}

/** "10:15" (24-hour) in UK local time. */
function ukTime(i: Instant): string {
  timeFormat ??= new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/London', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  return timeFormat.format(new Date(i.utc));
}

function displayName(n: HumanName | undefined): string | undefined {
  if (!n) return undefined;
  const parts = [...(n.prefix ?? []), ...(n.given ?? []), ...(n.family ? [n.family] : [])];
  return parts.length ? parts.join(' ') : undefined;
}

/**
 * A reference that is the same every time the same event is written (Notify de-duplicates
 * on it): from the appointment key, the event and the start, as a UUID-shaped SHA-1 digest.
 */
export function messageReference(ev: AppointmentEvent): string {
  const start = triValue(ev.appointment.start)?.utc ?? '';
  const key = appointmentKey(ev) ?? ev.message.messageId ?? JSON.stringify(ev);
  const h = createHash('sha1').update(`meshd-notify|${key}|${ev.event}|${start}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16], 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function personalisation(ev: AppointmentEvent, field: PersonalisationField): string | undefined {
  const a = ev.appointment;
  const start = triValue(a.start);
  switch (field) {
    case 'appointment_date':
      return start ? ukDate(start) : undefined;
    case 'appointment_time':
      return start ? ukTime(start) : undefined;
    case 'location':
      return a.locations?.find((l) => l.name)?.name;
    case 'service': {
      const s = a.serviceTypes?.[0];
      return s?.text ?? s?.coding?.[0]?.display;
    }
    case 'clinician':
      return displayName(a.practitioners?.find((p) => p.name)?.name);
    case 'organisation':
      return a.organization?.name;
  }
}

function listOption(v: unknown): string[] | undefined {
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === 'string' && v.trim()) return v.split(',').map((s) => s.trim()).filter(Boolean);
  return undefined;
}

/**
 * Options: `events` (comma list, default "book,reminder"), `personalisation` (comma list of
 * PERSONALISATION_FIELDS, default all; the columns must match the Notify template).
 */
export function notifyCsvWriter(ctx?: WriteContext): FormatWriter {
  const events = listOption(ctx?.options?.events) ?? DEFAULT_EVENTS;
  const requested = listOption(ctx?.options?.personalisation);
  const unknown = requested?.filter((f) => !(PERSONALISATION_FIELDS as readonly string[]).includes(f)) ?? [];
  // Reported once, with the first group, before any record's issues.
  let optionErrors: TransformIssue[] = unknown.map((f) => ({ code: 'NOTIFY_UNKNOWN_FIELD', position: 'options.personalisation', field: f.slice(0, 40), text: `is not a personalisation field meshd can fill (${PERSONALISATION_FIELDS.join(', ')})` }));
  const fields = (requested ?? [...PERSONALISATION_FIELDS]).filter((f): f is PersonalisationField => (PERSONALISATION_FIELDS as readonly string[]).includes(f));
  let header = formatRow(['messageReference', 'nhsNumber', ...fields.map((f) => `personalisation_${f}`)]);
  const begin = () => {
    const out = { header, errors: optionErrors };
    header = '';
    optionErrors = [];
    return out;
  };
  return {
    write(records, first) {
      const begun = begin();
      const errors = begun.errors;
      const notes: TransformIssue[] = [];
      const appointments: WriteResult['appointments'] = [];
      const lines = [begun.header];
      records.forEach((rec, k) => {
        const i = first + k;
        const position = `record ${i + 1}`;
        if (rec.kind !== 'appointment') {
          notes.push({ code: 'NOTIFY_SKIPPED', message: i, position, field: 'event', text: `skipped: a ${rec.event} registration is not an appointment reminder` });
          return;
        }
        if (!events.includes(rec.event)) {
          notes.push({ code: 'NOTIFY_SKIPPED', message: i, position, field: 'event', text: `skipped: ${rec.event} events are not sent as reminders (sent: ${events.join(', ')})` });
          return;
        }
        const nhs = triValue(rec.patient?.nhsNumber);
        if (!nhs || !isValidNhsNumber(nhs)) {
          errors.push({ code: 'NOTIFY_NO_NHS_NUMBER', message: i, position, field: 'patient.nhsNumber', text: 'NHS Notify needs a valid NHS number to reach the patient; none was given' });
          return;
        }
        const values = fields.map((f) => personalisation(rec, f));
        const missing = fields.filter((_f, k) => values[k] === undefined);
        if (missing.some((f) => f === 'appointment_date' || f === 'appointment_time')) {
          errors.push({ code: 'NOTIFY_NO_START', message: i, position, field: 'appointment.start', text: 'a reminder needs the appointment start time' });
          return;
        }
        if (missing.length) notes.push({ code: 'NOTIFY_EMPTY_FIELD', message: i, position, text: `personalisation left empty (not in the record): ${missing.join(', ')}` });
        if (rec.patient?.restricted !== undefined && triValue(rec.patient.restricted)) {
          notes.push({ code: 'NOTIFY_RESTRICTED', message: i, position, field: 'patient.restricted', text: 'restricted patient: the CSV carries only the NHS number and appointment details; Notify looks the contact details up itself' });
        }
        // Personalisation text ends up in spreadsheets too: guard formula-like cells unless profile=raw.
        const cells = isRawProfile(ctx?.options) ? values : values.map(spreadsheetSafe);
        if (cells.some((c, k) => c !== values[k])) notes.push({ code: 'CSV_SPREADSHEET_SAFE', message: i, position, text: "personalisation that a spreadsheet would run as a formula was prefixed with ' (profile=raw writes it as it is)" });
        lines.push(formatRow([messageReference(rec), nhs, ...cells]));
        const start = triValue(rec.appointment.start);
        appointments.push({ key: appointmentKey(rec) ?? '', event: rec.event, status: rec.appointment.status, ...(start ? { start: start.utc } : {}) });
      });
      return { output: Buffer.from(lines.join(''), 'utf8'), errors, notes, appointments };
    },
    end() {
      const begun = begin();
      return { output: Buffer.from(begun.header, 'utf8'), errors: begun.errors, notes: [] };
    },
  };
}

export function writeNotifyCsv(records: CanonicalRecord[], ctx?: WriteContext): WriteResult {
  return writeAll(notifyCsvWriter(ctx), records);
}

export const format = formatModule({
  name: 'notify-csv',
  description: 'NHS Notify MESH send-request CSV (write-only): appointment reminders, messageReference,nhsNumber,personalisation_*',
  writer: notifyCsvWriter,
});
