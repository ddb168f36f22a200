import type { IncomingMessage, ServerResponse } from 'node:http';
import { MeshdError } from '../../errors';
import { readJson, sendError, sendJson } from '../http';
import type { ReportRequest } from '../state';
import type { SimMessage } from '../store';

/**
 * Test-only admin API under /admin (client certificate required, no token):
 *   POST /admin/reset                      → 200 {}
 *   POST /admin/report   {mailbox, code, description, linkedMessageId?, workflowId?, subject?, localId?, event?}
 *                                          → 201 {message_id}
 *   POST /admin/clock    {advanceMs}       → 200 {now}      GET /admin/clock → {now, offsetMs}
 *   PUT  /admin/faults   {spec, seed?}     → 200 {}
 *   GET  /admin/messages                   → 200 [SimMessage...]
 *   GET  /admin/messages/{id}              → 200 SimMessage | 404
 */
export interface AdminControl {
  reset(): Promise<void>;
  injectReport(r: ReportRequest): Promise<string>;
  advanceClock(ms: number): Promise<void>;
  setFaults(spec: string | undefined, seed?: number): void;
  messages(): SimMessage[];
  now(): Date;
  clockOffsetMs(): number;
}

/** A bad admin request body: answered 400, never 500. */
class AdminInputError extends Error {}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await readJson(req);
  } catch (err) {
    throw new AdminInputError(`request body must be a JSON object under 1 MB (${err instanceof Error ? err.message : String(err)})`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new AdminInputError('request body must be a JSON object');
  return body as Record<string, unknown>;
}

export async function handleAdmin(req: IncomingMessage, res: ServerResponse, segments: string[], control: AdminControl): Promise<void> {
  const route = `${req.method} /${segments.join('/')}`;
  const bad = (msg: string): void => sendError(res, 400, { event: 'ADMIN', code: 'BadRequest', msg });
  try {
    if (route === 'POST /reset') {
      await control.reset();
      return sendJson(res, 200, {});
    }
    if (route === 'POST /report') {
      const body = (await readBody(req)) as Partial<ReportRequest>;
      if (typeof body.mailbox !== 'string' || typeof body.code !== 'string' || typeof body.description !== 'string') {
        return bad('report needs string fields mailbox, code and description');
      }
      for (const key of ['linkedMessageId', 'workflowId', 'subject', 'localId', 'event'] as const) {
        if (body[key] !== undefined && typeof body[key] !== 'string') return bad(`report field ${key} must be a string`);
      }
      const id = await control.injectReport(body as ReportRequest);
      return sendJson(res, 201, { message_id: id });
    }
    if (route === 'GET /clock') return sendJson(res, 200, { now: control.now().toISOString(), offsetMs: control.clockOffsetMs() });
    if (route === 'POST /clock') {
      const body = (await readBody(req)) as { advanceMs?: unknown };
      if (typeof body.advanceMs !== 'number' || !(body.advanceMs >= 0)) return bad('advanceMs must be a number >= 0');
      await control.advanceClock(body.advanceMs);
      return sendJson(res, 200, { now: control.now().toISOString() });
    }
    if (route === 'PUT /faults') {
      const body = (await readBody(req)) as { spec?: unknown; seed?: unknown };
      if (body.spec !== undefined && body.spec !== null && typeof body.spec !== 'string') return bad('spec must be a string');
      if (body.seed !== undefined && typeof body.seed !== 'number') return bad('seed must be a number');
      control.setFaults((body.spec as string | null) ?? undefined, body.seed as number | undefined);
      return sendJson(res, 200, {});
    }
    if (route === 'GET /messages') return sendJson(res, 200, control.messages());
    if (req.method === 'GET' && segments.length === 2 && segments[0] === 'messages') {
      const m = control.messages().find((x) => x.id === segments[1]);
      return m ? sendJson(res, 200, m) : sendError(res, 404, { event: 'ADMIN', code: '20', msg: 'Message does not exist' });
    }
    sendError(res, 404, { event: 'ADMIN', code: 'NotFound', msg: `no admin route ${route}` });
  } catch (err) {
    if (err instanceof MeshdError || err instanceof AdminInputError) return bad(err.message);
    throw err;
  }
}
