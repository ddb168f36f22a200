import { escapeControl, jsonLine } from '../safe-text';

/**
 * Every line the CLI writes passes through here, so a file name, MESH header or error text
 * cannot add a line or send escape sequences to the terminal (control characters are escaped;
 * JSON stays valid JSON).
 */

/** Text for a person: each element is one line. */
export function writeLines(lines: string | string[], stream: NodeJS.WritableStream = process.stdout): void {
  for (const line of typeof lines === 'string' ? (lines ? [lines] : []) : lines) stream.write(escapeControl(line) + '\n');
}

export function writeJson(value: unknown, opts: { space?: number; stream?: NodeJS.WritableStream } = {}): void {
  (opts.stream ?? process.stdout).write(jsonLine(value, opts.space) + '\n');
}

/** A command's result: one JSON line with --json, else the text for a person. */
export function printer(json: boolean): (result: unknown, text: string | string[]) => void {
  return (result, text) => (json ? writeJson(result) : writeLines(text));
}
