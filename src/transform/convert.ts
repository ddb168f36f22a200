import { writeSync } from 'node:fs';
import { InputError, MeshdError } from '../errors';
import type { FormatWriter, ReadResult, TransformIssue, WriteContext, WriteResult } from './format';
import { getFormat } from './registry';

/** Conversion always goes through the canonical model: read(source), then write(target). */

export interface ConvertOptions {
  from: string;
  to: string;
  previousAppointment?: WriteContext['previousAppointment'];
  /** Format options, given to both the reader and the writer (e.g. { profile: 'spreadsheet-safe' }). */
  options?: Record<string, unknown>;
  now?: () => Date;
}

export interface ConvertResult {
  output: Buffer;
  /** Canonical records written. */
  records: number;
  /** Messages in the input (read or not). */
  messageCount: number;
  /** Source messages with at least one error (an error naming no message counts as one). */
  failedMessages: number;
  /** Messages or records that failed (quarantine them); the rest are in `output`. */
  errors: TransformIssue[];
  notes: TransformIssue[];
  appointments: WriteResult['appointments'];
}

/** Every message failed: nothing to deliver. Carries the issues for the caller to show or store. */
export class TransformInvalidError extends InputError {
  constructor(
    readonly issues: TransformIssue[],
    readonly notes: TransformIssue[],
    from: string,
    to?: string,
  ) {
    super('TRANSFORM_INVALID', `${to ? `no message could be converted from ${from} to ${to}` : `input is not valid ${from}`}: ${issues.slice(0, 3).map(describeIssue).join('; ')}${issues.length > 3 ? `; and ${issues.length - 3} more` : ''}`, 'fix the named field at the named position, or quarantine the message');
    this.name = 'TransformInvalidError';
  }
}

/** One line for a person: "message 2, PID-3[2].1 (patient.nhsNumber): …" (message numbers 1-based). */
export function describeIssue(i: TransformIssue): string {
  const where = [i.message !== undefined ? `message ${i.message + 1}` : undefined, i.position].filter(Boolean).join(', ');
  const field = i.field ? ` (${i.field})` : '';
  return `${where}${field}${where || field ? ': ' : ''}${i.text} [${i.code}]`;
}

/**
 * Where output goes as it is written. `rewriteStart` overwrites the first bytes already written
 * (same length): a collection Bundle's id derives from all its entries, so it is known last.
 */
export interface OutputSink {
  write(chunk: Buffer): void;
  rewriteStart(head: Buffer): void;
}

/** A sink writing to an open file (not a pipe: the start may be rewritten in place). */
export function fileSink(fd: number): OutputSink {
  return {
    write: (chunk) => void writeSync(fd, chunk),
    rewriteStart: (head) => void writeSync(fd, head, 0, head.length, 0),
  };
}

/**
 * Records written per group: enough to amortise the per-call work, few enough that a group's
 * records die young (256 outlived young-generation collections: ~10% more CPU a message).
 */
const GROUP_RECORDS = 32;

/**
 * Converts message by message: the source is read a part at a time and the target written a
 * bounded group of whole messages at a time, so memory follows one group, not the file.
 * With `sink`, output goes there piece by piece and `output` is empty; without, it is collected.
 */
export function convert(input: Buffer, opts: ConvertOptions, sink?: OutputSink): ConvertResult {
  const source = getFormat(opts.from);
  const target = getFormat(opts.to);
  if (!source.readParts) throw new MeshdError('TRANSFORM_UNSUPPORTED', `format "${source.name}" can only be written, not read`, 'pick a readable --from format (meshd transform --list)', 'input');
  if (!target.writer) throw new MeshdError('TRANSFORM_UNSUPPORTED', `format "${target.name}" can only be read, not written`, 'pick a writable --to format (meshd transform --list)', 'input');

  const collected: Buffer[] = [];
  const out: OutputSink = sink ?? { write: (c) => collected.push(c), rewriteStart: (h) => h.copy(collected[0], 0) };
  const readErrors: TransformIssue[] = [];
  const readNotes: TransformIssue[] = [];
  const writeErrors: TransformIssue[] = [];
  const writeNotes: TransformIssue[] = [];
  const appointments: WriteResult['appointments'] = [];
  let messageCount = 0;
  let records = 0;
  let failedRecords = 0;
  let writer: FormatWriter | undefined;
  let group: ReadResult['records'] = [];

  const emit = (chunk: Buffer) => {
    if (chunk.length === 0) return;
    out.write(chunk);
  };
  const flush = () => {
    writer ??= target.writer!({ options: opts.options, previousAppointment: opts.previousAppointment, now: opts.now });
    const first = records - group.length;
    const written = writer.write(group.map((r) => r.record), first);
    // Write issues index records; report them against the source message they came from.
    const remap = (i: TransformIssue) => (i.message === undefined || group[i.message - first] === undefined ? i : { ...i, message: group[i.message - first].message });
    for (const e of written.errors) writeErrors.push(remap(e));
    for (const n of written.notes) writeNotes.push(remap(n));
    failedRecords += new Set(written.errors.map((e) => e.message).filter((m) => m !== undefined)).size;
    for (const a of written.appointments) appointments.push(a);
    emit(written.output);
    group = [];
  };

  for (const part of source.readParts(input, { options: opts.options })) {
    messageCount += part.messageCount;
    for (const e of part.errors) readErrors.push(e);
    for (const n of part.notes) readNotes.push(n);
    for (const r of part.records) {
      group.push(r);
      records++;
    }
    if (group.length >= GROUP_RECORDS) flush();
  }
  if (records === 0 && (readErrors.length > 0 || messageCount === 0)) {
    const issues = readErrors.length ? readErrors : [{ code: 'TRANSFORM_EMPTY', text: 'the input holds no message' }];
    throw new TransformInvalidError(issues, readNotes, source.name);
  }
  if (records === 0) {
    // Valid input that carries no registration or appointment (e.g. a bare Location): nothing to write.
    const notes = [...readNotes, { code: 'TRANSFORM_NOTHING', text: 'the input is valid but holds no patient registration or appointment event; nothing was written' }];
    return { output: Buffer.alloc(0), records: 0, messageCount, failedMessages: 0, errors: [], notes, appointments: [] };
  }
  if (group.length) flush();
  const tail = writer!.end();
  for (const e of tail.errors) writeErrors.push(e);
  for (const n of tail.notes) writeNotes.push(n);
  emit(tail.output);
  if (tail.head) out.rewriteStart(tail.head);
  const errors = [...readErrors, ...writeErrors];
  const notes = [...readNotes, ...writeNotes];
  // An error about no record in particular (e.g. a bad option) counts once, as one record.
  const recordsWritten = records - failedRecords - (writeErrors.some((e) => e.message === undefined) ? 1 : 0);
  // Nothing converted: never hand on an empty envelope (an empty collection Bundle, a bare batch header).
  if (recordsWritten <= 0) throw new TransformInvalidError(errors, notes, source.name, target.name);
  const failedMessages = new Set(errors.map((e) => e.message ?? -1)).size;
  return { output: sink ? Buffer.alloc(0) : Buffer.concat(collected), records: recordsWritten, messageCount, failedMessages, errors, notes, appointments };
}
