import type { FormatModule } from '../format';
import { readHl7v2 } from './read';
import { writeHl7v2 } from './write';

/** HL7 v2 ER7: reads 2.3–2.8 ADT and SIU (batches, local UK variants); writes v2.4 NHS style. */
export const format: FormatModule = {
  name: 'hl7v2',
  description: 'HL7 v2 ER7 (ADT A04/A08/A28/A29/A31/A40, SIU S12–S17/S26); reads 2.3–2.8, writes 2.4 HL7 UK style',
  read: readHl7v2,
  write: writeHl7v2,
};
