import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The package version, read once (dist/src → package root). */
export const version: string = (() => {
  try {
    return JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')).version as string;
  } catch {
    return '0.0.0';
  }
})();
