import type { Command } from 'commander';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshdError } from '../errors';
import type { ConvertOptions, ConvertResult } from '../transform/convert';

/**
 * `meshd transform`: converts a file between formats through the canonical model.
 * Needs no config file. The transform modules load inside the action so `meshd --help`
 * stays fast.
 */

function collectOption(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new MeshdError('USAGE', `--option expects key=value, got "${value}"`, 'e.g. --option profile=spreadsheet-safe', 'usage');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

async function readInput(file: string | undefined): Promise<Buffer> {
  if (file === undefined || file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    return Buffer.concat(chunks);
  }
  const { readFile } = await import('node:fs/promises');
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new MeshdError('INPUT_UNREADABLE', `cannot read ${file} (${code ?? 'error'})`, 'check the path and permissions', 'input');
  }
}

/**
 * Converts with the output going to a private temp file as it is written (a FHIR collection's
 * opening is rewritten at the end, which a pipe cannot take), then copies it to stdout.
 */
async function convertToStdout(input: Buffer, opts: ConvertOptions): Promise<ConvertResult> {
  const { convert, fileSink } = await import('../transform/convert');
  const dir = fs.mkdtempSync(join(tmpdir(), 'meshd-transform-'));
  try {
    const path = join(dir, 'output');
    const fd = fs.openSync(path, 'w', 0o600);
    let result: ConvertResult;
    try {
      result = convert(input, opts, fileSink(fd));
    } finally {
      fs.closeSync(fd);
    }
    for await (const chunk of fs.createReadStream(path)) if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
    return result;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function register(program: Command): void {
  program
    .command('transform [file]')
    .description('convert a message file between formats (hl7v2, fhir-r4, csv, notify-csv); reads stdin when file is - or absent')
    .option('--from <format>', 'input format')
    .option('--to <format>', 'output format')
    .option('--option <key=value>', 'format option, repeatable (e.g. batch=true, profile=spreadsheet-safe)', collectOption, {})
    .option('--list', 'list the formats and exit')
    .addHelpText(
      'after',
      '\nOutput goes to stdout; notes and errors to stderr. Exit 7 when any message could not be converted\n(the others are still written), naming the message, the position and the field, never patient values.',
    )
    .action(async (file: string | undefined, opts: { from?: string; to?: string; option: Record<string, string>; list?: boolean }, cmd: Command) => {
      const json = cmd.optsWithGlobals().json === true;
      const { formats, formatNames } = await import('../transform/registry');
      if (opts.list) {
        const list = formatNames().map((n) => ({ name: n, read: Boolean(formats[n].read), write: Boolean(formats[n].write), description: formats[n].description }));
        if (json) process.stdout.write(JSON.stringify({ formats: list }) + '\n');
        else for (const f of list) process.stdout.write(`${f.name.padEnd(12)} ${f.read ? 'r' : '-'}${f.write ? 'w' : '-'}  ${f.description}\n`);
        return;
      }
      if (!opts.from || !opts.to) throw new MeshdError('USAGE', 'transform needs --from <format> and --to <format>', `formats: ${formatNames().join(', ')}`, 'usage');
      const { getFormat } = await import('../transform/registry');
      getFormat(opts.from);
      getFormat(opts.to);
      const { describeIssue } = await import('../transform/convert');
      const input = await readInput(file);
      const result = await convertToStdout(input, { from: opts.from, to: opts.to, options: opts.option });
      for (const n of result.notes) process.stderr.write(`note: ${describeIssue(n)}\n`);
      for (const e of result.errors) process.stderr.write(`error: ${describeIssue(e)}\n`);
      if (json) process.stderr.write(JSON.stringify({ records: result.records, messages: result.messageCount, errors: result.errors, notes: result.notes }) + '\n');
      if (result.errors.length > 0) {
        process.stderr.write(`meshd: ${result.errors.length} of ${result.messageCount} message(s) could not be converted; the rest were written\n`);
        process.exitCode = 7;
      }
    });
}
