import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { runMeshd } from '../support/cli';

const ROOT = join(__dirname, '..', '..', '..');
const FIXTURES = join(ROOT, 'fixtures', 'hl7v2');

/** Runs meshd with no config at all (transform must not need one). */
function meshd(args: string[], stdin?: Buffer) {
  return runMeshd(args, { env: { MESHD_CONFIG: join(tmpdir(), 'meshd-no-such-config.yaml') }, stdin: stdin ?? '' });
}

describe('meshd transform (CLI)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-transform-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lists the formats', async () => {
    const r = await meshd(['transform', '--list']);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/^hl7v2\s+rw\s/m);
    expect(r.stdout).to.match(/^fhir-r4\s+rw\s/m);
    expect(r.stdout).to.match(/^csv\s+rw\s/m);
    expect(r.stdout).to.match(/^notify-csv\s+-w\s/m);
  });

  it('converts a file to stdout with exit 0 and no config file', async () => {
    const r = await meshd(['transform', '--from', 'hl7v2', '--to', 'hl7v2', join(FIXTURES, 'uk-siu-s12-rgs.hl7')]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^MSH\|\^~\\&\|PAS\|RX1\|EPR\|Y12345\|20250620110000\|\|SIU\^S12\^SIU_S12\|UKS12-1\|P\|2\.4\r/);
    expect(r.stdout).to.include('\rSCH|PL-1001^RX1-PLAC|APPT-2001^RX1|');
  });

  it('reads stdin when the file is "-", and passes --option to the writer', async () => {
    const { readFileSync } = await import('node:fs');
    const r = await meshd(['transform', '--from', 'hl7v2', '--to', 'hl7v2', '--option', 'batch=true', '-'], readFileSync(join(FIXTURES, 'uk-adt-a28.hl7')));
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.startsWith('FHS|')).to.equal(true);
    expect(r.stdout).to.include('BTS|1');
  });

  it('exits 7 naming message, position and field — never the patient values — when every message is invalid', async () => {
    const file = join(dir, 'bad.hl7');
    writeFileSync(file, 'MSH|^~\\&|PAS|RX1|||20250601||ADT^A28^ADT_A05|X|P|2.4\rPID|1||9991000004^^^NHS^NH||PRIVATE^Person||19700101\r');
    const r = await meshd(['transform', '--from', 'hl7v2', '--to', 'hl7v2', file]);
    expect(r.code).to.equal(7);
    expect(r.stdout).to.equal('');
    expect(r.stderr).to.include('message 1, PID-3.1 (patient.nhsNumber)');
    expect(r.stderr).to.not.include('9991000004').and.not.include('PRIVATE');
  });

  it('writes the good messages and exits 7 when only some fail', async () => {
    const r = await meshd(['transform', '--from', 'hl7v2', '--to', 'hl7v2', join(FIXTURES, 'uk-batch-one-bad.hl7')]);
    expect(r.code).to.equal(7);
    expect(r.stdout.split('MSH|').length - 1).to.equal(2);
    expect(r.stderr).to.include('error: message 2, PID-3.1 (patient.nhsNumber)');
    expect(r.stderr).to.include('1 of 3 message(s) could not be converted');
  });

  it('exits 2 (usage) for an unknown format and when --from/--to are missing', async () => {
    const unknown = await meshd(['transform', '--from', 'hl7v9', '--to', 'hl7v2', join(FIXTURES, 'uk-adt-a28.hl7')]);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.include('--from hl7v9: unknown format');
    const docx = await meshd(['transform', '--from', 'hl7v2', '--to', 'docx', join(FIXTURES, 'uk-adt-a28.hl7')]);
    expect(docx.code).to.equal(2);
    expect(docx.stderr).to.include('--to docx: unknown format');
    const missing = await meshd(['transform', join(FIXTURES, 'uk-adt-a28.hl7')]);
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.include('--from');
  });

  it('keeps `meshd --help` free of the transform modules', async () => {
    const r = await new Promise<string>((resolve) => {
      execFile(process.execPath, ['-e', `require(${JSON.stringify(join(ROOT, 'dist', 'src', 'cli', 'main.js'))}).buildProgram(); console.log(Object.keys(require.cache).filter(k => k.includes('/transform/')).join(','))`], (_e, out) => resolve(out));
    });
    expect(r.trim()).to.equal('');
  });
});
