import { generateKeyPairSync } from 'node:crypto';
import { join, resolve } from 'node:path';
import forge from 'node-forge';
import { prepareNewFiles, writeNew } from './files';
import { CertError } from './errors';
import { isValidMailboxId, isValidOdsCode, meshCommonName } from './names';

export interface CsrRequest {
  mailbox: string;
  ods: string;
  /** Folder for `<mailbox>.key` and `<mailbox>.csr`; created 0700 if missing. */
  outDir: string;
}

export interface CsrResult {
  commonName: string;
  keyPath: string;
  csrPath: string;
  csrPem: string;
}

/** Where to send the CSR, per environment (docs/mesh-protocol.md, Client certificate). */
export const CSR_NEXT_STEPS = [
  'INT (Path to Live): email the .csr to itoc.supportdesk@nhs.net with your mailbox ID and ODS code.',
  'LIVE: email the .csr to ssd.nationalservicedesk@nhs.net together with your conformance certificate.',
  'Keep the .key file where it is (mode 0600); it never leaves this machine.',
  'When the signed certificate arrives: meshd certs inspect <cert> --key <key>, then set tls.cert/tls.key in the config.',
];

/** Writes a file that must not exist yet, with the given mode (umask cannot widen it). */
/**
 * A fresh RSA 2048 key and a CSR whose subject is only the MESH CN (NHS guidance: other
 * fields blank, no email). Node generates the key (forge's pure-JS RSA is slow);
 * forge builds and signs the request. Never overwrites an existing key.
 */
export function createCsr(req: CsrRequest): CsrResult {
  if (!isValidMailboxId(req.mailbox)) {
    throw new CertError('CERT_BAD_ARGUMENT', `mailbox ID "${req.mailbox}" is not 2-20 letters and digits`, 'use the mailbox ID NHS England gave you, e.g. X26ABC1', 'usage');
  }
  if (!isValidOdsCode(req.ods)) {
    throw new CertError('CERT_BAD_ARGUMENT', `ODS code "${req.ods}" is not 2-20 letters and digits`, 'use your organisation ODS code, e.g. X26', 'usage');
  }
  const outDir = resolve(req.outDir);
  const base = req.mailbox.toUpperCase();
  const keyPath = join(outDir, `${base}.key`);
  const csrPath = join(outDir, `${base}.csr`);
  prepareNewFiles(outDir, [keyPath, csrPath], 'a key or CSR');

  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const commonName = meshCommonName(req.mailbox, req.ods);
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  csr.setSubject([{ name: 'commonName', value: commonName }]);
  const forgeKey = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  csr.sign(forgeKey, forge.md.sha256.create());
  const csrPem = forge.pki.certificationRequestToPem(csr);

  writeNew(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
  writeNew(csrPath, csrPem, 0o644);
  return { commonName, keyPath, csrPath, csrPem };
}
