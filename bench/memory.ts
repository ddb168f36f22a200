import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert, fileSink } from '../src/transform/convert';
import { applyV8Flags } from '../src/v8-flags';
import { csvBatch, hl7Batch, hl7Templates } from './batches';

/**
 * Memory benchmark: a 50 MB CSV batch and a 50 MB HL7 v2 batch converted to FHIR R4 (the
 * inbound routes' conversion), each in its own child process as the daemon would (read the
 * file, convert with the output going to a file as it is written), reporting the child's peak RSS against the 600 MB goal.
 * MESHD_BENCH_QUICK=1 uses 10 MB batches.
 */

const GOAL_MB = 600;
const now = () => new Date('2025-06-01T12:00:00Z');

/** Child side: `node memory.js <from> <to> <input> <output>`; prints its figures as JSON. */
function child(from: string, to: string, input: string, output: string): void {
  applyV8Flags(); // as bin/meshd.js does
  const fd = openSync(output, 'w');
  const result = convert(readFileSync(input), { from, to, now }, fileSink(fd));
  closeSync(fd);
  const peakRssMB = Math.round(process.resourceUsage().maxRSS / 1024);
  process.stdout.write(JSON.stringify({ records: result.records, errors: result.errors.length, outputMB: Math.round(statSync(output).size / 1e5) / 10, peakRssMB }));
}

function measure(dir: string, name: string, from: string, input: Buffer): object {
  const file = join(dir, name);
  writeFileSync(file, input);
  const out = execFileSync(process.execPath, [__filename, from, 'fhir-r4', file, `${file}.out`], { encoding: 'utf8', maxBuffer: 1 << 20 });
  const figures = JSON.parse(out) as { peakRssMB: number };
  rmSync(`${file}.out`, { force: true });
  return { inputMB: Math.round(input.length / 1e5) / 10, ...figures, goalPeakRssMB: GOAL_MB, goalMet: figures.peakRssMB <= GOAL_MB };
}

export async function runMemoryBench(): Promise<object> {
  const bytes = (process.env.MESHD_BENCH_QUICK ? 10 : 50) * 1e6;
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-memory-'));
  try {
    // One CSV row as the CSV writer writes it, `#` standing for each copy's number.
    const siu = hl7Templates()[0];
    const csv = convert(Buffer.from(siu, 'latin1'), { from: 'hl7v2', to: 'csv', now }).output.toString('utf8');
    const cut = csv.indexOf('\r\n') + 2;
    return {
      bench: 'memory',
      hl7v2ToFhirR4: measure(dir, 'batch.hl7', 'hl7v2', hl7Batch(bytes)),
      csvToFhirR4: measure(dir, 'batch.csv', 'csv', csvBatch(csv.slice(0, cut), csv.slice(cut), bytes)),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const [from, to, input, output] = process.argv.slice(2);
  child(from, to, input, output);
}
