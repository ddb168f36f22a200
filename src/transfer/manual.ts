import type { MeshdConfig } from '../config/types';
import { MeshdError } from '../errors';
import { ledgerPath, newClaimId, openLedger, type MessageRow } from '../ledger';
import type { ReceivedMessage } from '../mesh/receive';

/**
 * `meshd send` and `meshd receive` by hand are recorded in the same ledger as the daemon's
 * work, so `meshd ledger list` tells the whole story of a mailbox. A manual send sends from a
 * spool copy taken through a descriptor (the user's file is read once and never moved, so a
 * later retry of the row cannot take it); the copy goes once the message is sent.
 */
export async function recordManualSend(
  config: MeshdConfig,
  mailbox: string,
  file: string,
  headers: { to: string; workflowId: string; subject?: string; localId?: string; compress: boolean; chunkSize: number },
) {
  const { basename, join } = await import('node:path');
  const { mkdir } = await import('node:fs/promises');
  const { copyRegular, fsyncDir, PRIVATE_FILE_MODE, removeName } = await import('../safe-fs');
  const { fileFacts } = await import('./spool');
  const ledger = openLedger(ledgerPath(config.dataDir));
  const spool = join(config.dataDir, 'spool', mailbox);
  await mkdir(spool, { recursive: true, mode: 0o700 });
  const claimId = newClaimId();
  const copy = join(spool, `${claimId}.dat`);
  await copyRegular(file, copy, PRIVATE_FILE_MODE);
  await fsyncDir(spool);
  const facts = await fileFacts(copy);
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
      payloadPath: copy,
      claimId,
      sizeBytes: facts.size,
      sha256: facts.sha256,
      sourceMtimeMs: facts.mtimeMs,
      compress: headers.compress,
      chunkSize: headers.chunkSize,
      recoveryMark: 'post_in_flight',
      // Never due for the daemon's uploader: this send is in the hands of the CLI process.
      nextAttemptAt: new Date('9999-12-31T00:00:00Z'),
    },
    { type: 'manual_send', detail: { via: 'meshd send' } },
  );
  return {
    /** The spool copy to send from. */
    path: copy,
    messageId(id: string, total: number) {
      if (total > 1) row = ledger.transition(row.id, 'uploading', { patch: { messageId: id, chunksTotal: total, chunksDone: 1, errorCode: null }, event: { type: 'message_id', detail: { messageId: id } } });
      // MESH answered: the outcome is no longer unknown.
      else row = ledger.setMark(row.id, null, { patch: { messageId: id }, event: { type: 'message_id', detail: { messageId: id } } });
    },
    chunk(n: number, total: number) {
      if (n > 1) ledger.update(row.id, { chunksDone: n, chunksTotal: total });
    },
    async around<T extends { messageId: string; chunks: number }>(send: () => Promise<T>): Promise<T> {
      try {
        const result = await send();
        ledger.transition(row.id, 'sent', {
          patch: { messageId: result.messageId, chunksDone: result.chunks, chunksTotal: result.chunks, payloadPath: null, nextAttemptAt: new Date(Date.now() + 10 * 60_000) },
          event: { type: 'sent', detail: { messageId: result.messageId, via: 'meshd send' } },
        });
        await removeName(copy);
        return result;
      } catch (err) {
        // The spool copy stays with the row: a retry after review sends it, never the user's file.
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
