import { formatModule } from '../format';
import { readHl7v2Parts } from './read';
import { hl7v2Writer } from './write';

/** HL7 v2 ER7: reads 2.3–2.8 ADT and SIU (batches, local UK variants); writes v2.4 NHS style. */
export const format = formatModule({
  name: 'hl7v2',
  description: 'HL7 v2 ER7 (ADT A04/A08/A28/A29/A31/A40, SIU S12–S17/S26); reads 2.3–2.8, writes 2.4 HL7 UK style',
  readParts: readHl7v2Parts,
  writer: hl7v2Writer,
});
