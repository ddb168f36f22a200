import { MeshdError } from '../errors';
import type { FormatModule } from './format';
import { format as csv } from './csv';
import { format as fhirR4 } from './fhir-r4';
import { format as hl7v2 } from './hl7v2';
import { format as notifyCsv } from './notify-csv';

/** Every format meshd converts between. Adding a format = one module + one line here. */
export const formats: Readonly<Record<string, FormatModule>> = {
  [hl7v2.name]: hl7v2,
  [fhirR4.name]: fhirR4,
  [csv.name]: csv,
  [notifyCsv.name]: notifyCsv,
};

export function formatNames(): string[] {
  return Object.keys(formats).sort();
}

/** The module for a format name; a MeshdError (kind 'input') naming the known formats otherwise. */
export function getFormat(name: string): FormatModule {
  const f = Object.prototype.hasOwnProperty.call(formats, name) ? formats[name] : undefined;
  if (!f) {
    throw new MeshdError('TRANSFORM_UNKNOWN_FORMAT', `unknown format "${name}"`, `use one of: ${formatNames().join(', ')} (meshd transform --list)`, 'input');
  }
  return f;
}
