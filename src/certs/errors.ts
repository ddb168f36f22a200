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
