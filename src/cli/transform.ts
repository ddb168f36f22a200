import type { Command } from 'commander';
import { once } from 'node:events';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshdError } from '../errors';
import type { ConvertOptions, ConvertResult } from '../transform/convert';
import { writeJson, writeLines } from './output';

/**
 * `meshd transform`: converts a file between formats through the canonical model.
 * Needs no config file. The transform modules load inside the action so `meshd --help`
 * stays fast.
 */

function collectOption(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new MeshdError('USAGE', `--option expects key=value, got "${value}"`, 'e.g. --option profile=raw', 'usage');
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
  const dir = mkdtempSync(join(tmpdir(), 'meshd-transform-'));
  try {
    const path = join(dir, 'output');
    const { createExclusive, PRIVATE_FILE_MODE } = await import('../safe-fs');
    const handle = await createExclusive(path, PRIVATE_FILE_MODE);
    let result: ConvertResult;
    try {
      result = convert(input, opts, fileSink(handle.fd));
    } finally {
      await handle.close();
    }
    for await (const chunk of createReadStream(path)) if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function register(program: Command): void {
  program
    .command('transform [file]')
    .description('convert a message file between formats (hl7v2, fhir-r4, csv, notify-csv); reads stdin when file is - or absent')
    .option('--from <format>', 'input format')
    .option('--to <format>', 'output format')
    .option('--option <key=value>', 'format option, repeatable (e.g. batch=true, profile=raw)', collectOption, {})
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
        if (json) writeJson({ formats: list });
        else writeLines(list.map((f) => `${f.name.padEnd(12)} ${f.read ? 'r' : '-'}${f.write ? 'w' : '-'}  ${f.description}`));
        return;
      }
      if (!opts.from || !opts.to) throw new MeshdError('USAGE', 'transform needs --from <format> and --to <format>', `formats: ${formatNames().join(', ')}`, 'usage');
      // A format name is part of the command line: a wrong one is a usage error (exit 2), like a wrong option.
      for (const [option, name, use] of [['--from', opts.from, 'read'], ['--to', opts.to, 'write']] as const) {
        const f = Object.prototype.hasOwnProperty.call(formats, name) ? formats[name] : undefined;
        if (!f?.[use]) {
          const usable = formatNames().filter((n) => formats[n][use]);
          throw new MeshdError('TRANSFORM_UNKNOWN_FORMAT', `${option} ${name}: ${f ? `format ${name} cannot be ${use === 'read' ? 'read' : 'written'}` : 'unknown format'}`, `use one of: ${usable.join(', ')} (meshd transform --list)`, 'usage');
        }
      }
      const { describeIssue } = await import('../transform/convert');
      const input = await readInput(file);
      const result = await convertToStdout(input, { from: opts.from, to: opts.to, options: opts.option });
      writeLines([...result.notes.map((n) => `note: ${describeIssue(n)}`), ...result.errors.map((e) => `error: ${describeIssue(e)}`)], process.stderr);
      if (json) writeJson({ records: result.records, messages: result.messageCount, errors: result.errors, notes: result.notes }, { stream: process.stderr });
      if (result.errors.length > 0) {
        writeLines(`meshd: ${result.failedMessages} of ${result.messageCount} message(s) could not be converted; the rest were written`, process.stderr);
        process.exitCode = 7;
      }
    });
}
