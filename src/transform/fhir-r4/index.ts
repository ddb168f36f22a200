/** The `fhir-r4` format: FHIR R4 JSON with UK Core identifiers, extensions and profiles. */
import { formatModule } from '../format';
import { readFhirR4 } from './read';
import { fhirR4Writer } from './write';

export { readFhirR4 } from './read';
export { writeFhirR4 } from './write';
export { structuralIssues, codeIssues, findStu3 } from './validate';

export const format = formatModule({
  name: 'fhir-r4',
  description: 'FHIR R4 JSON, UK Core (message Bundles as BaRS sends them, or bare resources); STU3 refused',
  // A FHIR document is parsed whole (JSON.parse): one part; its messages are written in groups.
  readParts: (input, ctx) => [readFhirR4(input, ctx)],
  writer: fhirR4Writer,
});
