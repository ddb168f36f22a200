/** The `fhir-r4` format: FHIR R4 JSON with UK Core identifiers, extensions and profiles. */
import { formatModule } from '../format';
import { readFhirR4Parts } from './read';
import { fhirR4Writer } from './write';

export { readFhirR4 } from './read';
export { writeFhirR4 } from './write';
export { structuralIssues, codeIssues, findStu3 } from './validate';

export const format = formatModule({
  name: 'fhir-r4',
  description: 'FHIR R4 JSON, UK Core (message Bundles as BaRS sends them, or bare resources); STU3 refused',
  // A FHIR document is parsed whole (JSON.parse), then read and let go a message at a time.
  readParts: readFhirR4Parts,
  writer: fhirR4Writer,
});
