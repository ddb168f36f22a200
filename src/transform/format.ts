import type { CanonicalRecord } from './model';

/**
 * The contract every format module implements. Conversion is always read(source) then
 * write(target) through the canonical model (src/transform/model.ts), a bounded group of
 * messages at a time (convert.ts).
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

/**
 * A writer for one conversion: records go in a group at a time, output comes out a piece at a
 * time, so memory follows the group, not the file.
 */
export interface FormatWriter {
  /**
   * Writes the next records. `first` is the index of `records[0]` among all records of the
   * conversion: issue indexes (`message`) and anything derived from a record's position use it.
   * `output` is this group's bytes, to append to what was written before.
   */
  write(records: CanonicalRecord[], first: number): WriteResult;
  /**
   * Closes the output: `output` is the trailing bytes; `head`, when given, replaces the same
   * number of bytes at the very start of the output (a document id known only at the end).
   */
  end(): { output: Buffer; head?: Buffer; errors: TransformIssue[]; notes: TransformIssue[] };
}

export interface FormatModule {
  /** Registry name: 'fhir-r4' | 'hl7v2' | 'csv' | 'notify-csv' | … */
  readonly name: string;
  readonly description: string;
  /**
   * Reads the input a message at a time: each part covers the next message(s) in input order
   * (records, errors and notes indexed by message within the whole input). Absent for
   * write-only formats (notify-csv).
   */
  readParts?(input: Buffer, ctx?: ReadContext): Iterable<ReadResult>;
  /** Starts a writer for one conversion. Absent for read-only formats. */
  writer?(ctx?: WriteContext): FormatWriter;
  /** The whole input at once (all parts of readParts, collected). */
  read?(input: Buffer, ctx?: ReadContext): ReadResult;
  /** All records at once (one writer, one group). */
  write?(records: CanonicalRecord[], ctx?: WriteContext): WriteResult;
}

/** Every part of a reader collected into one result. */
export function readAll(parts: Iterable<ReadResult>): ReadResult {
  const all: ReadResult = { records: [], errors: [], notes: [], messageCount: 0 };
  for (const p of parts) {
    for (const r of p.records) all.records.push(r);
    for (const e of p.errors) all.errors.push(e);
    for (const n of p.notes) all.notes.push(n);
    all.messageCount += p.messageCount;
  }
  return all;
}

/** All records through one writer as one group: the output whole. */
export function writeAll(writer: FormatWriter, records: CanonicalRecord[]): WriteResult {
  const body = writer.write(records, 0);
  const tail = writer.end();
  const output = Buffer.concat([body.output, tail.output]);
  tail.head?.copy(output, 0);
  return { output, errors: [...body.errors, ...tail.errors], notes: [...body.notes, ...tail.notes], appointments: body.appointments };
}

/** A format module from its streaming reader and writer: read and write are derived. */
export function formatModule(m: Pick<FormatModule, 'name' | 'description' | 'readParts' | 'writer'>): FormatModule {
  const { readParts, writer } = m;
  return {
    ...m,
    ...(readParts && { read: (input: Buffer, ctx?: ReadContext) => readAll(readParts(input, ctx)) }),
    ...(writer && { write: (records: CanonicalRecord[], ctx?: WriteContext) => writeAll(writer(ctx), records) }),
  };
}
