/** Client certificates for MESH: CSRs, inspection, keystore import, expiry status. */
export { CertError, readUserFile, type CertErrorCode } from './errors';
export { MESH_CN_SUFFIX, meshCommonName, parseMeshCommonName, isValidMailboxId, isValidOdsCode } from './names';
export {
  EXPIRY_WARNING_DAYS,
  certificateStatus,
  describeCertificate,
  keyMatchesCertificate,
  parseCertificate,
  parsePrivateKey,
  splitCertificates,
  type CertificateInfo,
  type CertificateStatus,
} from './status';
export { CSR_NEXT_STEPS, createCsr, type CsrRequest, type CsrResult } from './csr';
export { importPkcs12, jksError, keystoreKind, keytoolCommand, readPkcs12, type ImportResult, type Keystore, type KeystoreKind } from './keystore';
export { checkPrivateMode, checkTlsFiles, groupOrOtherBits, type Finding } from './check';
