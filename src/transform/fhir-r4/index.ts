/** The `fhir-r4` format: FHIR R4 JSON with UK Core identifiers, extensions and profiles. */
import type { FormatModule } from '../format';
import { readFhirR4 } from './read';
import { writeFhirR4 } from './write';

export { readFhirR4 } from './read';
export { writeFhirR4 } from './write';
export { structuralIssues, codeIssues, findStu3 } from './validate';

export const format: FormatModule = {
  name: 'fhir-r4',
  description: 'FHIR R4 JSON, UK Core (message Bundles as BaRS sends them, or bare resources); STU3 refused',
  read: readFhirR4,
  write: writeFhirR4,
};
