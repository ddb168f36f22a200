import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Large synthetic batches for the memory benchmark and the streaming tests: the fixture SIU
 * S12 and ADT A28 messages repeated, each copy with its own message id and appointment id
 * (so every record is distinct), until the batch reaches the size asked for.
 */

const FIXTURES = resolve(__dirname, '..', '..', 'fixtures', 'hl7v2');

function fixture(name: string): string {
  return readFileSync(join(FIXTURES, name), 'latin1').replace(/\r\n|\n/g, '\r');
}

/** The two template messages, `#` standing where each copy's number goes. */
export function hl7Templates(): string[] {
  const siu = fixture('uk-siu-s12-rgs.hl7').replace('UKS12-1', 'UKS12-#').replace('APPT-2001', 'APPT-#');
  const adt = fixture('uk-adt-a28.hl7').replace('UKA28-1', 'UKA28-#');
  return [siu, adt];
}

/** Messages in the order a batch holds them: SIU and ADT alternating, numbered from 1. */
export function hl7Messages(count: number): string[] {
  const t = hl7Templates();
  return Array.from({ length: count }, (_, i) => t[i % t.length].replace(/#/g, String(i + 1)));
}

/** An FHS/BHS-wrapped HL7 v2 batch of at least `bytes` bytes. */
export function hl7Batch(bytes: number): Buffer {
  const head = 'FHS|^~\\&|PAS|RX1|||20250601120000\rBHS|^~\\&|PAS|RX1|||20250601120000\r';
  const t = hl7Templates();
  const parts: string[] = [head];
  let size = head.length;
  let n = 0;
  while (size < bytes) {
    const m = t[n % t.length].replace(/#/g, String(n + 1));
    parts.push(m);
    size += m.length;
    n++;
  }
  parts.push(`BTS|${n}\rFTS|1\r`);
  return Buffer.from(parts.join(''), 'latin1');
}

/**
 * A meshd CSV batch of at least `bytes` bytes: `header` and `row` (one CSV row holding the
 * text `#` where the copy's number goes), as written by the CSV writer for one message.
 */
export function csvBatch(header: string, row: string, bytes: number): Buffer {
  const parts: string[] = [header];
  let size = header.length;
  for (let n = 1; size < bytes; n++) {
    const r = row.replace(/#/g, String(n));
    parts.push(r);
    size += r.length;
  }
  return Buffer.from(parts.join(''), 'utf8');
}
