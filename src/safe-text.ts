/**
 * Values from outside (file names, MESH headers, error texts) must not forge a log line or
 * drive a terminal. Every human-readable line meshd writes (text logs, CLI output) goes
 * through escapeControl; every JSON line through jsonLine.
 */

/** C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function hex(c: string, width: number): string {
  return c.charCodeAt(0).toString(16).padStart(width, '0');
}

/** One line of text safe for a terminal or a log: `\n`, `\r`, `\t`, `\x1b`, `\x7f`, `\u0085`. */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => NAMED[c] ?? (c < '\u0080' ? `\\x${hex(c, 2)}` : `\\u${hex(c, 4)}`));
}

const JSON_RAW = /[\u007f-\u009f\u2028\u2029]/g;

/**
 * JSON.stringify escapes C0 but leaves DEL, C1 and U+2028/2029 raw. Those can only occur inside
 * JSON strings (its own C0 output is indentation), so \u escapes keep the same JSON value.
 */
export function escapeJsonText(json: string): string {
  return json.replace(JSON_RAW, (c) => `\\u${hex(c, 4)}`);
}

/** JSON.stringify for output a person may also read on a terminal (CLI --json, JSON logs). */
export function jsonLine(value: unknown, space?: number): string {
  return escapeJsonText(JSON.stringify(value, null, space));
}
