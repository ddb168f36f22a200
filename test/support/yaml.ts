import { dump, load } from 'js-yaml';

/** A config's YAML as a loosely typed object, for tests and benchmarks to edit and write back. */
export const parse = (text: string): any => load(text);

export const stringify = (value: unknown): string => dump(value);
