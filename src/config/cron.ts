/**
 * The few cron facts config validation needs. node-cron validates syntax; here we only work
 * out how often an expression can fire, because MESH forbids polling more often than every
 * 5 minutes outside a backlog (docs/mesh-protocol.md, Polling and handshake).
 */

/** Expands one cron field (e.g. `*`, `*\/5`, `1-10/2`, `0,30`) into its values, or undefined if unsupported. */
export function expandField(field: string, min: number, max: number): number[] | undefined {
  const out = new Set<number>();
  for (const part of field.split(',')) {
    const m = /^(\*|\d+)(?:-(\d+))?(?:\/(\d+))?$/.exec(part.trim());
    if (!m) return undefined;
    const start = m[1] === '*' ? min : Number(m[1]);
    const end = m[2] !== undefined ? Number(m[2]) : m[1] === '*' || m[3] !== undefined ? max : start;
    const step = m[3] !== undefined ? Number(m[3]) : 1;
    if (step < 1 || start < min || end > max || start > end) return undefined;
    for (let v = start; v <= end; v += step) out.add(v);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * Smallest gap in minutes between two firings, looking at the minute field (and a seconds
 * field when present). Returns undefined when the expression cannot be analysed.
 */
export function minIntervalMinutes(expression: string): number | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) return undefined;
  if (fields.length === 6) {
    const seconds = expandField(fields[0], 0, 59);
    if (!seconds) return undefined;
    if (seconds.length > 1) return 0;
  }
  const minuteField = fields[fields.length - 5];
  const hourField = fields[fields.length - 4];
  const minutes = expandField(minuteField, 0, 59);
  if (!minutes) return undefined;
  if (minutes.length === 1) {
    // Once an hour at most per listed hour; hours are at least 60 minutes apart.
    return 60;
  }
  let gap = Infinity;
  for (let i = 1; i < minutes.length; i++) gap = Math.min(gap, minutes[i] - minutes[i - 1]);
  // Wrap-around into the next hour matters only when consecutive hours can both fire.
  const hours = expandField(hourField, 0, 23);
  const consecutiveHours = !hours || hours.some((h, i) => i > 0 && h - hours[i - 1] === 1) || hours.length === 24;
  if (consecutiveHours) gap = Math.min(gap, minutes[0] + 60 - minutes[minutes.length - 1]);
  return gap;
}
