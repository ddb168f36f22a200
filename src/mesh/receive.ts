import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../log';
import { MeshdError } from '../errors';
import type { MeshClient } from './client';
import { createExclusive, fsyncDir, PRIVATE_FILE_MODE, removeName, SHARED_FILE_MODE, tempPathFor } from '../safe-fs';
import { BadMessageIdError, MeshNotFoundError, MeshProtocolError, MessageTooLargeError, SuspectedBombError } from './errors';
import { isMessageId } from './protocol';
import type { MessageMeta } from './meta';

/**
 * Receive flow: download into a fresh exclusive dot-named temp file (0600, O_NOFOLLOW) in the
 * target dir, fsync, chmod 0640, rename to `<messageId>.dat`, fsync the dir, and only then
 * acknowledge. Ids not of MESH's shape are refused before they name anything. A crash repeats at most the
 * download. REPORTs are logged and acknowledged, not written as data.
 */

export interface ReceiveOptions {
  dir: string;
  acknowledge?: boolean;
  maxBytes?: number;
  logger?: Logger;
  /** Called once the file is durably in place (or for a REPORT, before the ack): the ledger hook. */
  onStored?: (msg: ReceivedMessage) => void | Promise<void>;
}

export interface ReceivedMessage {
  messageId: string;
  meta: MessageMeta;
  /** Absent for REPORTs. */
  path?: string;
  bytes: number;
  acknowledged: boolean;
}

/** A message id as a file name. Only ids of MESH's shape are accepted, so names never collide. */
export function fileNameFor(messageId: string): string {
  if (!isMessageId(messageId)) throw new BadMessageIdError("MESH listed a message id that is not of MESH's shape; it names no file");
  return `${messageId}.dat`;
}

export async function receiveMessage(client: MeshClient, messageId: string, opts: ReceiveOptions): Promise<ReceivedMessage> {
  const log = opts.logger ?? silentLogger;
  const name = fileNameFor(messageId);
  await mkdir(opts.dir, { recursive: true });
  const temp = tempPathFor(join(opts.dir, name));
  let result: ReceivedMessage;
  const handle = await createExclusive(temp, PRIVATE_FILE_MODE);
  try {
    const { meta, bytes } = await client.download(messageId, { handle }, { maxBytes: opts.maxBytes });
    if (meta.messageType === 'REPORT') {
      await handle.close();
      await removeName(temp);
      log.info('MESH_REPORT_RECEIVED', 'REPORT received', {
        messageId,
        linkedMessageId: meta.linkedMessageId,
        statusCode: meta.statusCode,
        statusEvent: meta.statusEvent,
        statusDescription: meta.statusDescription,
        workflowId: meta.workflowId,
      });
      result = { messageId, meta, bytes: 0, acknowledged: false };
    } else {
      await handle.sync();
      await handle.chmod(SHARED_FILE_MODE);
      await handle.close();
      const path = join(opts.dir, name);
      // rename replaces whatever stood at the name (a link included) without following it.
      await rename(temp, path);
      await fsyncDir(opts.dir);
      log.info('MESH_MESSAGE_STORED', 'message stored', { messageId, bytes, workflowId: meta.workflowId });
      result = { messageId, meta, path, bytes, acknowledged: false };
    }
  } catch (err) {
    await handle.close().catch(() => undefined);
    await removeName(temp).catch(() => undefined);
    throw err;
  }
  await opts.onStored?.(result);
  if (opts.acknowledge !== false) {
    await client.acknowledge(messageId);
    result.acknowledged = true;
    log.info('MESH_MESSAGE_ACKNOWLEDGED', 'message acknowledged', { messageId });
  }
  return result;
}

/** Failures that concern one message only (too large, gone, bad content): the rest can still be received. */
export function isMessageScoped(err: unknown): boolean {
  return (
    err instanceof MessageTooLargeError ||
    err instanceof SuspectedBombError ||
    err instanceof MeshProtocolError ||
    err instanceof BadMessageIdError ||
    err instanceof MeshNotFoundError ||
    (err instanceof MeshdError && err.kind === 'input')
  );
}

/**
 * Every waiting message (optionally filtered), page by page. With `onFailed`, a failure that
 * concerns one message only is reported there and the others are still received (that message
 * stays unacknowledged); any other failure (auth, network, disk) stops the run.
 */
export async function receiveAll(
  client: MeshClient,
  opts: ReceiveOptions & {
    workflowFilter?: string;
    onReceived?: (msg: ReceivedMessage) => void | Promise<void>;
    onFailed?: (messageId: string, err: unknown) => void | Promise<void>;
  },
): Promise<ReceivedMessage[]> {
  const out: ReceivedMessage[] = [];
  for await (const page of client.inboxPages({ workflowFilter: opts.workflowFilter })) {
    for (const id of page) {
      let msg: ReceivedMessage;
      try {
        msg = await receiveMessage(client, id, opts);
      } catch (err) {
        if (!opts.onFailed || !isMessageScoped(err)) throw err;
        (opts.logger ?? silentLogger).warn('MESH_RECEIVE_FAILED', 'message not received; left in the inbox', { messageId: id, error: err });
        await opts.onFailed(id, err);
        continue;
      }
      await opts.onReceived?.(msg);
      out.push(msg);
    }
  }
  return out;
}
