import { createHmac, randomUUID } from 'node:crypto';

/**
 * The NHSMESH Authorization header (docs/mesh-protocol.md, Authorization token). A new token for every request,
 * retries included: MESH refuses a repeated token with 403.
 */

/** UTC `yyyyMMddHHmm`; MESH refuses timestamps more than 2 hours from its clock. */
export function meshTimestamp(now: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}${p(now.getUTCHours())}${p(now.getUTCMinutes())}`;
}

export interface TokenInput {
  mailboxId: string;
  password: string;
  sharedKey: string;
  nonce?: string;
  nonceCount?: number;
  now?: Date;
}

/** `NHSMESH MAILBOX:nonce:count:timestamp:hmac`; the password is in the HMAC only, never the header. */
export function meshToken(input: TokenInput): string {
  const mailbox = input.mailboxId.toUpperCase();
  const nonce = input.nonce ?? randomUUID();
  const count = input.nonceCount ?? 0;
  const ts = meshTimestamp(input.now ?? new Date());
  const mac = createHmac('sha256', Buffer.from(input.sharedKey, 'utf8'))
    .update(`${mailbox}:${nonce}:${count}:${input.password}:${ts}`, 'utf8')
    .digest('hex');
  return `NHSMESH ${mailbox}:${nonce}:${count}:${ts}:${mac}`;
}
