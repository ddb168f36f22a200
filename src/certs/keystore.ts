import { createPrivateKey } from 'node:crypto';
import { basename, extname, join, resolve } from 'node:path';
import forge from 'node-forge';
import { prepareNewFiles, writeNew } from './files';
import { CertError, readUserFile } from './errors';
import { parseMeshCommonName } from './names';

/** Java KeyStore files start with 0xFEEDFEED (JCEKS: 0xCECECECE). */
const JKS_MAGIC = [0xfeedfeed, 0xcececece];

export type KeystoreKind = 'pem' | 'jks' | 'pkcs12' | 'der';

export function keystoreKind(data: Buffer): KeystoreKind {
  if (data.length >= 4 && JKS_MAGIC.includes(data.readUInt32BE(0))) return 'jks';
  if (data.subarray(0, 64).toString('latin1').includes('-----BEGIN')) return 'pem';
  // PKCS#12 and a bare DER certificate are both SEQUENCEs; a PFX starts with version INTEGER 3.
  if (data[0] === 0x30 && isPfx(data)) return 'pkcs12';
  return 'der';
}

function isPfx(data: Buffer): boolean {
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(data.toString('binary')), false);
    const first = (asn1.value as forge.asn1.Asn1[])[0];
    return first?.type === forge.asn1.Type.INTEGER && forge.util.bytesToHex(first.value as string) === '03';
  } catch {
    return false;
  }
}

/** The exact command that turns an old JKS keystore into PKCS#12, which meshd can import. */
export function keytoolCommand(jksPath: string): string {
  const dest = p12PathFor(jksPath);
  return `keytool -importkeystore -srckeystore ${shellQuote(jksPath)} -srcstoretype JKS -destkeystore ${shellQuote(dest)} -deststoretype PKCS12`;
}

/** Where the converted keystore goes: beside the JKS, extension .p12. */
export function p12PathFor(jksPath: string): string {
  return jksPath.replace(/\.(jks|keystore)$/i, '') + '.p12';
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function jksError(path: string): CertError {
  return new CertError(
    'CERT_JKS_KEYSTORE',
    `${path} is an old Java KeyStore (JKS); meshd reads PKCS#12 or PEM`,
    `convert it, then import the result:\n    ${keytoolCommand(path)}\n    meshd certs import --p12 ${shellQuote(p12PathFor(path))}`,
  );
}

export interface Keystore {
  /** Leaf certificate first, then the rest of the chain. */
  certificatesPem: string[];
  /** PKCS#8 PEM, unencrypted. */
  keyPem: string;
}

/** Reads a PKCS#12 file (newer Java MESH Client keystores, browser exports). */
export function readPkcs12(data: Buffer, password = ''): Keystore {
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(data.toString('binary')));
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, password);
  } catch (err) {
    const msg = (err as Error).message ?? '';
    const badPassword = /mac|password|invalid/i.test(msg);
    throw new CertError(
      badPassword ? 'CERT_P12_PASSWORD' : 'CERT_UNREADABLE',
      badPassword ? 'PKCS#12 file could not be opened: wrong or missing password' : 'file is not a readable PKCS#12 keystore',
      badPassword ? 'put the keystore password in an environment variable and pass its name with --password-env VAR' : 'check the file; a JKS keystore must be converted with keytool first',
      'input',
      { cause: err },
    );
  }
  const keyBags = [
    ...(p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[forge.pki.oids.pkcs8ShroudedKeyBag] ?? []),
    ...(p12.getBags({ bagType: forge.pki.oids.keyBag })[forge.pki.oids.keyBag] ?? []),
  ];
  const certBags = p12.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag] ?? [];
  const keyBag = keyBags.find((b) => b.key);
  const certs = certBags.filter((b) => b.cert).map((b) => b.cert as forge.pki.Certificate);
  if (!keyBag?.key || certs.length === 0) {
    throw new CertError('CERT_P12_EMPTY', `PKCS#12 file holds ${keyBag?.key ? 'a key but no certificate' : 'no readable private key'}`, 'export the client certificate together with its private key');
  }
  const key = keyBag.key as forge.pki.rsa.PrivateKey;
  // The leaf is the certificate whose public key is this private key.
  const leafIndex = Math.max(
    0,
    certs.findIndex((c) => {
      const pub = c.publicKey as forge.pki.rsa.PublicKey;
      return pub.n !== undefined && pub.n.equals(key.n);
    }),
  );
  const ordered = [certs[leafIndex], ...certs.filter((_, i) => i !== leafIndex)];
  const keyPem = createPrivateKey(forge.pki.privateKeyToPem(key)).export({ type: 'pkcs8', format: 'pem' }).toString();
  return { certificatesPem: ordered.map((c) => forge.pki.certificateToPem(c)), keyPem };
}

export interface ImportResult {
  certPath: string;
  keyPath: string;
  commonName: string | undefined;
  chainLength: number;
}

/**
 * PKCS#12 → `<name>.crt` (leaf + chain, PEM) and `<name>.key` (PKCS#8, 0600). The name is
 * the mailbox ID from the CN when it follows the MESH convention, else the file's base name.
 */
export function importPkcs12(p12Path: string, outDir: string, password = ''): ImportResult {
  const data = readUserFile(p12Path, 'keystore');
  const kind = keystoreKind(data);
  if (kind === 'jks') throw jksError(p12Path);
  if (kind !== 'pkcs12') {
    throw new CertError('CERT_UNREADABLE', `${p12Path} is not a PKCS#12 keystore (looks like ${kind.toUpperCase()})`, 'PEM files need no import: point tls.cert and tls.key at them');
  }
  const store = readPkcs12(data, password);
  const leaf = forge.pki.certificateFromPem(store.certificatesPem[0]);
  const cnField = leaf.subject.getField('CN') as { value?: string } | null;
  const commonName = cnField?.value;
  const name = (commonName && parseMeshCommonName(commonName)?.mailbox) || basename(p12Path, extname(p12Path));
  const dir = resolve(outDir);
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  prepareNewFiles(dir, [certPath, keyPath], 'a certificate or key');
  writeNew(keyPath, store.keyPem, 0o600);
  writeNew(certPath, store.certificatesPem.join(''), 0o644);
  return { certPath, keyPath, commonName, chainLength: store.certificatesPem.length - 1 };
}
