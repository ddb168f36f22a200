import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';

/**
 * The simulator's own PKI: a CA, a server certificate for localhost and 127.0.0.1, and one
 * client certificate per mailbox. Made once under `<dir>/pki` and reused on later starts.
 * Keys come from node:crypto (forge's pure-JS RSA keygen is slow); forge only builds and
 * signs the certificates. Private keys are written mode 0600.
 */

export interface SimPki {
  ca: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clients: Record<string, { cert: string; key: string }>;
}

const VALID_YEARS = 10;

export async function ensureSimPki(dir: string, mailboxes: string[]): Promise<SimPki> {
  const pkiDir = join(dir, 'pki');
  await mkdir(join(pkiDir, 'clients'), { recursive: true, mode: 0o700 });
  const paths: SimPki = {
    ca: join(pkiDir, 'ca.pem'),
    caKey: join(pkiDir, 'ca.key'),
    serverCert: join(pkiDir, 'server.crt'),
    serverKey: join(pkiDir, 'server.key'),
    clients: {},
  };

  let ca: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey };
  if ((await exists(paths.ca)) && (await exists(paths.caKey))) {
    ca = {
      cert: forge.pki.certificateFromPem(await readFile(paths.ca, 'utf8')),
      key: forge.pki.privateKeyFromPem(await readFile(paths.caKey, 'utf8')),
    };
  } else {
    const pair = newKeyPair();
    const cert = buildCertificate(pair.publicKey, [{ name: 'commonName', value: 'meshd simulator CA' }, { name: 'organizationName', value: 'meshd' }]);
    cert.setIssuer(cert.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    cert.sign(pair.privateKey, forge.md.sha256.create());
    ca = { cert, key: pair.privateKey };
    // Key first: a crash between the two writes leaves no CA certificate without its key.
    await writeAtomic(paths.caKey, pair.privatePem, 0o600);
    await writeAtomic(paths.ca, forge.pki.certificateToPem(cert), 0o644);
  }

  if (!(await exists(paths.serverCert)) || !(await exists(paths.serverKey))) {
    await issueLeaf(ca, paths.serverCert, paths.serverKey, 'localhost', 'server');
  }

  for (const mailbox of mailboxes) {
    const id = mailbox.toUpperCase();
    const cert = join(pkiDir, 'clients', `${id}.crt`);
    const key = join(pkiDir, 'clients', `${id}.key`);
    if (!(await exists(cert)) || !(await exists(key))) {
      // CN as NHS England issues them: <mailbox>.<ODS>.api.mesh-client.nhs.uk
      await issueLeaf(ca, cert, key, `${id}.${odsOf(id)}.api.mesh-client.nhs.uk`, 'client');
    }
    paths.clients[id] = { cert, key };
  }
  return paths;
}

/** The ODS code a simulated mailbox belongs to: its first three characters (X26ABC1 → X26). */
export function odsOf(mailbox: string): string {
  return mailbox.slice(0, 3).toUpperCase();
}

async function issueLeaf(
  ca: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey },
  certPath: string,
  keyPath: string,
  commonName: string,
  role: 'server' | 'client',
): Promise<void> {
  const pair = newKeyPair();
  const cert = buildCertificate(pair.publicKey, [{ name: 'commonName', value: commonName }]);
  cert.setIssuer(ca.cert.subject.attributes);
  const extensions: any[] = [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: role === 'server', clientAuth: role === 'client' },
    { name: 'subjectKeyIdentifier' },
  ];
  if (role === 'server') {
    extensions.push({ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] });
  }
  cert.setExtensions(extensions);
  cert.sign(ca.key, forge.md.sha256.create());
  await writeAtomic(keyPath, pair.privatePem, 0o600);
  await writeAtomic(certPath, forge.pki.certificateToPem(cert), 0o644);
}

function newKeyPair(): { publicKey: forge.pki.rsa.PublicKey; privateKey: forge.pki.rsa.PrivateKey; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    publicKey: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey,
    privateKey: forge.pki.privateKeyFromPem(privateKey),
    privatePem: privateKey,
  };
}

function buildCertificate(publicKey: forge.pki.rsa.PublicKey, subject: forge.pki.CertificateField[]): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // Positive serial: a random 16-byte value with the top bit cleared.
  const serial = randomBytes(16);
  serial[0] &= 0x7f;
  cert.serialNumber = serial.toString('hex');
  const notBefore = new Date(Date.now() - 24 * 60 * 60 * 1000);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALID_YEARS);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject(subject);
  return cert;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Writes via a temp file and rename so a crash never leaves a half-written key or cert. */
export async function writeAtomic(path: string, content: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}
