import type { SimClock } from './clock';
import type { FaultInjector } from './faults';
import type { TokenChecker } from './auth';
import type { MessageStore } from './store';

/** Workflows every simulated mailbox may send to every other, whatever the options say. */
export const BASE_WORKFLOWS = ['TEST_WORKFLOW', 'TEST_WORKFLOW_ACK'];

export interface ReportRequest {
  mailbox: string;
  code: string;
  description: string;
  linkedMessageId?: string;
  workflowId?: string;
  subject?: string;
  localId?: string;
  event?: string;
  /** The intended recipient of the original message (mex-To on the report). */
  to?: string;
}

/** Everything a request handler needs: the simulator's state and its domain rules. */
export class SimState {
  faults: FaultInjector;

  constructor(
    readonly store: MessageStore,
    readonly clock: SimClock,
    readonly tokens: TokenChecker,
    faults: FaultInjector,
    readonly mailboxes: ReadonlySet<string>,
    readonly workflows: ReadonlySet<string>,
    readonly maxResults: number,
    readonly inboxExpiryMs: number,
  ) {
    this.faults = faults;
  }

  knowsMailbox(id: string): boolean {
    return this.mailboxes.has(id);
  }

  /** Sender and recipient must both be registered for the workflow (MESH error 17). */
  workflowPermitted(workflowId: string, _sender: string, _recipient: string): boolean {
    return this.workflows.has(workflowId);
  }

  /** Mailboxes that receive a workflow, optionally only those of one ODS code. */
  receivers(workflowId: string, ods?: string): string[] {
    if (!this.workflows.has(workflowId)) return [];
    return [...this.mailboxes].filter((mb) => !ods || mb.slice(0, 3) === ods.toUpperCase()).sort();
  }

  /** Puts a REPORT (empty body, N = 0) into a mailbox's inbox; returns its id. */
  createReport(r: ReportRequest): string {
    const now = this.clock.now();
    const linked = r.linkedMessageId ? this.store.get(r.linkedMessageId) : undefined;
    const report = this.store.create(
      {
        type: 'REPORT',
        sender: '',
        recipient: r.mailbox,
        workflowId: r.workflowId ?? linked?.workflowId ?? '',
        status: 'accepted',
        chunks: 0,
        localId: r.localId ?? linked?.localId,
        subject: r.subject ?? linked?.subject,
        linkedMessageId: r.linkedMessageId,
        acceptedAt: now.toISOString(),
        statusCode: r.code,
        statusEvent: r.event ?? 'TRANSFER',
        statusDescription: r.description,
        statusTimestamp: now.toISOString(),
        reportTo: r.to ?? linked?.recipient,
      },
      now,
    );
    return report.id;
  }

  /**
   * Inbox expiry: an accepted DATA message left unacknowledged past the expiry becomes
   * undeliverable, leaves the inbox, and its sender gets a REPORT code 14 linked to it.
   * An expired REPORT just leaves the inbox (nobody is told about a report).
   */
  private lastSweepRealMs = 0;

  sweepExpired(force = false): void {
    // Called on every request: a full scan at most once a second keeps the simulator O(1) per
    // request under load (benchmarks hold 10,000+ messages); moving the clock forces one.
    const realMs = Date.now();
    if (!force && realMs - this.lastSweepRealMs < 1000) return;
    this.lastSweepRealMs = realMs;
    const nowMs = this.clock.nowMs();
    const description = `Message not collected by recipient after ${Math.round(this.inboxExpiryMs / 86_400_000)} days`;
    for (const m of this.store.inStatus('accepted')) {
      if (!m.acceptedAt) continue;
      if (nowMs - Date.parse(m.acceptedAt) < this.inboxExpiryMs) continue;
      const now = this.clock.now().toISOString();
      this.store.update(m.id, {
        status: 'undeliverable',
        statusCode: '14',
        statusEvent: 'TRANSFER',
        statusDescription: description,
        statusTimestamp: now,
      });
      if (m.type === 'DATA' && m.sender) {
        this.createReport({
          mailbox: m.sender,
          code: '14',
          description,
          linkedMessageId: m.id,
          event: 'TRANSFER',
          to: m.recipient,
        });
      }
    }
  }
}
