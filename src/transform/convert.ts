import { InputError, MeshdError } from '../errors';
import type { TransformIssue, WriteContext, WriteResult } from './format';
import { getFormat } from './registry';

/** Conversion is always write(target, read(source, bytes)) through the canonical model. */

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

export function convert(input: Buffer, opts: ConvertOptions): ConvertResult {
  const source = getFormat(opts.from);
  const target = getFormat(opts.to);
  if (!source.read) throw new MeshdError('TRANSFORM_UNSUPPORTED', `format "${source.name}" can only be written, not read`, 'pick a readable --from format (meshd transform --list)', 'input');
  if (!target.write) throw new MeshdError('TRANSFORM_UNSUPPORTED', `format "${target.name}" can only be read, not written`, 'pick a writable --to format (meshd transform --list)', 'input');

  const read = source.read(input, { options: opts.options });
  if (read.records.length === 0 && (read.errors.length > 0 || read.messageCount === 0)) {
    const issues = read.errors.length ? read.errors : [{ code: 'TRANSFORM_EMPTY', text: 'the input holds no message' }];
    throw new TransformInvalidError(issues, read.notes, source.name);
  }
  if (read.records.length === 0) {
    // Valid input that carries no registration or appointment (e.g. a bare Location): nothing to write.
    const notes = [...read.notes, { code: 'TRANSFORM_NOTHING', text: 'the input is valid but holds no patient registration or appointment event; nothing was written' }];
    return { output: Buffer.alloc(0), records: 0, messageCount: read.messageCount, errors: [], notes, appointments: [] };
  }
  const written = target.write(
    read.records.map((r) => r.record),
    { options: opts.options, previousAppointment: opts.previousAppointment, now: opts.now },
  );
  // Write errors index records; report them against the source message they came from.
  const writeErrors = written.errors.map((e) => remap(e, read.records));
  const writeNotes = written.notes.map((n) => remap(n, read.records));
  const errors = [...read.errors, ...writeErrors];
  const notes = [...read.notes, ...writeNotes];
  const recordsWritten = read.records.length - new Set(written.errors.map((e) => e.message)).size;
  if (recordsWritten <= 0 && written.output.length === 0) throw new TransformInvalidError(errors, notes, source.name, target.name);
  return { output: written.output, records: Math.max(0, recordsWritten), messageCount: read.messageCount, errors, notes, appointments: written.appointments };
}

function remap(issue: TransformIssue, records: Array<{ message: number }>): TransformIssue {
  if (issue.message === undefined) return issue;
  const source = records[issue.message]?.message;
  return source === undefined ? issue : { ...issue, message: source };
}
