import type { Handler } from './context';
import type { FaultEndpoint } from './faults';
import { acknowledge } from './routes/ack';
import { download } from './routes/download';
import { handshake } from './routes/handshake';
import { inboxCount, listInbox } from './routes/inbox';
import { endpointLookup, ping, workflowSearch } from './routes/lookup';
import { sendChunk, sendMessage } from './routes/send';
import { tracking, trackingByLocalId } from './routes/tracking';

/**
 * The MESH v2 route table (paths after /messageexchange). Each route names its fault
 * endpoint and whether it needs a token; the token's mailbox must equal `{mailbox}`.
 */
export interface Route {
  method: string[];
  pattern: string[];
  endpoint: FaultEndpoint | 'ping';
  auth: boolean;
  handler: Handler;
}

const ROUTES: Route[] = [
  { method: ['GET'], pattern: ['_ping'], endpoint: 'ping', auth: false, handler: ping },
  { method: ['GET'], pattern: ['endpointlookup', ':ods', ':workflow'], endpoint: 'lookup', auth: false, handler: endpointLookup },
  { method: ['GET'], pattern: ['workflowsearch', ':workflow'], endpoint: 'lookup', auth: false, handler: workflowSearch },
  { method: ['GET'], pattern: [':mailbox', 'outbox', 'tracking'], endpoint: 'tracking', auth: true, handler: tracking },
  { method: ['GET'], pattern: [':mailbox', 'outbox', 'tracking', ':localId'], endpoint: 'tracking', auth: true, handler: trackingByLocalId },
  { method: ['POST', 'GET'], pattern: [':mailbox'], endpoint: 'handshake', auth: true, handler: handshake },
  { method: ['GET'], pattern: [':mailbox', 'inbox'], endpoint: 'inbox', auth: true, handler: listInbox },
  { method: ['GET'], pattern: [':mailbox', 'count'], endpoint: 'inbox', auth: true, handler: inboxCount },
  { method: ['GET', 'HEAD'], pattern: [':mailbox', 'inbox', ':id'], endpoint: 'download', auth: true, handler: download },
  { method: ['GET', 'HEAD'], pattern: [':mailbox', 'inbox', ':id', ':n'], endpoint: 'download', auth: true, handler: download },
  { method: ['PUT'], pattern: [':mailbox', 'inbox', ':id', 'status', 'acknowledged'], endpoint: 'ack', auth: true, handler: acknowledge },
  { method: ['POST'], pattern: [':mailbox', 'outbox'], endpoint: 'send', auth: true, handler: sendMessage },
  { method: ['POST'], pattern: [':mailbox', 'outbox', ':id', ':n'], endpoint: 'chunk', auth: true, handler: sendChunk },
];

export type RouteMatch = { route: Route; params: Record<string, string> } | { status: 404 | 405 };

export function matchRoute(method: string, segments: string[]): RouteMatch {
  let pathMatched = false;
  for (const route of ROUTES) {
    const params = matchPattern(route.pattern, segments);
    if (!params) continue;
    pathMatched = true;
    if (route.method.includes(method)) return { route, params };
  }
  return { status: pathMatched ? 405 : 404 };
}

function matchPattern(pattern: string[], segments: string[]): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i].startsWith(':')) params[pattern[i].slice(1)] = segments[i];
    else if (pattern[i] !== segments[i]) return undefined;
  }
  return params;
}
