/**
 * HL7 v2 escape sequences (docs/mapping-basis.md, Escapes, framing and character sets). Messages are split on delimiters first and
 * each leaf is unescaped afterwards; writers escape each leaf before joining.
 * MSH-1 and MSH-2 are never escaped.
 */

export interface Delimiters {
  field: string;
  component: string;
  repetition: string;
  escape: string;
  subcomponent: string;
}

/** The HL7 default `|^~\&`, which meshd always writes. */
export const DEFAULT_DELIMITERS: Delimiters = { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' };

/** Reads MSH-1/MSH-2 ("|" + "^~\&") into delimiters; undefined when they are unusable. */
export function delimitersFrom(fieldSep: string, encoding: string): Delimiters | undefined {
  if (fieldSep.length !== 1 || encoding.length < 4) return undefined;
  const [component, repetition, escape, subcomponent] = encoding;
  const all = [fieldSep, component, repetition, escape, subcomponent];
  if (new Set(all).size !== all.length || all.some((c) => c === '\r' || c === '\n')) return undefined;
  return { field: fieldSep, component, repetition, escape, subcomponent };
}

/** Bytes from `\Xhh…\`, read as UTF-8 when valid, else Latin-1. */
function hexText(hex: string): string | undefined {
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9A-Fa-f]+$/.test(hex)) return undefined;
  const bytes = Buffer.from(hex, 'hex');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/** Unescapes one leaf value. Unknown or broken sequences are kept as sent. */
export function unescapeHl7(text: string, d: Delimiters = DEFAULT_DELIMITERS): string {
  const esc = d.escape;
  if (!text.includes(esc)) return text;
  let out = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch !== esc) {
      out += ch;
      i++;
      continue;
    }
    const end = text.indexOf(esc, i + 1);
    if (end < 0) {
      out += text.slice(i);
      break;
    }
    const seq = text.slice(i + 1, end);
    const replaced = unescapeSequence(seq, d);
    out += replaced ?? text.slice(i, end + 1);
    i = end + 1;
  }
  return out;
}

function unescapeSequence(seq: string, d: Delimiters): string | undefined {
  switch (seq) {
    case 'F':
      return d.field;
    case 'S':
      return d.component;
    case 'T':
      return d.subcomponent;
    case 'R':
      return d.repetition;
    case 'E':
      return d.escape;
    case 'P':
      return '#';
    case '.br':
      return '\n';
    case 'H':
    case 'N':
      // Highlighting on/off: formatting only, no text.
      return '';
  }
  if (seq.startsWith('X')) return hexText(seq.slice(1));
  // \Cxxyy\ and \Mxxyyzz\ (ISO 2022 charset switches) and \.sp\ etc.: keep as sent.
  return undefined;
}

function hasSpecial(text: string, d: Delimiters): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === d.field || c === d.component || c === d.repetition || c === d.escape || c === d.subcomponent || c === '\r' || c === '\n') return true;
  }
  return false;
}

/** Characters escapeHl7 replaces, with DEFAULT_DELIMITERS. */
const DEFAULT_SPECIALS = /[|^~\\&\r\n]/;

/** Escapes one leaf value so it can be joined with delimiters. CR → \X0D\, LF → \.br\. */
export function escapeHl7(text: string, d: Delimiters = DEFAULT_DELIMITERS): string {
  // Most leaves need nothing: with the default delimiters (what meshd writes) one regex says so.
  if (!(d === DEFAULT_DELIMITERS ? DEFAULT_SPECIALS.test(text) : hasSpecial(text, d))) return text;
  let out = '';
  for (const c of text) {
    if (c === d.escape) out += `${d.escape}E${d.escape}`;
    else if (c === d.field) out += `${d.escape}F${d.escape}`;
    else if (c === d.component) out += `${d.escape}S${d.escape}`;
    else if (c === d.subcomponent) out += `${d.escape}T${d.escape}`;
    else if (c === d.repetition) out += `${d.escape}R${d.escape}`;
    else if (c === '\n') out += `${d.escape}.br${d.escape}`;
    else if (c === '\r') out += `${d.escape}X0D${d.escape}`;
    else out += c;
  }
  return out;
}
