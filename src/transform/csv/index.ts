/**
 * The `csv` format: meshd's documented CSV schema (docs/formats/csv.md). One row per event;
 * a bad row is an error for that row only (line and column named), the rest go through.
 * Spreadsheet-safe by default: formula-like cells are written with a leading `'` and read
 * back without it; option `profile: 'raw'` writes and reads cells exactly as they are.
 */
import { formatModule, readAll, writeAll, type FormatWriter, type ReadContext, type ReadResult, type TransformIssue, type WriteContext, type WriteResult } from '../format';
import { CLEARED, appointmentKey, triValue, type CanonicalRecord } from '../model';
import { formatRow, isRawProfile, parseCsv, spreadsheetSafe, unguard, type OutCell } from './rfc4180';
import { COLUMNS, rowToRecord, recordToRow, type InCell } from './schema';

export { COLUMNS, SCHEMA_VERSION } from './schema';

/** The file read a chunk of rows at a time: one part per chunk parsed. */
export function* readCsvParts(input: Buffer, ctx?: ReadContext): Generator<ReadResult> {
  const raw = isRawProfile(ctx?.options);
  const fresh = (): ReadResult => ({ records: [], errors: [], notes: [], messageCount: 0 });
  let result = fresh();
  let header: string[] | undefined;
  let index = -1;
  const unknownNoted = new Set<string>();
  const rows = parseCsv(
    input,
    ({ fields, line }) => {
      if (!header) {
        header = fields.map((f) => f.value.trim());
        if (!header.includes('event')) {
          result.errors.push({ code: 'CSV_BAD_HEADER', message: 0, position: 'line 1', field: 'event', text: 'the header has no "event" column; is this a meshd CSV (docs/formats/csv.md)?' });
        }
        if (!header.includes('schema_version')) {
          result.notes.push({ code: 'CSV_NO_VERSION', position: 'line 1', field: 'schema_version', text: 'no schema_version column: read as schema version 1' });
        }
        const unknown = header.filter((h) => h && !(COLUMNS as readonly string[]).includes(h));
        for (const u of unknown) unknownNoted.add(u);
        if (unknown.length) result.notes.push({ code: 'CSV_UNKNOWN_COLUMNS', position: 'line 1', text: `columns this schema does not define were ignored: ${unknown.map((u) => u.slice(0, 40)).join(', ')}` });
        return;
      }
      // A blank line is not a row.
      if (fields.length === 1 && fields[0].value === '' && !fields[0].quoted) return;
      index++;
      result.messageCount++;
      if (!header.includes('event')) return;
      if (fields.length !== header.length) {
        result.errors.push({ code: 'CSV_BAD_ROW', message: index, position: `line ${line}`, text: `has ${fields.length} fields but the header has ${header.length}` });
        return;
      }
      const cells = new Map<string, InCell>();
      fields.forEach((f, i) => {
        const name = header![i];
        if (f.value === '') cells.set(name, f.quoted ? CLEARED : undefined);
        else cells.set(name, raw ? f.value : unguard(f.value));
      });
      let parsed: ReturnType<typeof rowToRecord>;
      try {
        parsed = rowToRecord(cells);
      } catch {
        result.errors.push({ code: 'CSV_BAD_ROW', message: index, position: `line ${line}`, text: 'could not be read (unexpected shape)' });
        return;
      }
      const { record, reader } = parsed;
      for (const p of reader.problems) {
        result.errors.push({ code: 'CSV_BAD_VALUE', message: index, position: `line ${line}, column ${p.column}`, field: p.column, text: p.text });
      }
      for (const n of reader.notes) result.notes.push({ code: 'CSV_NOTE', message: index, position: `line ${line}, column ${n.column}`, field: n.column, text: n.text });
      if (record) result.records.push({ record, message: index });
    },
    (problem) => {
      index++;
      result.messageCount++;
      result.errors.push({ code: 'CSV_SYNTAX', message: index, position: `line ${problem.line}`, text: problem.text });
    },
  );
  for (const _ of rows) {
    yield result;
    result = fresh();
  }
  if (!header) result.errors.push({ code: 'CSV_EMPTY', message: 0, position: 'line 1', text: 'the file is empty: expected a header row' });
  yield result;
}

export function readCsv(input: Buffer, ctx?: ReadContext): ReadResult {
  return readAll(readCsvParts(input, ctx));
}

/** Records → CSV rows, a group at a time, after one header row. */
export function csvWriter(ctx?: WriteContext): FormatWriter {
  const safe = !isRawProfile(ctx?.options);
  const today = (ctx?.now ? ctx.now() : new Date()).toISOString().slice(0, 10);
  let guarded = 0;
  let header = formatRow([...COLUMNS]);
  return {
    write(records, first) {
      const notes: TransformIssue[] = [];
      const errors: TransformIssue[] = [];
      const appointments: WriteResult['appointments'] = [];
      const lines: string[] = [header];
      header = '';
      records.forEach((rec, k) => {
        const i = first + k;
        let mapped: ReturnType<typeof recordToRow>;
        try {
          mapped = recordToRow(rec, today);
        } catch {
          errors.push({ code: 'CSV_OUTPUT_INVALID', message: i, position: `row ${i + 1}`, text: 'the record has a shape the CSV writer cannot handle (not a valid canonical record)' });
          return;
        }
        const { row, dropped } = mapped;
        const cells: OutCell[] = COLUMNS.map((c) => (safe ? spreadsheetSafe(row[c]) : row[c]));
        guarded += cells.filter((c, n) => c !== row[COLUMNS[n]]).length;
        lines.push(formatRow(cells));
        if (dropped.length) notes.push({ code: 'FIELD_DROPPED', message: i, position: `row ${i + 1}`, text: `the CSV schema cannot carry: ${dropped.join('; ')}` });
        if (rec.kind === 'appointment') {
          const start = triValue(rec.appointment.start);
          appointments.push({ key: appointmentKey(rec) ?? '', event: rec.event, status: rec.appointment.status, ...(start ? { start: start.utc } : {}) });
        }
      });
      return { output: Buffer.from(lines.join(''), 'utf8'), errors, notes, appointments };
    },
    end() {
      const notes: TransformIssue[] = guarded ? [{ code: 'CSV_SPREADSHEET_SAFE', position: 'file', text: `${guarded} cell(s) that a spreadsheet would run as a formula were prefixed with ' (meshd reads them back without it; profile=raw writes them as they are)` }] : [];
      return { output: Buffer.from(header, 'utf8'), errors: [], notes };
    },
  };
}

export function writeCsv(records: CanonicalRecord[], ctx?: WriteContext): WriteResult {
  return writeAll(csvWriter(ctx), records);
}

export const format = formatModule({
  name: 'csv',
  description: "meshd CSV schema v1: one row per registration or appointment event (docs/formats/csv.md)",
  readParts: readCsvParts,
  writer: csvWriter,
});
