import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { ConfigProblem } from './problems';
import { SIZE_FORMAT } from './size';

/**
 * The shape of the config file lives in config/meshd.schema.json, which editors use too. This
 * runs it with Ajv and words each error as `meshd config check` always has: the dotted key, then
 * what is wrong. Compiled once, on first use, so commands that never read a config stay fast.
 */

export const SCHEMA_FILE = resolve(__dirname, '..', '..', '..', 'config', 'meshd.schema.json');

type Node = Record<string, unknown>;
let compiled: { validate: ValidateFunction; pointers: Map<unknown, string> } | undefined;

function compile(): NonNullable<typeof compiled> {
  if (compiled) return compiled;
  const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as Node;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Ajv = (require('ajv') as typeof import('ajv')).default;
  // A unit test checks the schema against the meta-schema. Skipping that here, Ajv's messages
  // (worded below instead), inlining and optimising cuts the compile time every command pays
  // from about 230 ms to about 60 ms.
  const ajv = new Ajv({ allErrors: true, verbose: true, messages: false, allowUnionTypes: true, validateSchema: false, inlineRefs: false, code: { optimize: false } });
  compiled = { validate: ajv.compile(schema), pointers: pointersOf(schema) };
  return compiled;
}

/** Every object in the schema, by its JSON pointer: errors name the schema node they came from. */
function pointersOf(node: unknown, at = '#', out = new Map<unknown, string>()): Map<unknown, string> {
  if (node && typeof node === 'object') {
    out.set(node, at);
    for (const [k, v] of Object.entries(node)) pointersOf(v, `${at}/${k}`, out);
  }
  return out;
}

const SECRET_FORMS = '{ env: NAME }, { file: PATH } or { credential: NAME }';
const MAILBOX_ID = 'must be a mailbox id (letters, digits, - and _';

/**
 * Wording that the schema's keywords alone cannot give, by schema node (or `node/keyword`);
 * the longest matching prefix wins.
 */
const MESSAGES: Record<string, string> = {
  '#/type': 'the file must contain a YAML mapping (environment:, sharedKey:, mailboxes: ...)',
  '#/properties/mailboxes': 'must be a list with at least one mailbox',
  '#/properties/mailboxes/required': 'must be a list with at least one mailbox',
  '#/properties/proxy/type': 'must be a non-empty string',
  '#/definitions/size': SIZE_FORMAT,
  '#/definitions/secret/type': `must be ${SECRET_FORMS}`,
  '#/definitions/secret/required': `is required (a secret: ${SECRET_FORMS})`,
  '#/definitions/secret/then': 'must have exactly one of env, file, credential',
  '#/definitions/privateKey': 'must be a file path or { credential: NAME }',
  '#/definitions/mailboxId/pattern': `${MAILBOX_ID}; no spaces)`,
  '#/definitions/peerMailbox/pattern': `${MAILBOX_ID})`,
  '#/definitions/mailbox/type': 'must be a mapping with id, password, folder',
  '#/definitions/route/properties/direction/required': 'must be one of in, out',
  '#/definitions/route/then/properties': 'applies only to direction: out',
  '#/definitions/route/else/properties/from': 'applies only to direction: in',
};

function override(pointer: string): string | undefined {
  for (let p = pointer; p; p = p.slice(0, Math.max(0, p.lastIndexOf('/')))) {
    if (MESSAGES[p] !== undefined) return MESSAGES[p];
  }
  return undefined;
}

/** What a schema node asks for, in words, from its standard keywords. */
function expected(node: Node): string {
  if (Array.isArray(node.enum)) return `must be one of ${node.enum.join(', ')}`;
  if (node.type === 'integer') return `must be an integer from ${String(node.minimum)} to ${String(node.maximum)}`;
  if (node.type === 'boolean') return 'must be true or false';
  if (node.type === 'object') return 'must be a mapping';
  if (node.type === 'array') return 'must be a list';
  return 'must be a non-empty string';
}

/** `/mailboxes/0/routes/1` as `mailboxes[0].routes[1]`, reading the document to tell indexes from keys. */
function dottedKey(doc: unknown, pointer: string): string {
  let key = '';
  let at = doc;
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    key = Array.isArray(at) ? `${key}[${part}]` : key ? `${key}.${part}` : part;
    at = at && typeof at === 'object' ? (at as Node)[part] : undefined;
  }
  return key;
}

function problemFor(e: ErrorObject, doc: unknown, pointers: Map<unknown, string>): (ConfigProblem & { unknownKey?: true }) | undefined {
  // `if` only says which branch failed; a oneOf branch's own errors are summed up by the oneOf error.
  if (e.keyword === 'if' || /\/oneOf\/\d+\//.test(e.schemaPath)) return undefined;
  const parent = e.parentSchema as Node;
  const node = pointers.get(parent) ?? '#';
  const at = dottedKey(doc, e.instancePath);
  const join = (child: string) => (at ? `${at}.${child}` : child);
  if (e.keyword === 'additionalProperties') {
    const fixed = override(`${node}/additionalProperties`);
    if (fixed) return { key: at, message: fixed };
    const known = Object.keys(parent.properties as Node).join(', ');
    return { key: join(String(e.params.additionalProperty)), message: `unknown key (expected one of ${known})`, unknownKey: true };
  }
  if (e.keyword === 'required') {
    // A wrong mapping as a whole (e.g. a private key that is neither a path nor { credential }) ...
    const whole = override(`${node}/required`);
    if (whole) return { key: at, message: whole };
    // ... or one missing key, worded by what that key is.
    const name = String(e.params.missingProperty);
    const prop = ((parent.properties as Node | undefined)?.[name] ?? {}) as Node;
    const target = typeof prop.$ref === 'string' ? prop.$ref : `${node}/properties/${name}`;
    const message = MESSAGES[`${target}/required`] ?? (Array.isArray(prop.enum) ? `is required (one of ${prop.enum.join(', ')})` : 'is required');
    return { key: join(name), message };
  }
  const blank = e.keyword === 'pattern' && typeof e.data === 'string' && !e.data.trim();
  return { key: at, message: blank ? 'must be a non-empty string' : (override(`${node}/${e.keyword}`) ?? expected(parent)) };
}

/** Keys that hold secrets or MESH client keys: left unchecked for commands that never contact MESH. */
const SECRET_KEY = /^(sharedKey|proxy\.password|tls\.key|mailboxes\[\d+\]\.(password|tls\.key))(\.|$)/;

/**
 * The schema's verdict on the parsed YAML: every problem, in today's wording, plus the keys whose
 * values are wrong (an unknown key does not make its parent wrong).
 */
export function schemaProblems(doc: unknown, opts: { skipSecrets?: boolean } = {}): { problems: ConfigProblem[]; invalid: string[] } {
  const { validate, pointers } = compile();
  if (validate(doc)) return { problems: [], invalid: [] };
  const problems: ConfigProblem[] = [];
  const invalid: string[] = [];
  for (const e of validate.errors ?? []) {
    const p = problemFor(e, doc, pointers);
    if (!p || (opts.skipSecrets && SECRET_KEY.test(p.key))) continue;
    if (problems.some((q) => q.key === p.key && q.message === p.message)) continue;
    problems.push({ key: p.key, message: p.message });
    if (!p.unknownKey) invalid.push(p.key);
  }
  return { problems, invalid };
}
