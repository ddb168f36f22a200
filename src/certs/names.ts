/**
 * The client certificate's CN convention (docs/mesh-protocol.md, Client certificate):
 * `<mailboxid>.<odscode>.api.mesh-client.nhs.uk`, every other subject field blank.
 */
export const MESH_CN_SUFFIX = '.api.mesh-client.nhs.uk';

const ID = /^[A-Za-z0-9]{2,20}$/;

export function isValidMailboxId(id: string): boolean {
  return ID.test(id);
}

export function isValidOdsCode(ods: string): boolean {
  return ID.test(ods);
}

/** MESH mailbox IDs and ODS codes are upper case (the token requires it). */
export function meshCommonName(mailbox: string, ods: string): string {
  return `${mailbox.toUpperCase()}.${ods.toUpperCase()}${MESH_CN_SUFFIX}`;
}

/** Splits a CN that follows the convention; undefined when it does not. */
export function parseMeshCommonName(cn: string): { mailbox: string; ods: string } | undefined {
  if (!cn.toLowerCase().endsWith(MESH_CN_SUFFIX)) return undefined;
  const parts = cn.slice(0, -MESH_CN_SUFFIX.length).split('.');
  if (parts.length !== 2 || !ID.test(parts[0]) || !ID.test(parts[1])) return undefined;
  return { mailbox: parts[0], ods: parts[1] };
}
