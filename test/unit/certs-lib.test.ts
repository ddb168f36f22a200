import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import forge from 'node-forge';
import {
  CertError,
  checkTlsFiles,
  EXPIRY_WARNING_DAYS,
  certificateStatus,
  createCsr,
  describeCertificate,
  importPkcs12,
  keyMatchesCertificate,
  keystoreKind,
  keytoolCommand,
  parseMeshCommonName,
  readPkcs12,
} from '../../src/certs';
import { makeCert, type MadeCert } from '../support/certs';

const DAY = 24 * 60 * 60 * 1000;

type Made = MadeCert;


function p12Of(leaf: Made, chain: Made[], password: string): Buffer {
  const asn1 = forge.pkcs12.toPkcs12Asn1(leaf.key, [leaf.cert, ...chain.map((c) => c.cert)], password, { algorithm: '3des' });
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}

describe('certificates (src/certs)', function () {
  this.timeout(20000);
  const notAfter = new Date('2027-06-30T12:00:00Z');
  const notBefore = new Date('2026-06-30T12:00:00Z');
  let ca: Made;
  let leaf: Made;
  let other: Made;
  let dir: string;

  before(() => {
    ca = makeCert('Test MESH CA', notBefore, new Date('2030-01-01T00:00:00Z'), { ca: true });
    leaf = makeCert('X26ABC1.X26.api.mesh-client.nhs.uk', notBefore, notAfter, { issuer: ca, sans: ['X26ABC1.X26.api.mesh-client.nhs.uk'] });
    other = makeCert('X26ABC2.X26.api.mesh-client.nhs.uk', notBefore, notAfter);
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-certs-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  describe('certificateStatus', () => {
    const at = (msBeforeExpiry: number) => certificateStatus(leaf.certPem, new Date(notAfter.getTime() - msBeforeExpiry));

    it('reports subject, notAfter and whole days left', () => {
      const s = at(100 * DAY);
      expect(s.subject).to.equal('CN=X26ABC1.X26.api.mesh-client.nhs.uk');
      expect(s.notAfter.toISOString()).to.equal(notAfter.toISOString());
      expect(s.daysLeft).to.equal(100);
      expect(s).to.include({ expired: false, expiresSoon: false });
    });
    it(`warns from exactly ${EXPIRY_WARNING_DAYS} days out, not a second earlier`, () => {
      expect(at(30 * DAY + 1000).expiresSoon).to.equal(false);
      expect(at(30 * DAY)).to.include({ expiresSoon: true, expired: false, daysLeft: 30 });
      expect(at(1000)).to.include({ expiresSoon: true, expired: false, daysLeft: 0 });
    });
    it('counts the notAfter instant as still valid and the next second as expired', () => {
      expect(at(0)).to.include({ expired: false, expiresSoon: true });
      const after = at(-1000);
      expect(after).to.include({ expired: true, expiresSoon: false });
      expect(after.daysLeft).to.equal(-1);
    });
    it('rejects input that is not a certificate with a coded error', () => {
      expect(() => certificateStatus(leaf.keyPem, new Date())).to.throw(CertError).with.property('code', 'CERT_UNREADABLE');
      expect(() => certificateStatus('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', new Date())).to.throw(CertError);
    });
  });

  describe('keyMatchesCertificate', () => {
    it('is true for the issued key and false for another key', () => {
      expect(keyMatchesCertificate(leaf.certPem, leaf.keyPem)).to.equal(true);
      expect(keyMatchesCertificate(leaf.certPem, other.keyPem)).to.equal(false);
    });
    it('reads an encrypted key with its passphrase and explains when none is given', () => {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const enc = privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw-1234' }).toString();
      expect(keyMatchesCertificate(leaf.certPem, enc, 'pw-1234')).to.equal(false);
      expect(() => keyMatchesCertificate(leaf.certPem, enc)).to.throw(/encrypted and no passphrase/);
    });
  });

  describe('describeCertificate', () => {
    it('shows issuer, SANs, validity, SHA-256 fingerprint, chain length and the MESH name', () => {
      const info = describeCertificate(leaf.certPem + ca.certPem, new Date('2027-01-01T00:00:00Z'));
      expect(info.issuer).to.equal('CN=Test MESH CA');
      expect(info.subjectAltNames).to.deep.equal(['DNS:X26ABC1.X26.api.mesh-client.nhs.uk']);
      expect(info.notBefore.toISOString()).to.equal(notBefore.toISOString());
      expect(info.fingerprintSha256).to.match(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(leaf.cert)).getBytes(), 'binary');
      expect(info.fingerprintSha256.replace(/:/g, '').toLowerCase()).to.equal(forge.md.sha256.create().update(der.toString('binary')).digest().toHex());
      expect(info.chainLength).to.equal(1);
      expect(info.meshName).to.deep.equal({ mailbox: 'X26ABC1', ods: 'X26' });
      expect(info.notYetValid).to.equal(false);
    });
    it('flags a certificate that is not valid yet', () => {
      expect(describeCertificate(leaf.certPem, new Date('2026-01-01T00:00:00Z')).notYetValid).to.equal(true);
    });
    it('parses MESH common names and refuses others', () => {
      expect(parseMeshCommonName('SERVER001.X26.api.mesh-client.nhs.uk')).to.deep.equal({ mailbox: 'SERVER001', ods: 'X26' });
      expect(parseMeshCommonName('X26ABC1.api.mesh-client.nhs.uk')).to.equal(undefined);
      expect(parseMeshCommonName('www.example.org')).to.equal(undefined);
    });
  });

  describe('createCsr', () => {
    it('writes a 0600 RSA 2048 key and a CSR whose subject is only the MESH CN', () => {
      const r = createCsr({ mailbox: 'x26abc1', ods: 'x26', outDir: join(dir, 'new') });
      expect(r.commonName).to.equal('X26ABC1.X26.api.mesh-client.nhs.uk');
      expect(statSync(r.keyPath).mode & 0o777).to.equal(0o600);
      expect(statSync(join(dir, 'new')).mode & 0o077).to.equal(0);
      const csr = forge.pki.certificationRequestFromPem(readFileSync(r.csrPath, 'utf8'));
      expect(csr.verify()).to.equal(true);
      expect(csr.subject.attributes.map((a) => [a.shortName, a.value])).to.deep.equal([['CN', 'X26ABC1.X26.api.mesh-client.nhs.uk']]);
      expect(csr.getAttribute({ name: 'emailAddress' })).to.equal(null);
      const keyPem = readFileSync(r.keyPath, 'utf8');
      const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
      expect(key.n.bitLength()).to.equal(2048);
      expect((csr.publicKey as forge.pki.rsa.PublicKey).n.equals(key.n)).to.equal(true);
    });
    it('never overwrites an existing key', () => {
      writeFileSync(join(dir, 'X26ABC1.key'), 'precious');
      expect(() => createCsr({ mailbox: 'X26ABC1', ods: 'X26', outDir: dir }))
        .to.throw(CertError)
        .with.property('code', 'CERT_KEY_EXISTS');
      expect(readFileSync(join(dir, 'X26ABC1.key'), 'utf8')).to.equal('precious');
      expect(existsSync(join(dir, 'X26ABC1.csr'))).to.equal(false);
    });
    it('refuses mailbox IDs and ODS codes that would break the CN', () => {
      expect(() => createCsr({ mailbox: 'X26/../A', ods: 'X26', outDir: dir })).to.throw(/mailbox ID/);
      expect(() => createCsr({ mailbox: 'X26ABC1', ods: 'X 26', outDir: dir })).to.throw(/ODS code/);
    });
  });

  describe('keystores', () => {
    it('recognises PEM, PKCS#12, DER and JKS', () => {
      expect(keystoreKind(Buffer.from(leaf.certPem))).to.equal('pem');
      expect(keystoreKind(p12Of(leaf, [], 'pw'))).to.equal('pkcs12');
      expect(keystoreKind(Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(leaf.cert)).getBytes(), 'binary'))).to.equal('der');
      expect(keystoreKind(Buffer.from([0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2]))).to.equal('jks');
    });
    it('reads a PKCS#12 with its password, leaf first, and refuses a wrong password', () => {
      const p12 = p12Of(leaf, [ca], 'store-pass');
      const store = readPkcs12(p12, 'store-pass');
      expect(store.certificatesPem).to.have.length(2);
      expect(describeCertificate(store.certificatesPem[0]).commonName).to.equal('X26ABC1.X26.api.mesh-client.nhs.uk');
      expect(keyMatchesCertificate(store.certificatesPem[0], store.keyPem)).to.equal(true);
      expect(() => readPkcs12(p12, 'wrong')).to.throw(CertError).with.property('code', 'CERT_P12_PASSWORD');
    });
    it('imports a PKCS#12 to <mailbox>.crt (leaf + chain) and a 0600 <mailbox>.key', () => {
      const p12Path = join(dir, 'mesh.keystore');
      writeFileSync(p12Path, p12Of(leaf, [ca], 'store-pass'));
      const r = importPkcs12(p12Path, join(dir, 'pem'), 'store-pass');
      expect(r.certPath).to.equal(join(dir, 'pem', 'X26ABC1.crt'));
      expect(r.chainLength).to.equal(1);
      expect(statSync(r.keyPath).mode & 0o777).to.equal(0o600);
      const crt = readFileSync(r.certPath, 'utf8');
      expect(crt.match(/BEGIN CERTIFICATE/g)).to.have.length(2);
      expect(keyMatchesCertificate(crt, readFileSync(r.keyPath))).to.equal(true);
      expect(() => importPkcs12(p12Path, join(dir, 'pem'), 'store-pass')).to.throw(CertError).with.property('code', 'CERT_KEY_EXISTS');
    });
    it('recognises a JKS keystore and gives the exact keytool command', () => {
      const jks = join(dir, 'mesh.keystore');
      writeFileSync(jks, Buffer.from([0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0, 0, 0, 1]));
      expect(() => importPkcs12(jks, dir))
        .to.throw(CertError)
        .with.property('hint')
        .that.includes(`keytool -importkeystore -srckeystore ${jks} -srcstoretype JKS -destkeystore ${join(dir, 'mesh.p12')} -deststoretype PKCS12`);
      expect(keytoolCommand('/opt/mesh app/KEYSTORE/mesh.jks')).to.equal(
        "keytool -importkeystore -srckeystore '/opt/mesh app/KEYSTORE/mesh.jks' -srcstoretype JKS -destkeystore '/opt/mesh app/KEYSTORE/mesh.p12' -deststoretype PKCS12",
      );
    });
  });

  describe('checkTlsFiles (used by meshd config check)', () => {
    const write = (name: string, text: string, mode = 0o600) => {
      const p = join(dir, name);
      writeFileSync(p, text);
      chmodSync(p, mode);
      return p;
    };
    it('finds nothing wrong with a good CA, certificate and private key', () => {
      const files = { ca: write('ca.pem', ca.certPem, 0o644), cert: write('c.crt', leaf.certPem + ca.certPem, 0o644), key: write('c.key', leaf.keyPem) };
      expect(checkTlsFiles(files, new Date('2027-01-01T00:00:00Z'))).to.deep.equal([]);
    });
    it('warns when the client certificate was not issued by any CA in tls.ca (another environment?)', () => {
      const f = checkTlsFiles({ ca: write('ca.pem', other.certPem, 0o644), cert: write('c.crt', leaf.certPem, 0o644) }, new Date('2027-01-01T00:00:00Z'));
      expect(f).to.have.length(1);
      expect(f[0]).to.include({ severity: 'warning', key: 'tls.cert' });
      expect(f[0].message).to.include('issuer (CN=Test MESH CA)');
    });
    it('names tls.ca when the bundle holds no certificate', () => {
      const f = checkTlsFiles({ ca: write('ca.pem', 'not a bundle\n', 0o644) });
      expect(f.map((x) => [x.severity, x.key])).to.deep.equal([['error', 'tls.ca']]);
    });
    it('warns from 30 days before expiry and errors once expired', () => {
      const cert = write('c.crt', leaf.certPem, 0o644);
      expect(checkTlsFiles({ cert }, new Date(notAfter.getTime() - 10 * DAY))[0]).to.include({ severity: 'warning', key: 'tls.cert' });
      expect(checkTlsFiles({ cert }, new Date(notAfter.getTime() + DAY))[0]).to.include({ severity: 'error', key: 'tls.cert' });
    });
    it('flags a key readable by group/others and a key of another certificate', () => {
      const f = checkTlsFiles({ cert: write('c.crt', leaf.certPem, 0o644), key: write('o.key', other.keyPem, 0o640) }, new Date('2027-01-01T00:00:00Z'));
      expect(f.map((x) => x.message)).to.have.length(2);
      expect(f[0].message).to.match(/accessible by group\/others \(mode 0640\)/);
      expect(f[0].hint).to.equal(`chmod 600 ${join(dir, 'o.key')}`);
      expect(f[1].message).to.match(/does not belong to the certificate/);
    });
  });
});
