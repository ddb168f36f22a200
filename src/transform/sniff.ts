/**
 * Which message format a payload may be, from its first bytes alone: cheap enough for every file
 * that passes through, so the pipelines load the format modules only for payloads that can be
 * read (docs/ledger.md, Business semantics). FHIR is only a candidate here: the caller parses.
 */
export type SniffedFormat = 'hl7v2' | 'fhir-r4';

/** The offset of the first meaningful byte: after a UTF-8 BOM, whitespace and the MLLP start byte (0x0B). */
export function contentStart(input: Buffer): number {
  let at = input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? 3 : 0;
  while (at < input.length && (input[at] === 0x20 || (input[at] >= 0x09 && input[at] <= 0x0d))) at++;
  return at;
}

export function sniffHead(head: Buffer): SniffedFormat | undefined {
  const at = contentStart(head);
  const start = head.subarray(at, at + 4).toString('latin1');
  if (/^(MSH|FHS|BHS)\|/.test(start)) return 'hl7v2';
  if (start.startsWith('{') || start.startsWith('<')) return 'fhir-r4';
  return undefined;
}
