import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FaultAction } from './faults';
import type { SimState } from './state';

/** What a route handler gets for one request. */
export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  state: SimState;
  /** Path parameters by name (mailbox, id, n, ods, workflow, localId). */
  params: Record<string, string>;
  /** The authenticated mailbox ('' on routes that need no token). */
  mailbox: string;
  /** The fault drawn for this request; handlers that can fail part-way act on it. */
  fault: FaultAction;
  /** Accept-Encoding allows gzip. */
  acceptsGzip: boolean;
}

export type Handler = (ctx: RequestContext) => Promise<void>;
