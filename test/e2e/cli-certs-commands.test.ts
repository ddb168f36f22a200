import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import forge from 'node-forge';
import { runMeshd } from '../support/cli';
import { makeCertForDays } from '../support/certs';

function meshd(args: string[], env: NodeJS.ProcessEnv = {}) {
  return runMeshd(args, { env: { MESHD_CONFIG: '', ...env } });
}


describe('meshd certs (CLI as a process)', function () {
  this.timeout(30000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-cli-certs-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('csr writes a 0600 key and a CN-only CSR, prints the next steps, and refuses to overwrite', async () => {
    const r = await meshd(['--mailbox', 'X26ABC1', 'certs', 'csr', '--ods', 'X26', '--out', dir]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.include('CN=X26ABC1.X26.api.mesh-client.nhs.uk');
    expect(r.stdout).to.include('itoc.supportdesk@nhs.net').and.include('ssd.nationalservicedesk@nhs.net');
    expect(statSync(join(dir, 'X26ABC1.key')).mode & 0o777).to.equal(0o600);
    const csr = forge.pki.certificationRequestFromPem(readFileSync(join(dir, 'X26ABC1.csr'), 'utf8'));
    expect(csr.subject.attributes).to.have.length(1);
    const before = readFileSync(join(dir, 'X26ABC1.key'), 'utf8');
    const again = await meshd(['--mailbox', 'X26ABC1', 'certs', 'csr', '--ods', 'X26', '--out', dir]);
    expect(again.code).to.equal(2);
    expect(again.stderr).to.include('already exists');
    expect(readFileSync(join(dir, 'X26ABC1.key'), 'utf8')).to.equal(before);
  });

  it('inspect --json reports validity, fingerprint and whether the key matches', async () => {
    const c = makeCertForDays('X26ABC1.X26.api.mesh-client.nhs.uk', 20);
    const other = makeCertForDays('X26ABC2.X26.api.mesh-client.nhs.uk', 20);
    writeFileSync(join(dir, 'client.crt'), c.certPem);
    writeFileSync(join(dir, 'client.key'), c.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'other.key'), other.keyPem, { mode: 0o600 });
    const ok = await meshd(['--json', 'certs', 'inspect', join(dir, 'client.crt'), '--key', join(dir, 'client.key')]);
    expect(ok.code, ok.stderr).to.equal(0);
    const info = JSON.parse(ok.stdout);
    expect(info).to.include({ subject: 'CN=X26ABC1.X26.api.mesh-client.nhs.uk', expired: false, expiresSoon: true, keyMatches: true, daysLeft: 19 });
    expect(info.fingerprintSha256).to.match(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const bad = await meshd(['certs', 'inspect', join(dir, 'client.crt'), '--key', join(dir, 'other.key')]);
    expect(bad.code).to.equal(1);
    expect(bad.stdout).to.include('key matches: NO');
    expect(bad.stdout).to.include('EXPIRES SOON');
  });

  it('inspect reads a PKCS#12 with the password from an environment variable', async () => {
    const c = makeCertForDays('X26ABC1.X26.api.mesh-client.nhs.uk', 400);
    const p12 = forge.asn1.toDer(forge.pkcs12.toPkcs12Asn1(c.key, [c.cert], 'Store-Pass-1', { algorithm: '3des' })).getBytes();
    writeFileSync(join(dir, 'mesh.p12'), Buffer.from(p12, 'binary'));
    const r = await meshd(['certs', 'inspect', join(dir, 'mesh.p12'), '--password-env', 'P12_PASS'], { P12_PASS: 'Store-Pass-1' });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.include('MESH name:   mailbox X26ABC1, ODS X26').and.include('key matches: yes');
    const wrong = await meshd(['certs', 'inspect', join(dir, 'mesh.p12'), '--password-env', 'P12_PASS'], { P12_PASS: 'nope' });
    expect(wrong.code).to.equal(7);
    expect(wrong.stderr).to.include('wrong or missing password').and.not.include('nope');
  });

  it('import converts a PKCS#12 to PEM certificate and a 0600 key', async () => {
    const c = makeCertForDays('X26ABC1.X26.api.mesh-client.nhs.uk', 400);
    const p12 = forge.asn1.toDer(forge.pkcs12.toPkcs12Asn1(c.key, [c.cert], 'Store-Pass-1', { algorithm: '3des' })).getBytes();
    writeFileSync(join(dir, 'mesh.keystore'), Buffer.from(p12, 'binary'));
    const r = await meshd(['--json', 'certs', 'import', '--p12', join(dir, 'mesh.keystore'), '--out', join(dir, 'pem'), '--password-env', 'P12_PASS'], { P12_PASS: 'Store-Pass-1' });
    expect(r.code, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout);
    expect(out.certPath).to.equal(join(dir, 'pem', 'X26ABC1.crt'));
    expect(readFileSync(out.certPath, 'utf8')).to.equal(c.certPem);
    expect(statSync(out.keyPath).mode & 0o777).to.equal(0o600);
  });

  it('explains unreadable input instead of crashing: missing file, a key given as certificate, garbage', async () => {
    const missing = await meshd(['certs', 'inspect', join(dir, 'nope.crt')]);
    expect(missing.code).to.equal(7);
    expect(missing.stderr).to.include(`cannot read certificate ${join(dir, 'nope.crt')} (ENOENT)`);
    writeFileSync(join(dir, 'k.pem'), makeCertForDays('X', 1).keyPem);
    const key = await meshd(['certs', 'inspect', join(dir, 'k.pem')]);
    expect(key.code).to.equal(7);
    expect(key.stderr).to.include('holds a private key, not a certificate').and.not.include('BEGIN');
    writeFileSync(join(dir, 'junk.bin'), Buffer.from([0x30, 0x03, 0x02, 0x01, 0x05, 0xff, 0x00]));
    const junk = await meshd(['certs', 'inspect', join(dir, 'junk.bin')]);
    expect(junk.code).to.equal(7);
    expect(junk.stderr).to.match(/certificate could not be parsed|no certificate found|not a readable PKCS#12/);
  });

  it('import of a JKS keystore prints the keytool command and exits non-zero', async () => {
    const jks = join(dir, 'mesh.keystore');
    writeFileSync(jks, Buffer.from([0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0, 0, 0, 1]));
    const r = await meshd(['certs', 'import', '--p12', jks, '--out', dir]);
    expect(r.code).to.equal(7);
    expect(r.stderr).to.include(`keytool -importkeystore -srckeystore ${jks} -srcstoretype JKS -destkeystore ${join(dir, 'mesh.p12')} -deststoretype PKCS12`);
    const json = await meshd(['--json', 'certs', 'import', '--p12', jks, '--out', dir]);
    expect(JSON.parse(json.stdout).error.code).to.equal('CERT_JKS_KEYSTORE');
  });
});
