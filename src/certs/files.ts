import { lstatSync, mkdirSync } from 'node:fs';
import { writeNewSync } from '../safe-fs';
import { CertError } from './errors';

/** Key material is never overwritten: refuse if any target exists, then make the folder (0700). */
export function prepareNewFiles(dir: string, paths: string[], what: string): void {
  for (const path of paths) {
    if (takenName(path)) {
      throw new CertError('CERT_KEY_EXISTS', `${path} already exists; meshd never overwrites ${what}`, 'move the old files away first, or choose another folder with --out', 'usage');
    }
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** Creates a file that must not exist yet (no link followed), with `mode` from the first byte. */
export function writeNew(path: string, content: string, mode: number): void {
  writeNewSync(path, content, mode);
}

/** Anything at `path`, a dangling link included. */
function takenName(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
