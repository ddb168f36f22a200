import type { TransformIssue } from '../format';

/**
 * Turns a payload into individual ER7 messages (docs/mapping-basis.md, Escapes, framing and character sets): strips a
 * UTF-8 BOM and MLLP framing, accepts CR, LF or CRLF, unwraps FHS/BHS…BTS/FTS batches and
 * back-to-back messages, and decodes each message's bytes by its own MSH-18.
 * Output messages use CR between segments.
 */

export interface RawMessage {
  /** Zero-based message index within the payload. */
  index: number;
  /** Decoded text, segments separated by CR. */
  text: string;
  /** The character set used to decode it. */
  charset: 'ascii' | 'latin1' | 'cp1252' | 'utf8';
}

export interface SplitResult {
  messages: RawMessage[];
  /** How many MSH-started messages the payload holds (decodable or not). */
  messageCount: number;
  /** Messages that could not be decoded (they still count, with their index). */
  errors: TransformIssue[];
  notes: TransformIssue[];
}

const BOM = '\u00EF\u00BB\u00BF'; // UTF-8 BOM bytes seen through a Latin-1 view
const GLUED_MSH = 'MSH|^~\\&|';
const GLUED_SPLIT = /(?=MSH\|\^~\\&\|)/;

// MLLP start (VT, 0x0B) and end (FS, 0x1C) bytes.
const MLLP_START = String.fromCharCode(0x0b);
const MLLP_END = String.fromCharCode(0x1c);

function stripLeading(s: string): string {
  let i = 0;
  while (i < s.length && (s.charCodeAt(i) <= 0x20)) i++;
  return s.slice(i);
}
const UTF8 = new TextDecoder('utf-8', { fatal: true });
/** Windows-1252 0x80–0x9F (Node's decoder treats it as Latin-1); undefined bytes stay as they are. */
const CP1252_HIGH = '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

function decodeCp1252(latin: string): string {
  return latin.replace(/[\x80-\x9f]/g, (c) => CP1252_HIGH[c.charCodeAt(0) - 0x80]);
}

/** MSH-18 names (HL7 table 0211 and variants seen) → how to decode. */
function charsetFor(msh18: string): RawMessage['charset'] | 'guess' | undefined {
  const v = msh18.trim().toUpperCase();
  if (v === '') return 'guess';
  if (v === 'ASCII' || v === 'US-ASCII') return 'ascii';
  if (v === '8859/1' || v === 'ISO-8859-1' || v === 'ISO_8859-1' || v === 'LATIN1' || v === '8859/15') return 'latin1';
  // Windows-1252 puts curly quotes, dashes and € at 0x80–0x9F, where Latin-1 has control codes.
  if (v === 'WINDOWS-1252' || v === 'CP1252' || v === 'CP-1252') return 'cp1252';
  if (v === 'UNICODE UTF-8' || v === 'UTF-8' || v === 'UTF8' || v === 'UNICODE') return 'utf8';
  return undefined;
}

const NON_ASCII = /[\u0080-\uffff]/;

function isAscii(s: string): boolean {
  return !NON_ASCII.test(s); // the regex engine scans faster than a charCodeAt loop
}

/** Every message of the payload at once (all parts of messageParts, collected). */
export function splitMessages(input: Buffer): SplitResult {
  const all: SplitResult = { messages: [], messageCount: 0, errors: [], notes: [] };
  for (const p of messageParts(input)) {
    for (const m of p.messages) all.messages.push(m);
    for (const e of p.errors) all.errors.push(e);
    for (const n of p.notes) all.notes.push(n);
    all.messageCount += p.messageCount;
  }
  return all;
}

/**
 * The payload's messages one at a time, each part holding at most one message (or only notes).
 * Lines are cut from the buffer as they are reached: only the message in hand is held.
 */
export function* messageParts(input: Buffer): Generator<SplitResult> {
  let current: string[] | undefined;
  let index = 0;
  let batchCount = 0;
  let strays = 0;
  const done = function* (): Generator<SplitResult> {
    if (current) yield decode(current, index++);
    current = undefined;
  };
  for (const raw of segmentLines(input)) {
    const line0 = raw.startsWith(BOM) ? raw.slice(BOM.length) : raw;
    const line = line0.charCodeAt(0) > 0x20 ? line0 : stripLeading(line0);
    if (line.length === 0) continue;
    const tag = line.slice(0, 3);
    if (tag === 'MSH') {
      yield* done();
      current = [line];
      batchCount++;
      continue;
    }
    if (tag === 'FHS' || tag === 'FTS') {
      yield* done();
      continue;
    }
    if (tag === 'BHS') {
      yield* done();
      batchCount = 0;
      continue;
    }
    if (tag === 'BTS') {
      yield* done();
      const declared = Number(line.split(line[3] ?? '|')[1]);
      if (Number.isInteger(declared) && declared > 0 && declared !== batchCount) {
        yield only({ code: 'HL7_BATCH_COUNT', position: 'BTS-1', field: 'batch', text: `BTS-1 declares ${declared} messages but the batch holds ${batchCount}` });
      }
      continue;
    }
    if (current) current.push(line);
    else strays++;
  }
  yield* done();
  if (strays > 0) yield only({ code: 'HL7_STRAY_SEGMENTS', text: `${strays} segment(s) outside any message were ignored (no MSH before them)` });
}

function only(note: TransformIssue): SplitResult {
  return { messages: [], messageCount: 0, errors: [], notes: [note] };
}

/**
 * Segment lines of the payload, Latin-1 (byte for byte: each message is decoded by its own
 * MSH-18 after): CR, LF or CRLF end a line, MLLP framing bytes are dropped, and files
 * concatenated without a final terminator, which glue the next MSH to the previous segment,
 * are split there too ("MSH|^~\&|" cannot occur inside valid field data: those are delimiters).
 */
function* segmentLines(input: Buffer): Generator<string> {
  let at = 0;
  // Next CR and LF at or after `at` (-1: none left), found by Buffer.indexOf rather than byte by byte.
  let cr = -2;
  let lf = -2;
  while (at < input.length) {
    if (cr !== -1 && cr < at) cr = input.indexOf(0x0d, at);
    if (lf !== -1 && lf < at) lf = input.indexOf(0x0a, at);
    const end = cr === -1 ? (lf === -1 ? input.length : lf) : lf === -1 ? cr : Math.min(cr, lf);
    let line = input.toString('latin1', at, end);
    at = end + 1;
    if (line.includes(MLLP_START) || line.includes(MLLP_END)) line = line.split(MLLP_START).join('').split(MLLP_END).join('');
    if (line.indexOf(GLUED_MSH, 1) > 0) yield* line.split(GLUED_SPLIT);
    else yield line;
  }
}

/** One message's segments → the message decoded by its MSH-18, or why it cannot be. */
function decode(segs: string[], index: number): SplitResult {
  const part: SplitResult = { messages: [], messageCount: 1, errors: [], notes: [] };
  const latin = segs.join('\r');
  const fieldSep = latin[3] ?? '|';
  const msh18 = segs[0].split(fieldSep)[17] ?? '';
  const cs = charsetFor(msh18);
  if (cs === undefined) {
    part.errors.push({ code: 'HL7_CHARSET', message: index, position: 'MSH-18', field: 'characterSet', text: 'MSH-18 names a character set meshd cannot decode (supported: ASCII, 8859/1, UNICODE UTF-8)' });
  } else if (cs === 'latin1') {
    part.messages.push({ index, text: latin, charset: 'latin1' });
  } else if (cs === 'cp1252') {
    part.messages.push({ index, text: decodeCp1252(latin), charset: 'cp1252' });
  } else if (isAscii(latin)) {
    part.messages.push({ index, text: latin, charset: 'ascii' });
  } else {
    try {
      const utf8 = UTF8.decode(Buffer.from(latin, 'latin1'));
      if (cs === 'ascii') part.notes.push({ code: 'HL7_CHARSET', message: index, position: 'MSH-18', field: 'characterSet', text: 'MSH-18 says ASCII but the message has non-ASCII bytes; read as UTF-8' });
      part.messages.push({ index, text: utf8, charset: 'utf8' });
    } catch {
      if (cs === 'utf8') {
        part.errors.push({ code: 'HL7_CHARSET', message: index, position: 'MSH-18', field: 'characterSet', text: 'MSH-18 says UTF-8 but the bytes are not valid UTF-8' });
      } else {
        part.notes.push({ code: 'HL7_CHARSET', message: index, position: 'MSH-18', field: 'characterSet', text: 'non-ASCII bytes without a usable MSH-18; read as 8859/1' });
        part.messages.push({ index, text: latin, charset: 'latin1' });
      }
    }
  }
  return part;
}
