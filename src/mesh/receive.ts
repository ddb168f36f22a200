import { randomUUID } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../log';
import { MeshdError } from '../errors';
import type { MeshClient } from './client';
import { MeshNotFoundError, MessageTooLargeError } from './errors';
import type { MessageMeta } from './meta';

/**
 * Receive flow: download to a unique dot-named temp file in the target dir, fsync, rename to
 * `<messageId>.dat`, fsync the dir, and only then acknowledge. A crash repeats at most the
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

/** A message id as a safe file name (ids are opaque; never let one escape the directory). */
export function fileNameFor(messageId: string): string {
  const safe = messageId.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '_');
  return `${safe || '_'}.dat`;
}

export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function receiveMessage(client: MeshClient, messageId: string, opts: ReceiveOptions): Promise<ReceivedMessage> {
  const log = opts.logger ?? silentLogger;
  await mkdir(opts.dir, { recursive: true });
  const temp = join(opts.dir, `.${fileNameFor(messageId)}.${randomUUID()}.part`);
  let result: ReceivedMessage;
  try {
    const { meta, bytes } = await client.download(messageId, temp, { maxBytes: opts.maxBytes });
    if (meta.messageType === 'REPORT') {
      await unlink(temp).catch(() => undefined);
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
      await fsyncPath(temp);
      const path = join(opts.dir, fileNameFor(messageId));
      await rename(temp, path);
      await fsyncPath(opts.dir);
      log.info('MESH_MESSAGE_STORED', 'message stored', { messageId, bytes, workflowId: meta.workflowId });
      result = { messageId, meta, path, bytes, acknowledged: false };
    }
  } catch (err) {
    await unlink(temp).catch(() => undefined);
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
  return err instanceof MessageTooLargeError || err instanceof MeshNotFoundError || (err instanceof MeshdError && err.kind === 'input');
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
