import { readFileSync } from 'node:fs';
import { MeshdError, type ErrorKind } from '../errors';

/** Stable codes for certificate and keystore problems (docs/operations.md lists them). */
export type CertErrorCode =
  | 'CERT_KEY_EXISTS'
  | 'CERT_BAD_ARGUMENT'
  | 'CERT_UNREADABLE'
  | 'CERT_JKS_KEYSTORE'
  | 'CERT_P12_PASSWORD'
  | 'CERT_P12_EMPTY'
  | 'CERT_KEY_UNREADABLE';

export class CertError extends MeshdError {
  constructor(code: CertErrorCode, message: string, hint?: string, kind: ErrorKind = 'input', options?: { cause?: unknown }) {
    super(code, message, hint, kind, options);
  }
}

/** Reads a file the user named, turning ENOENT/EACCES into a coded error that names it. */
export function readUserFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new CertError('CERT_UNREADABLE', `cannot read ${what} ${path} (${code})`, code === 'EACCES' ? 'run as a user that may read it' : 'check the path', 'input', { cause: err });
  }
}
