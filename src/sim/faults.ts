import { SimError } from './errors';
import { hash32, mulberry32, type Random } from './prng';

/**
 * Fault injection, seeded and reproducible.
 *
 * Spec syntax (CLI `--faults`, `setFaults`, PUT /admin/faults):
 *   spec     := rule ("," rule)*
 *   rule     := endpoint ":" kind "=" value
 *   endpoint := handshake | inbox | download | ack | send | chunk | tracking | lookup | "*"
 *   kind     := 500 | 503 | 429 | reset | reset-after-accept   value = probability 0..1
 *             | latency                                       value = added milliseconds
 *             | retry-after                                   value = seconds sent with 429 (default 1)
 * e.g. "send:503=0.1,send:reset-after-accept=0.05,download:reset=0.1,*:latency=20,*:429=0.05"
 *
 * A rule for a named endpoint overrides the "*" rule of the same kind. Each endpoint has its
 * own PRNG stream derived from the seed and draws exactly two numbers per request, so the
 * faults seen on one endpoint depend only on the seed and that endpoint's request count.
 * `reset-after-accept` (store, then drop the connection before the 202) applies to send and chunk.
 */

export const FAULT_ENDPOINTS = ['handshake', 'inbox', 'download', 'ack', 'send', 'chunk', 'tracking', 'lookup'] as const;
export type FaultEndpoint = (typeof FAULT_ENDPOINTS)[number];

const PROBABILITY_KINDS = ['500', '503', '429', 'reset', 'reset-after-accept'] as const;
type ProbabilityKind = (typeof PROBABILITY_KINDS)[number];
const VALUE_KINDS = ['latency', 'retry-after'] as const;
type FaultKind = ProbabilityKind | (typeof VALUE_KINDS)[number];

export type FaultRules = Partial<Record<FaultKind, number>>;
export type FaultSpec = Partial<Record<FaultEndpoint | '*', FaultRules>>;

export type FaultAction =
  | { kind: 'none' }
  | { kind: '500'; xmlBody: boolean }
  | { kind: '503' }
  | { kind: '429'; retryAfterSeconds: number }
  | { kind: 'reset' }
  | { kind: 'reset-after-accept' };

export interface FaultDecision {
  action: FaultAction;
  latencyMs: number;
}

const SPEC_HINT = 'use endpoint:kind=value, e.g. "send:503=0.1,*:latency=20" (see docs/simulator.md)';

export function parseFaultSpec(spec: string | undefined): FaultSpec {
  const out: FaultSpec = {};
  if (!spec || !spec.trim()) return out;
  for (const raw of spec.split(',')) {
    const rule = raw.trim();
    if (!rule) continue;
    const m = /^([a-z*]+):([a-z0-9-]+)=([0-9.]+)$/i.exec(rule);
    if (!m) throw new SimError('SIM_FAULT_SPEC', `fault rule "${rule}" is not endpoint:kind=value`, SPEC_HINT);
    const endpoint = m[1].toLowerCase() as FaultEndpoint | '*';
    const kind = m[2].toLowerCase() as FaultKind;
    const value = Number(m[3]);
    if (endpoint !== '*' && !(FAULT_ENDPOINTS as readonly string[]).includes(endpoint)) {
      throw new SimError('SIM_FAULT_SPEC', `fault rule "${rule}": unknown endpoint "${endpoint}"`, `endpoints: ${FAULT_ENDPOINTS.join(', ')}, *`);
    }
    const isProbability = (PROBABILITY_KINDS as readonly string[]).includes(kind);
    if (!isProbability && !(VALUE_KINDS as readonly string[]).includes(kind)) {
      throw new SimError('SIM_FAULT_SPEC', `fault rule "${rule}": unknown kind "${kind}"`, `kinds: ${[...PROBABILITY_KINDS, ...VALUE_KINDS].join(', ')}`);
    }
    if (!Number.isFinite(value) || (isProbability && value > 1)) {
      throw new SimError('SIM_FAULT_SPEC', `fault rule "${rule}": value must be ${isProbability ? 'a probability 0..1' : 'a number'}`, SPEC_HINT);
    }
    if (kind === 'reset-after-accept' && endpoint !== 'send' && endpoint !== 'chunk' && endpoint !== '*') {
      throw new SimError('SIM_FAULT_SPEC', `fault rule "${rule}": reset-after-accept applies only to send and chunk`, SPEC_HINT);
    }
    (out[endpoint] ??= {})[kind] = value;
  }
  for (const endpoint of [...FAULT_ENDPOINTS]) {
    const total = PROBABILITY_KINDS.reduce((sum, k) => sum + (rulesFor(out, endpoint)[k] ?? 0), 0);
    if (total > 1) {
      throw new SimError('SIM_FAULT_SPEC', `fault probabilities for "${endpoint}" add up to ${total}, more than 1`, SPEC_HINT);
    }
  }
  return out;
}

function rulesFor(spec: FaultSpec, endpoint: FaultEndpoint): FaultRules {
  const merged: FaultRules = { ...(spec['*'] ?? {}), ...(spec[endpoint] ?? {}) };
  if (endpoint !== 'send' && endpoint !== 'chunk') delete merged['reset-after-accept'];
  return merged;
}

export class FaultInjector {
  private readonly spec: FaultSpec;
  private readonly streams = new Map<FaultEndpoint, Random>();

  constructor(
    spec: string | undefined,
    private readonly seed = 1,
  ) {
    this.spec = parseFaultSpec(spec);
  }

  get active(): boolean {
    return Object.keys(this.spec).length > 0;
  }

  /** Draws the outcome for one request to `endpoint`. Always two draws, whatever the outcome. */
  decide(endpoint: FaultEndpoint): FaultDecision {
    const rules = rulesFor(this.spec, endpoint);
    let random = this.streams.get(endpoint);
    if (!random) {
      random = mulberry32((this.seed ^ hash32(endpoint)) >>> 0);
      this.streams.set(endpoint, random);
    }
    const pick = random();
    const flavour = random();
    const latencyMs = rules.latency ?? 0;
    let threshold = 0;
    for (const kind of PROBABILITY_KINDS) {
      threshold += rules[kind] ?? 0;
      if (pick < threshold) return { action: actionFor(kind, flavour, rules), latencyMs };
    }
    return { action: { kind: 'none' }, latencyMs };
  }
}

function actionFor(kind: ProbabilityKind, flavour: number, rules: FaultRules): FaultAction {
  switch (kind) {
    case '500':
      // Real MESH sometimes answers a 500 with an XML/SOAP or HTML page rather than JSON.
      return { kind: '500', xmlBody: flavour < 0.5 };
    case '503':
      return { kind: '503' };
    case '429':
      return { kind: '429', retryAfterSeconds: Math.max(0, Math.round(rules['retry-after'] ?? 1)) };
    case 'reset':
      return { kind: 'reset' };
    case 'reset-after-accept':
      return { kind: 'reset-after-accept' };
  }
}
