import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { CertError } from './errors';
import { parseMeshCommonName } from './names';

/** Warnings start this many days before a client certificate expires. */
export const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface CertificateStatus {
  subject: string;
  notAfter: Date;
  /** Whole days until notAfter (negative once expired). */
  daysLeft: number;
  expired: boolean;
  /** Not expired, and EXPIRY_WARNING_DAYS or less (to the millisecond) before notAfter. */
  expiresSoon: boolean;
}

export interface CertificateInfo extends CertificateStatus {
  commonName: string | undefined;
  issuer: string;
  subjectAltNames: string[];
  notBefore: Date;
  notYetValid: boolean;
  serialNumber: string;
  fingerprintSha256: string;
  /** Set when the CN follows `<mailbox>.<ods>.api.mesh-client.nhs.uk`. */
  meshName: { mailbox: string; ods: string } | undefined;
  /** Certificates in the bundle after the first (intermediates, roots). */
  chainLength: number;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate in a PEM bundle, in order; a DER input is one certificate. */
export function splitCertificates(input: string | Buffer): Array<string | Buffer> {
  const text = typeof input === 'string' ? input : input.toString('latin1');
  const pems = text.match(PEM_CERT);
  if (pems) return pems;
  if (Buffer.isBuffer(input) && input.length > 0 && input[0] === 0x30) return [input];
  return [];
}

export function parseCertificate(input: string | Buffer): X509Certificate {
  const first = splitCertificates(input)[0];
  if (first === undefined) {
    throw new CertError('CERT_UNREADABLE', 'no certificate found (expected PEM "BEGIN CERTIFICATE" or DER)', 'check the file is the certificate, not the key or CSR');
  }
  try {
    return new X509Certificate(first);
  } catch (err) {
    throw new CertError('CERT_UNREADABLE', `certificate could not be parsed: ${(err as Error).message}`, 'check the file is a complete PEM or DER X.509 certificate', 'input', { cause: err });
  }
}

/** "CN=a\nO=b" (Node's form) → "CN=a, O=b". */
function oneLine(dn: string): string {
  return dn.split('\n').filter(Boolean).join(', ');
}

function commonNameOf(dn: string): string | undefined {
  const line = dn.split('\n').find((l) => l.startsWith('CN='));
  return line?.slice(3);
}

function statusOf(cert: X509Certificate, now: Date): CertificateStatus {
  const notAfter = new Date(cert.validTo);
  const msLeft = notAfter.getTime() - now.getTime();
  // X.509 validity includes the notAfter instant itself.
  const expired = msLeft < 0;
  const daysLeft = Math.floor(msLeft / DAY_MS);
  const expiresSoon = !expired && msLeft <= EXPIRY_WARNING_DAYS * DAY_MS;
  return { subject: oneLine(cert.subject), notAfter, daysLeft, expired, expiresSoon };
}

/** Expiry status of the first (leaf) certificate; what the daemon checks at start and daily. */
export function certificateStatus(certPem: string | Buffer, now: Date = new Date()): CertificateStatus {
  return statusOf(parseCertificate(certPem), now);
}

/** Everything `meshd certs inspect` shows about the leaf of a PEM bundle or a DER certificate. */
export function describeCertificate(input: string | Buffer, now: Date = new Date()): CertificateInfo {
  const cert = parseCertificate(input);
  const status = statusOf(cert, now);
  const notBefore = new Date(cert.validFrom);
  const commonName = commonNameOf(cert.subject);
  const sans = (cert.subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    ...status,
    commonName,
    issuer: oneLine(cert.issuer),
    subjectAltNames: sans,
    notBefore,
    notYetValid: now.getTime() < notBefore.getTime(),
    serialNumber: cert.serialNumber,
    fingerprintSha256: cert.fingerprint256,
    meshName: commonName ? parseMeshCommonName(commonName) : undefined,
    chainLength: Math.max(0, splitCertificates(input).length - 1),
  };
}

export function parsePrivateKey(keyPem: string | Buffer, passphrase?: string): KeyObject {
  try {
    return createPrivateKey(passphrase === undefined ? { key: keyPem } : { key: keyPem, passphrase });
  } catch (err) {
    const encrypted = String(keyPem).includes('ENCRYPTED');
    throw new CertError(
      'CERT_KEY_UNREADABLE',
      encrypted && passphrase === undefined ? 'private key is encrypted and no passphrase was given' : 'private key could not be read',
      encrypted ? 'give the passphrase (--password-env VAR) or store the key unencrypted with mode 0600' : 'check the file is a PEM private key',
      'input',
      { cause: err },
    );
  }
}

/** True when the private key is the one the (leaf) certificate was issued for. */
export function keyMatchesCertificate(certPem: string | Buffer, keyPem: string | Buffer, passphrase?: string): boolean {
  return parseCertificate(certPem).checkPrivateKey(parsePrivateKey(keyPem, passphrase));
}
