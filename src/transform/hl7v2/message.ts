import { CLEARED, type Tri } from '../model';
import { type Delimiters, delimitersFrom, unescapeHl7 } from './escape';

/**
 * A tokenised ER7 message: segments split into raw fields, with accessors that split
 * repetitions/components/subcomponents on demand and unescape only the leaf asked for.
 * Field numbers follow HL7 (MSH-1 is the field separator, MSH-2 the encoding characters).
 */

export class Segment {
  constructor(
    readonly name: string,
    /** fields[n] = raw text of field n; fields[0] = segment name. */
    readonly fields: string[],
    /** Zero-based position of the segment in the message (for error positions). */
    readonly index: number,
  ) {}

  /** Repetitions of each field once split (readers ask for many leaves of the same field). */
  readonly repsOf: Array<readonly string[] | undefined> = [];

  raw(field: number): string {
    return this.fields[field] ?? '';
  }
}

/** Where a value sits: field, optional repetition (0-based), component and subcomponent (1-based). */
export interface Path {
  field: number;
  rep?: number;
  comp?: number;
  sub?: number;
}

export class Hl7Message {
  constructor(
    readonly segments: Segment[],
    readonly delimiters: Delimiters,
  ) {}

  /** Splits one message (segments separated by CR) into segments and fields. */
  static parse(text: string): Hl7Message | { problem: string } {
    if (!text.startsWith('MSH') || text.length < 8) return { problem: 'does not start with an MSH segment' };
    const d = delimitersFrom(text[3], text.slice(4, 8));
    if (!d) return { problem: 'MSH-1/MSH-2 do not define usable delimiters' };
    const segments: Segment[] = [];
    for (const line of text.split('\r')) {
      if (line.length === 0) continue;
      const parts = line.split(d.field);
      const name = parts[0];
      if (name === 'MSH') parts.splice(1, 0, d.field);
      segments.push(new Segment(name, parts, segments.length));
    }
    return new Hl7Message(segments, d);
  }

  first(name: string): Segment | undefined {
    return this.segments.find((s) => s.name === name);
  }

  all(name: string): Segment[] {
    return this.segments.filter((s) => s.name === name);
  }

  /** Raw repetitions of a field. */
  reps(seg: Segment, field: number): readonly string[] {
    let reps = seg.repsOf[field];
    if (reps === undefined) {
      const raw = seg.raw(field);
      reps = raw === '' ? [] : seg.name === 'MSH' && field <= 2 ? [raw] : raw.split(this.delimiters.repetition);
      seg.repsOf[field] = reps;
    }
    return reps;
  }

  /**
   * Raw component text of one repetition (not unescaped, subcomponents still joined). Found by
   * scanning for separators: cheaper than splitting (or caching a split of) every repetition,
   * since a reader asks for a few components of short text.
   */
  rawComp(repText: string, comp: number): string {
    if (comp < 1) return '';
    const sep = this.delimiters.component;
    let start = 0;
    for (let i = 1; i < comp; i++) {
      const at = repText.indexOf(sep, start);
      if (at < 0) return '';
      start = at + 1;
    }
    const end = repText.indexOf(sep, start);
    return end < 0 ? repText.slice(start) : repText.slice(start, end);
  }

  /**
   * Unescaped leaf text of one repetition's component/subcomponent; '' when absent.
   * A `""` inside a composite has no canonical meaning of its own and reads as empty;
   * whole-field `""` is seen through `tri`/`fieldCleared`.
   */
  leaf(repText: string, comp = 1, sub = 1): string {
    const raw = this.rawLeaf(repText, comp, sub);
    return raw === '""' ? '' : unescapeHl7(raw, this.delimiters);
  }

  private rawLeaf(repText: string, comp: number, sub: number): string {
    const c = this.rawComp(repText, comp);
    if (sub === 1 && !c.includes(this.delimiters.subcomponent)) return c;
    return c.split(this.delimiters.subcomponent)[sub - 1] ?? '';
  }

  /** All subcomponents of a component, unescaped. */
  subs(repText: string, comp = 1): string[] {
    return this.rawComp(repText, comp)
      .split(this.delimiters.subcomponent)
      .map((s) => (s === '""' ? '' : unescapeHl7(s, this.delimiters)));
  }

  /** Leaf value as a plain string; '' when absent. `""` is returned as-is (use `tri`). */
  get(seg: Segment | undefined, p: Path): string {
    if (!seg) return '';
    const reps = this.reps(seg, p.field);
    const r = reps[p.rep ?? 0];
    if (r === undefined) return '';
    if (seg.name === 'MSH' && p.field <= 2) return r;
    const raw = this.rawLeaf(r, p.comp ?? 1, p.sub ?? 1);
    return raw === '""' ? raw : unescapeHl7(raw, this.delimiters);
  }

  /** Leaf value three-state: undefined not sent, CLEARED for `""`, else the text. */
  tri(seg: Segment | undefined, p: Path): Tri<string> {
    const v = this.get(seg, p);
    if (v === '') return undefined;
    if (v === '""') return CLEARED;
    return v;
  }

  /** True when the whole field is the null value `""` (delete the stored value). */
  fieldCleared(seg: Segment | undefined, field: number): boolean {
    return seg !== undefined && seg.raw(field) === '""';
  }
}

/** "PID-3[2].1" style position for errors and notes (repetition 1-based for people). */
export function position(seg: string, field: number, rep?: number, comp?: number): string {
  let s = `${seg}-${field}`;
  if (rep !== undefined && rep > 0) s += `[${rep + 1}]`;
  if (comp !== undefined) s += `.${comp}`;
  return s;
}
