import type { Command } from 'commander';
import { MeshdError } from '../errors';
import { EXIT } from './exit';
import { writeJson, writeLines } from './output';

/**
 * `meshd certs csr|inspect|import`: the client certificate's life cycle without openssl
 * or keytool. src/certs is loaded inside each action so `meshd --help` stays fast.
 */

interface GlobalOpts {
  json?: boolean;
}

function globals(cmd: Command): GlobalOpts {
  return cmd.optsWithGlobals() as GlobalOpts;
}

function out(line = ''): void {
  writeLines([line]);
}

function printJson(value: unknown): void {
  writeJson(value, { space: 2 });
}

/** A password named by environment variable, so it never sits in shell history. */
function passwordFromEnv(varName: string | undefined): string | undefined {
  if (varName === undefined) return undefined;
  const value = process.env[varName];
  if (value === undefined) {
    throw new MeshdError('CERT_PASSWORD_ENV_UNSET', `environment variable ${varName} (from --password-env) is not set`, `export ${varName}=... first, or omit --password-env for an unprotected file`, 'usage');
  }
  return value;
}

export function register(program: Command): void {
  const certs = program.command('certs').description('client certificates: make a CSR, inspect, import a PKCS#12 keystore');

  certs
    .command('csr')
    .description('generate a new private key and a CSR with CN=<mailbox>.<ods>.api.mesh-client.nhs.uk (needs --mailbox)')
    .requiredOption('--ods <code>', 'your organisation ODS code')
    .option('--out <dir>', 'folder for <mailbox>.key and <mailbox>.csr', '.')
    .action(async (opts: { ods: string; out: string }, cmd: Command) => {
      const { createCsr, CSR_NEXT_STEPS } = await import('../certs');
      const g = cmd.optsWithGlobals() as GlobalOpts & { mailbox?: string };
      const mailbox = g.mailbox;
      if (!mailbox) throw new MeshdError('CERT_BAD_ARGUMENT', 'no mailbox given', 'pass --mailbox <id>', 'usage');
      const result = createCsr({ mailbox, ods: opts.ods, outDir: opts.out });
      if (g.json) {
        printJson({ commonName: result.commonName, keyPath: result.keyPath, csrPath: result.csrPath, nextSteps: CSR_NEXT_STEPS });
        return;
      }
      out(`subject:     CN=${result.commonName}`);
      out(`private key: ${result.keyPath} (mode 0600; keep it here, never send it)`);
      out(`request:     ${result.csrPath}`);
      out();
      out('Next steps:');
      CSR_NEXT_STEPS.forEach((step, i) => out(`  ${i + 1}. ${step}`));
    });

  certs
    .command('inspect')
    .description('show subject, issuer, SANs, validity, SHA-256 fingerprint; check a key matches')
    .argument('<file>', 'certificate (PEM or DER) or PKCS#12 keystore')
    .option('--key <file>', 'private key (PEM) to check against the certificate')
    .option('--password-env <var>', 'environment variable holding the keystore or key password')
    .action(async (file: string, opts: { key?: string; passwordEnv?: string }, cmd: Command) => {
      const c = await import('../certs');
      const password = passwordFromEnv(opts.passwordEnv);
      const data = c.readUserFile(file, 'certificate');
      const kind = c.keystoreKind(data);
      if (kind === 'jks') throw c.jksError(file);
      let certInput: string | Buffer = data;
      let embeddedKey: string | undefined;
      if (kind === 'pkcs12') {
        const store = c.readPkcs12(data, password ?? '');
        certInput = store.certificatesPem.join('');
        embeddedKey = store.keyPem;
      } else if (kind === 'pem' && c.splitCertificates(data).length === 0) {
        const what = /PRIVATE KEY/.test(data.toString('latin1')) ? 'a private key' : /CERTIFICATE REQUEST/.test(data.toString('latin1')) ? 'a CSR' : 'no certificate';
        throw new c.CertError('CERT_UNREADABLE', `${file} holds ${what}, not a certificate`, 'inspect the certificate NHS England sent back (the .crt/.pem), optionally with --key');
      }
      const info = c.describeCertificate(certInput);
      const keyText = opts.key ? c.readUserFile(opts.key, 'private key') : embeddedKey;
      const keyMatches = keyText === undefined ? undefined : c.keyMatchesCertificate(certInput, keyText, opts.key ? password : undefined);
      if (globals(cmd).json) {
        printJson({ file, format: kind, ...info, keyMatches: keyMatches ?? null });
      } else {
        const state = info.expired ? 'EXPIRED' : info.notYetValid ? 'NOT YET VALID' : info.expiresSoon ? `EXPIRES SOON (${info.daysLeft} days)` : 'valid';
        out(`subject:     ${info.subject}`);
        out(`issuer:      ${info.issuer}`);
        out(`SANs:        ${info.subjectAltNames.length ? info.subjectAltNames.join(', ') : '(none)'}`);
        out(`valid from:  ${info.notBefore.toISOString()}`);
        out(`valid until: ${info.notAfter.toISOString()} (${info.daysLeft} days left)`);
        out(`status:      ${state}`);
        out(`SHA-256:     ${info.fingerprintSha256}`);
        out(`serial:      ${info.serialNumber}`);
        out(`chain:       ${info.chainLength} more certificate(s) after the leaf`);
        out(`MESH name:   ${info.meshName ? `mailbox ${info.meshName.mailbox}, ODS ${info.meshName.ods}` : 'CN does not follow <mailbox>.<ods>.api.mesh-client.nhs.uk'}`);
        if (keyMatches !== undefined) out(`key matches: ${keyMatches ? 'yes' : 'NO - this key is not the one the certificate was issued for'}`);
      }
      // Scripts can rely on the exit code: a wrong key or an unusable certificate is a failure.
      if (keyMatches === false || info.expired || info.notYetValid) process.exitCode = EXIT.FAILURE;
    });

  certs
    .command('import')
    .description('convert a PKCS#12 keystore (Java MESH Client) to PEM certificate + chain and key (0600)')
    .requiredOption('--p12 <file>', 'the PKCS#12 (.p12/.pfx/.keystore) file')
    .option('--out <dir>', 'folder for <name>.crt and <name>.key', '.')
    .option('--password-env <var>', 'environment variable holding the keystore password')
    .action(async (opts: { p12: string; out: string; passwordEnv?: string }, cmd: Command) => {
      const { importPkcs12 } = await import('../certs');
      const result = importPkcs12(opts.p12, opts.out, passwordFromEnv(opts.passwordEnv) ?? '');
      if (globals(cmd).json) {
        printJson(result);
        return;
      }
      out(`certificate: ${result.certPath} (leaf + ${result.chainLength} chain certificate(s))`);
      out(`private key: ${result.keyPath} (mode 0600)`);
      if (result.commonName) out(`subject:     CN=${result.commonName}`);
      out('Set tls.cert and tls.key in the config to these files, then run: meshd config check');
    });
}
