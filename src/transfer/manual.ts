import type { MeshdConfig } from '../config/types';
import { MeshdError } from '../errors';
import { ledgerPath, openLedger, type MessageRow } from '../ledger';
import type { ReceivedMessage } from '../mesh/receive';

/**
 * `meshd send` and `meshd receive` by hand are recorded in the same ledger as the daemon's
 * work, so `meshd ledger list` tells the whole story of a mailbox. The file is not moved:
 * a manual send leaves it where the user put it.
 */
export async function recordManualSend(
  config: MeshdConfig,
  mailbox: string,
  file: string,
  headers: { to: string; workflowId: string; subject?: string; localId?: string },
) {
  const { basename, resolve } = await import('node:path');
  const { stat } = await import('node:fs/promises');
  const ledger = openLedger(ledgerPath(config.dataDir));
  let row: MessageRow = ledger.insertMessage(
    {
      direction: 'out',
      mailbox,
      state: 'queued',
      peer: headers.to.toUpperCase(),
      workflowId: headers.workflowId,
      subject: headers.subject ?? null,
      localId: headers.localId ?? null,
      fileName: basename(file),
      payloadPath: resolve(file),
      sizeBytes: (await stat(file)).size,
      errorCode: 'POST_IN_FLIGHT',
      // Never due for the daemon's uploader: this send is in the hands of the CLI process.
      nextAttemptAt: new Date('9999-12-31T00:00:00Z'),
    },
    { type: 'manual_send', detail: { via: 'meshd send' } },
  );
  return {
    messageId(id: string, total: number) {
      if (total > 1) row = ledger.transition(row.id, 'uploading', { patch: { messageId: id, chunksTotal: total, chunksDone: 1, errorCode: null }, event: { type: 'message_id', detail: { messageId: id } } });
      else row = ledger.update(row.id, { messageId: id });
    },
    chunk(n: number, total: number) {
      if (n > 1) ledger.update(row.id, { chunksDone: n, chunksTotal: total });
    },
    async around<T extends { messageId: string; chunks: number }>(send: () => Promise<T>): Promise<T> {
      try {
        const result = await send();
        ledger.transition(row.id, 'sent', {
          patch: { messageId: result.messageId, chunksDone: result.chunks, chunksTotal: result.chunks, errorCode: null, nextAttemptAt: new Date(Date.now() + 10 * 60_000) },
          event: { type: 'sent', detail: { messageId: result.messageId, via: 'meshd send' } },
        });
        return result;
      } catch (err) {
        const e = err instanceof MeshdError ? err : undefined;
        const state = e?.kind === 'ambiguous' ? 'needs_review' : 'failed';
        ledger.transition(row.id, state, { patch: { errorCode: e?.code ?? 'SEND_FAILED', errorText: (err as Error).message }, event: { type: state, detail: { code: e?.code } } });
        throw err;
      } finally {
        ledger.close();
      }
    },
  };
}

export function manualReceiveRecorder(config: MeshdConfig, mailbox: string) {
  const ledger = openLedger(ledgerPath(config.dataDir));
  return {
    stored: (m: ReceivedMessage) => {
      if (ledger.findByMessageId(mailbox, 'in', m.messageId)) return;
      ledger.insertMessage(
        {
          direction: 'in',
          mailbox,
          state: 'delivered',
          messageId: m.messageId,
          messageType: m.meta.messageType,
          peer: m.meta.from ?? null,
          workflowId: m.meta.workflowId ?? null,
          localId: m.meta.localId ?? null,
          subject: m.meta.subject ?? null,
          fileName: m.meta.fileName ?? null,
          payloadPath: m.path ?? null,
          sizeBytes: m.bytes,
          linkedMessageId: m.meta.linkedMessageId ?? null,
          reportCode: m.meta.messageType === 'REPORT' ? (m.meta.statusCode ?? null) : null,
        },
        { type: 'delivered', detail: { via: 'meshd receive' } },
      );
    },
    acknowledged(ids: string[]) {
      ledger.transaction(() => {
        for (const id of ids) {
          const row = ledger.findByMessageId(mailbox, 'in', id);
          if (row?.state === 'delivered') ledger.transition(row.id, 'acknowledged', { event: { type: 'acknowledged', detail: { via: 'meshd receive' } } });
        }
      });
    },
    close: () => ledger.close(),
  };
}
