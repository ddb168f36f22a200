import { MESSAGE_COLUMNS } from './columns';
import type { MessageRow } from './types';

/** Streams rows as CSV (header + one line per row) or as a JSON array, honouring backpressure. */

const FIELDS = Object.keys(MESSAGE_COLUMNS) as Array<keyof MessageRow>;

function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) || text !== text.trim() ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvLine(values: unknown[]): string {
  return values.map(csvCell).join(',') + '\r\n';
}

async function write(out: NodeJS.WritableStream, text: string): Promise<void> {
  if (!out.write(text)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
}

export async function exportRows(rows: Iterable<MessageRow>, format: 'csv' | 'json', out: NodeJS.WritableStream): Promise<number> {
  let n = 0;
  if (format === 'csv') {
    await write(out, csvLine(FIELDS));
    for (const row of rows) {
      await write(out, csvLine(FIELDS.map((f) => row[f])));
      n++;
    }
    return n;
  }
  await write(out, '[');
  for (const row of rows) {
    await write(out, (n ? ',\n' : '\n') + JSON.stringify(row));
    n++;
  }
  await write(out, n ? '\n]\n' : ']\n');
  return n;
}
