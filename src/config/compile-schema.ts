import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import standaloneCode from 'ajv/dist/standalone';
import { writeNewSync } from '../safe-fs';
import { AJV_OPTIONS, SCHEMA_FILE } from './schema';

/**
 * Build step (`npm run build`): compiles config/meshd.schema.json into plain JavaScript beside
 * schema.js, so no command pays for loading Ajv and compiling the schema (about 200 ms) at run
 * time. The output is generated into dist/, never committed.
 */
const ajv = new Ajv({ ...AJV_OPTIONS, code: { source: true } });
const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')));
writeNewSync(join(__dirname, 'schema-validate.js'), standaloneCode(ajv, validate), 0o644);
