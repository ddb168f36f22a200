import { readFileSync, statSync } from 'node:fs';
import type { X509Certificate } from 'node:crypto';
import { CertError } from './errors';
import { certificateStatus, keyMatchesCertificate, parseCertificate, parsePrivateKey, splitCertificates } from './status';

/** One line of `meshd config check`: the key it concerns, what is wrong, what to do. */
export interface Finding {
  severity: 'error' | 'warning';
  key: string;
  message: string;
  hint?: string;
}

/** Mode bits that let group or others read, write or enter. */
export function groupOrOtherBits(mode: number): number {
  return mode & 0o077;
}

/** A private file (key, ledger, secret) must be readable by its owner only. */
export function checkPrivateMode(key: string, path: string, what: string, dir = false): Finding | undefined {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    return undefined;
  }
  if (groupOrOtherBits(mode) === 0) return undefined;
  return {
    severity: 'error',
    key,
    message: `${what} ${path} is accessible by group/others (mode ${mode.toString(8).padStart(4, '0')})`,
    hint: `chmod ${dir ? '700' : '600'} ${path}`,
  };
}

function readOr(findings: Finding[], key: string, path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (err) {
    findings.push({ severity: 'error', key, message: `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, hint: 'check the path and that meshd\'s user may read it' });
    return undefined;
  }
}

function describe(err: unknown): string {
  return err instanceof CertError ? err.message : (err as Error).message;
}

/**
 * The TLS files of a config: CA bundle parses, client certificate is in date (warning from
 * 30 days), key is private (0600) and belongs to the certificate.
 */
export function checkTlsFiles(tls: { ca?: string; cert?: string; key?: string }, now: Date = new Date()): Finding[] {
  const findings: Finding[] = [];
  const caCerts: X509Certificate[] = [];
  if (tls.ca) {
    const ca = readOr(findings, 'tls.ca', tls.ca);
    if (ca) {
      const certs = splitCertificates(ca);
      if (certs.length === 0) findings.push({ severity: 'error', key: 'tls.ca', message: `${tls.ca} holds no PEM certificate`, hint: 'use the CA bundle for your environment (PEM)' });
      certs.forEach((pem, i) => {
        try {
          caCerts.push(parseCertificate(pem));
        } catch (err) {
          findings.push({ severity: 'error', key: 'tls.ca', message: `certificate ${i + 1} in ${tls.ca} is unreadable: ${describe(err)}` });
        }
      });
    }
  }
  let certPem: Buffer | undefined;
  if (tls.cert) {
    certPem = readOr(findings, 'tls.cert', tls.cert);
    if (certPem) {
      try {
        const s = certificateStatus(certPem, now);
        const until = s.notAfter.toISOString().slice(0, 10);
        if (s.expired) findings.push({ severity: 'error', key: 'tls.cert', message: `client certificate ${s.subject} expired on ${until}`, hint: 'renew it: meshd certs csr, then send the CSR to NHS England' });
        else if (s.expiresSoon) findings.push({ severity: 'warning', key: 'tls.cert', message: `client certificate ${s.subject} expires in ${s.daysLeft} days (${until})`, hint: 'start renewal now: meshd certs csr' });
        const leaf = parseCertificate(certPem);
        const notBefore = new Date(leaf.validFrom);
        if (notBefore.getTime() > now.getTime()) findings.push({ severity: 'error', key: 'tls.cert', message: `client certificate is not valid until ${notBefore.toISOString()}`, hint: 'check the system clock' });
        const issuers = [...caCerts, ...splitCertificates(certPem).slice(1).map((pem) => parseCertificate(pem))];
        // NHS issues client certificates under the same roots as the environment's servers, so
        // an issuer missing from both bundles usually means a certificate for another environment.
        if (caCerts.length > 0 && !issuers.some((issuer) => leaf.checkIssued(issuer))) {
          findings.push({
            severity: 'warning',
            key: 'tls.cert',
            message: `client certificate issuer (${leaf.issuer.split('\n').join(', ')}) is in neither tls.ca nor the certificate's own chain`,
            hint: 'check the certificate and the CA bundle are for the same environment (INT/DEP: PTL roots; LIVE: NHS roots)',
          });
        }
      } catch (err) {
        findings.push({ severity: 'error', key: 'tls.cert', message: describe(err), hint: 'point tls.cert at the PEM certificate NHS England issued' });
        certPem = undefined;
      }
    }
  }
  if (tls.key) {
    const perm = checkPrivateMode('tls.key', tls.key, 'private key');
    if (perm) findings.push(perm);
    const keyPem = readOr(findings, 'tls.key', tls.key);
    if (keyPem) {
      try {
        parsePrivateKey(keyPem);
        if (certPem && !keyMatchesCertificate(certPem, keyPem)) {
          findings.push({ severity: 'error', key: 'tls.key', message: `private key ${tls.key} does not belong to the certificate in ${tls.cert}`, hint: 'use the key the CSR was made with (meshd certs inspect <cert> --key <key>)' });
        }
      } catch (err) {
        findings.push({ severity: 'error', key: 'tls.key', message: describe(err), hint: (err as CertError).hint });
      }
    }
  }
  return findings;
}
