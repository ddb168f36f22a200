/**
 * RFC 4180 reading and writing that keep the one distinction our schema needs: a quoted
 * empty field (`""`, cleared) versus an unquoted empty one (not sent). Reading drives
 * csv-parse's streaming engine chunk by chunk, so memory stays per row on big files.
 */
import { Parser, type CsvError } from 'csv-parse';

/** A field as read: its text and whether it was quoted. */
export interface Field {
  value: string;
  quoted: boolean;
}

export interface RowEvent {
  fields: Field[];
  /** 1-based line on which the record starts. */
  line: number;
}

export interface SyntaxProblem {
  line: number;
  text: string;
}

const CHUNK = 64 * 1024;

/**
 * Calls `onRow` for every record in `input` (header included), in order; reports syntax errors
 * per record. Pauses (yields) after each chunk, so a caller can handle the rows read so far.
 */
export function* parseCsv(input: Buffer, onRow: (row: RowEvent) => void, onProblem: (p: SyntaxProblem) => void): Generator<void> {
  // Lines are counted here, not taken from csv-parse (which counts a CRLF inside quotes as two).
  let nextLine = 1;
  class RowSink extends Parser {
    // csv-parse pushes each finished record here; handle it at once instead of buffering.
    override push(chunk: unknown): boolean {
      if (chunk === null) return true;
      const { record, raw } = chunk as { record: string[]; raw: string };
      const line = nextLine;
      const quoted = quotedFields(raw, record.length);
      nextLine += 1 + (raw.replace(/(\r\n|\r|\n)$/, '').match(/\r\n|\r|\n/g) ?? []).length;
      onRow({ fields: record.map((value, i) => ({ value, quoted: quoted[i] })), line });
      return true;
    }
  }
  // `raw` instead of csv-parse's `cast` (which tells quoting too, but makes parsing ~7x slower):
  // the quoted flag is read from the raw text of each record.
  const parser = new RowSink({ bom: true, relax_column_count: true, skip_records_with_error: true, raw: true });
  parser.on('skip', (err: CsvError) => {
    onProblem({ line: nextLine, text: `is not valid CSV (${err.code}); fix the quoting on this row` });
    // Best effort: a broken quote may swallow line breaks, so resynchronise on csv-parse's count.
    nextLine = Math.max(nextLine + 1, typeof err.lines === 'number' ? err.lines + 1 : 0);
  });
  const done = (err?: Error | null) => {
    if (err) onProblem({ line: nextLine, text: `is not valid CSV (${(err as CsvError).code ?? 'error'})` });
  };
  for (let at = 0; at < input.length; at += CHUNK) {
    parser._transform(input.subarray(at, at + CHUNK), 'utf8', done);
    yield;
  }
  parser._flush(done);
}

/** For each field of one raw record, whether it began with a quote (RFC 4180: quotes open a field). */
export function quotedFields(raw: string, count: number): boolean[] {
  const out: boolean[] = [];
  let i = raw.charCodeAt(0) === 0xfeff ? 1 : 0;
  while (out.length < count && i <= raw.length) {
    if (raw[i] === '"') {
      out.push(true);
      i++;
      // Skip to the closing quote; a doubled quote is an escaped one.
      while (i < raw.length) {
        if (raw[i] === '"') {
          if (raw[i + 1] === '"') i += 2;
          else {
            i++;
            break;
          }
        } else i++;
      }
    } else out.push(false);
    while (i < raw.length && raw[i] !== ',') i++;
    i++; // past the comma
  }
  while (out.length < count) out.push(false);
  return out;
}

/** A cell to write: text, `null` for cleared (written `""`), undefined for not sent (empty). */
export type OutCell = string | null | undefined;

/** One CSV record with CRLF: quotes fields holding a delimiter, quote, CR or LF; `""` for cleared. */
export function formatRow(cells: OutCell[]): string {
  return (
    cells
      .map((c) => {
        if (c === null) return '""';
        if (c === undefined || c === '') return '';
        return /[",\r\n]/.test(c) || /^\s|\s$/.test(c) ? `"${c.replace(/"/g, '""')}"` : c;
      })
      .join(',') + '\r\n'
  );
}

/**
 * Cells an office spreadsheet would run as a formula (OWASP CSV injection): a start of
 * `=`, `@`, TAB or CR, or `+`/`-` followed by anything but a plain number (so phone numbers
 * like +447700900123 and negative numbers stay as they are). A cell that already starts with
 * the `'` guard in front of such text is guarded too, so reading back is exact.
 */
function runsAsFormula(cell: string): boolean {
  if (/^[=@\t\r]/.test(cell)) return true;
  if (/^[+-]/.test(cell)) return !/^[+-]\d[\d .]*$/.test(cell);
  return cell.startsWith("'") && runsAsFormula(cell.slice(1));
}

/** Prefixes formula-like text with a single quote (the default spreadsheet-safe profile). */
export function spreadsheetSafe(cell: OutCell): OutCell {
  return typeof cell === 'string' && runsAsFormula(cell) ? `'${cell}` : cell;
}

/** Undoes `spreadsheetSafe` on a cell read back (the `'` guard meshd adds, and only that). */
export function unguard(cell: string): string {
  return cell.startsWith("'") && runsAsFormula(cell.slice(1)) ? cell.slice(1) : cell;
}

/** CSV outputs are spreadsheet-safe unless the route asks for `profile=raw`. */
export function isRawProfile(options: Record<string, unknown> | undefined): boolean {
  return options?.profile === 'raw';
}
