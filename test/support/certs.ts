import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';

/** The one way tests make certificates: real RSA keys (node:crypto, fast) and node-forge certificates. */
export interface MadeCert {
  certPem: string;
  keyPem: string;
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
}

export interface CertOptions {
  /** DNS subject alternative names. */
  sans?: string[];
  /** Signed by this one (default: self-signed). */
  issuer?: MadeCert;
  /** A CA (basicConstraints cA, keyCertSign). */
  ca?: boolean;
  /** A TLS leaf: server (serverAuth) or client (clientAuth) extended key usage. */
  usage?: 'server' | 'client';
  serial?: string;
}

export function makeCert(cn: string, notBefore: Date, notAfter: Date, opts: CertOptions = {}): MadeCert {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const key = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  cert.serialNumber = opts.serial ?? '0a1b2c';
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject([{ name: 'commonName', value: cn }]);
  cert.setIssuer(opts.issuer ? opts.issuer.cert.subject.attributes : [{ name: 'commonName', value: cn }]);
  const ext: object[] = [];
  if (opts.sans) ext.push({ name: 'subjectAltName', altNames: opts.sans.map((value) => ({ type: 2, value })) });
  if (opts.ca) ext.push({ name: 'basicConstraints', cA: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true });
  if (opts.usage) ext.push({ name: 'extKeyUsage', serverAuth: opts.usage === 'server', clientAuth: opts.usage === 'client' });
  if (ext.length) cert.setExtensions(ext);
  cert.sign(opts.issuer ? opts.issuer.key : key, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem, cert, key };
}

/** Valid from yesterday for `days` days. */
export function makeCertForDays(cn: string, days: number, opts: CertOptions = {}): MadeCert {
  return makeCert(cn, new Date(Date.now() - 86_400_000), new Date(Date.now() + days * 86_400_000), opts);
}
