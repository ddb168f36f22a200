import type { CanonicalRecord } from './model';

/**
 * The contract every format module implements. Conversion is always
 * `write(target, read(source, bytes))` through the canonical model (src/transform/model.ts).
 */

/**
 * A problem or a note about one message/record. Names the field and the position in the
 * input (segment/field, JSON path, CSV line and column) but NEVER patient values.
 */
export interface TransformIssue {
  /** Stable machine code, e.g. HL7_MISSING_FIELD, FHIR_INVALID, CSV_BAD_VALUE, FIELD_DROPPED, STU3_REFUSED. */
  code: string;
  /** Zero-based index of the message/record within the input (batch, Bundle, CSV row), when known. */
  message?: number;
  /** Where in the input or output: e.g. "MSH-9", "PID-3[2].1", "Bundle.entry[3].resource.start", "line 4". */
  position?: string;
  /** The model or format field concerned, e.g. "patient.nhsNumber", "start". */
  field?: string;
  /** What is wrong and, where useful, what to do. No patient values. */
  text: string;
}

/** What the daemon knows of an appointment's history (ledger `appointments` table). */
export interface AppointmentHistory {
  /** Event kind last sent or received for this appointment key, e.g. "book", "reschedule". */
  lastEvent: string;
  /** Start instant (ISO 8601) last sent, so a changed start can be told from another change. */
  start?: string;
  /** Status last sent (FHIR Appointment.status vocabulary). */
  status?: string;
}

export interface ReadContext {
  /** Free options per format (e.g. { profile: 'spreadsheet-safe' }). */
  options?: Record<string, unknown>;
}

export interface ReadResult {
  /** Records read, in input order, each with the index of the message it came from. */
  records: Array<{ record: CanonicalRecord; message: number }>;
  /** Messages that could not be read: each is quarantined with its reason; the rest go through. */
  errors: TransformIssue[];
  /** Things read but worth reporting (assumed time zones, unknown codes kept as-is, …). */
  notes: TransformIssue[];
  /** How many messages the input held (read or not). */
  messageCount: number;
}

export interface WriteContext {
  /** Previous state of an appointment, by appointment key (see appointmentKey in model.ts). */
  previousAppointment?: (key: string) => AppointmentHistory | undefined;
  options?: Record<string, unknown>;
  /** Clock for generated timestamps and ids (tests pass a fixed one). */
  now?: () => Date;
}

export interface WriteResult {
  output: Buffer;
  /**
   * Records that could not be written (quarantined), with reasons. Here `message` is the
   * index of the record in the `records` array given to write; convert() maps it back to
   * the source message.
   */
  errors: TransformIssue[];
  /** Fields the target cannot carry, restricted markings it cannot hold, defaults applied, … */
  notes: TransformIssue[];
  /** Appointment events written, for the daemon to record in the ledger. */
  appointments: Array<{ key: string; event: string; start?: string; status?: string; trigger?: string }>;
}

export interface FormatModule {
  /** Registry name: 'fhir-r4' | 'hl7v2' | 'csv' | 'notify-csv' | … */
  readonly name: string;
  readonly description: string;
  /** Absent for write-only formats (notify-csv). */
  read?(input: Buffer, ctx?: ReadContext): ReadResult;
  /** Absent for read-only formats. */
  write?(records: CanonicalRecord[], ctx?: WriteContext): WriteResult;
}
