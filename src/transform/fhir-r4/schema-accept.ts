/**
 * A yes/no twin of the structural validator of schema.ts, built from the same prepared FHIR R4
 * schema definitions and the same keywords. Nearly every document meshd reads or writes is
 * valid, and for those Ajv (asked for all errors) spends most of its time on paths and context
 * objects it never reports. This check stops at the first doubt and builds nothing; it says
 * "valid" only where Ajv would report no error, so schema.ts runs Ajv for the issues whenever
 * it says no. Where it is unsure it says no: it is never looser than Ajv.
 *
 * Each object type of the schema becomes one generated function when first met (a document
 * touches few of the 700): its properties checked by a switch on the name, primitive types and
 * patterns inline, other object types called through a cell.
 */
import { containedIdsOf, INVARIANTS, twinOf, type Invariant, type InvariantContext } from './invariants';

type Json = Record<string, any>;
type Check = (v: unknown) => boolean;

/** An object type's check, generated on first call; callers hold the cell, so recursion is fine. */
interface Cell {
  check: Check;
}

/** What generated code reaches: cells, patterns, value sets, rules and the ref-1 state. */
interface Env {
  cells: Cell[];
  patterns: RegExp[];
  sets: Array<ReadonlySet<string>>;
  rules: Check[];
  invariants: Invariant[];
  state: State;
}

/**
 * ref-1 looks up the ids contained in the object that holds the reference: as invariants.ts
 * finds it from a path, the innermost object on the way down with a resourceType text (a
 * resource, or an ExampleScenario instance) that is not itself an item of `contained`.
 */
interface State {
  holder: Json | undefined;
  /** Set just before a `contained` item is checked: that resource does not become the holder. */
  skipHolder: boolean;
  context: InvariantContext;
}

/** Schema keywords that only annotate. */
const ANNOTATIONS = new Set(['description', '$comment', 'title']);

const INVARIANT_BY_KEY = new Map(INVARIANTS.map((i) => [i.key, i]));

/** As Ajv tests JSON types (a number must also be finite here: stricter than Ajv with strict off). */
const TYPE_TEST: Readonly<Record<string, (x: string) => string>> = {
  array: (x) => `Array.isArray(${x})`,
  string: (x) => `typeof ${x} === "string"`,
  boolean: (x) => `typeof ${x} === "boolean"`,
  number: (x) => `(typeof ${x} === "number" && Number.isFinite(${x}))`,
  null: (x) => `${x} === null`,
};

/**
 * The acceptor for `definitions` (as schema.ts prepared them for Ajv) at definition `root`.
 * Throws while generating a check for a keyword it does not know, and may throw on strange
 * input: callers treat a throw as "no".
 */
export function compileAcceptor(definitions: Record<string, Json>, known: ReadonlySet<string>, root: string): Check {
  const state: State = {
    holder: undefined,
    skipHolder: false,
    context: {
      containedIds: () => containedIdsOf(state.holder),
    },
  };
  const env: Env = { cells: [], patterns: [], sets: [], rules: [], invariants: [], state };
  const cellIndex = new Map<Json, number>();
  const typeNames = new Map(Object.entries(definitions).map(([name, def]) => [def, name]));
  const patternIndex = new Map<string, number>();
  let names = 0;
  const fresh = (prefix: string) => `${prefix}${names++}`;

  const definitionOf = (ref: unknown): Json => {
    const name = typeof ref === 'string' && ref.startsWith('#/definitions/') ? ref.slice(14) : undefined;
    const def = name === undefined ? undefined : definitions[name];
    if (!def) throw new Error(`schema reference ${String(ref)} is not handled`);
    return def;
  };

  /** The index of the cell for an object schema; its function is generated on first call. */
  const cellOf = (schema: Json): number => {
    let i = cellIndex.get(schema);
    if (i === undefined) {
      i = env.cells.length;
      const cell: Cell = {
        check: (v) => {
          cell.check = objectFunction(schema);
          return cell.check(v);
        },
      };
      env.cells.push(cell);
      cellIndex.set(schema, i);
    }
    return i;
  };

  const resourceCells = new Map<string, Cell>();
  const resourceCheck: Check = (v) => {
    const type: unknown = (v as Json).resourceType;
    let cell = typeof type === 'string' ? resourceCells.get(type) : undefined;
    if (!cell) {
      if (typeof type !== 'string' || !known.has(type)) return false;
      cell = env.cells[cellOf(definitionOf(`#/definitions/${type}`))];
      resourceCells.set(type, cell);
    }
    return cell.check(v);
  };

  const rule = (check: Check): string => `R[${env.rules.push(check) - 1}]`;

  /** Statements that `return false` unless value `x` meets `schema`. */
  const statements = (schema: Json, x: string): string => {
    if (schema.type === 'object') return `if (!C[${cellOf(schema)}].check(${x})) return false;\n`;
    let out = '';
    for (const [keyword, value] of Object.entries(schema)) {
      if (ANNOTATIONS.has(keyword)) continue;
      switch (keyword) {
        case '$ref':
          out += statements(definitionOf(value), x);
          break;
        case 'type': {
          const test = TYPE_TEST[String(value)];
          if (!test) throw new Error(`schema type ${JSON.stringify(value)} is not handled`);
          out += `if (!(${test(x)})) return false;\n`;
          break;
        }
        case 'pattern': {
          let i = patternIndex.get(String(value));
          if (i === undefined) {
            i = env.patterns.push(new RegExp(String(value))) - 1;
            patternIndex.set(String(value), i);
          }
          out += `if (typeof ${x} === "string" && !P[${i}].test(${x})) return false;\n`;
          break;
        }
        case 'enum':
          if (!(value as unknown[]).every((e) => typeof e === 'string')) throw new Error('enum of non-strings is not handled');
          out += `if (!S[${env.sets.push(new Set(value as string[])) - 1}].has(${x})) return false;\n`;
          break;
        case 'const':
          if (typeof value !== 'string') throw new Error('const of a non-string is not handled');
          out += `if (${x} !== ${JSON.stringify(value)}) return false;\n`;
          break;
        case 'items': {
          const i = fresh('i');
          const item = fresh('x');
          out += `if (Array.isArray(${x})) for (let ${i} = 0; ${i} < ${x}.length; ${i}++) { const ${item} = ${x}[${i}];\n${statements(value as Json, item)}}\n`;
          break;
        }
        case 'if': {
          // The only conditional the prepared schema has: null as a placeholder in primitive arrays.
          if (Object.keys(value as Json).join() !== 'type' || (value as Json).type !== 'null' || schema.then !== undefined) throw new Error('if other than {type: null} is not handled');
          if (schema.else !== undefined) out += `if (${x} !== null) {\n${statements(schema.else as Json, x)}}\n`;
          break;
        }
        case 'else':
          if (schema.if === undefined) throw new Error('else without if is not handled');
          break;
        default:
          throw new Error(`schema keyword ${keyword} outside an object type is not handled`);
      }
    }
    return out;
  };

  /** DomainResource.contained: each item is a contained resource (not a holder for ref-1). */
  const containedStatements = (schema: Json, x: string): string => {
    if (Object.keys(schema).some((k) => !ANNOTATIONS.has(k) && k !== 'type' && k !== 'items') || schema.type !== 'array') throw new Error('contained of another shape is not handled');
    const i = fresh('i');
    return `if (!Array.isArray(${x})) return false;\nfor (let ${i} = 0; ${i} < ${x}.length; ${i}++) { state.skipHolder = true;\n${statements(schema.items as Json, `${x}[${i}]`)}}\n`;
  };

  const objectFunction = (schema: Json): Check => {
    let body = 'if (v === null || typeof v !== "object" || Array.isArray(v)) return false;\n';
    const props = schema.properties as Record<string, Json> | undefined;
    if (props) {
      if (schema.additionalProperties !== false) throw new Error('open objects are not handled');
      body += 'for (const k in v) {\nconst x = v[k];\nswitch (k) {\n';
      for (const [name, sub] of Object.entries(props)) {
        body += `case ${JSON.stringify(name)}: {\n${name === 'contained' ? containedStatements(sub, 'x') : statements(sub, 'x')}break;\n}\n`;
      }
      body += 'default: return false;\n}\n}\n';
    } else if (schema.additionalProperties !== undefined) {
      throw new Error('additionalProperties without properties is not handled');
    }
    for (const [keyword, value] of Object.entries(schema)) {
      if (ANNOTATIONS.has(keyword)) continue;
      switch (keyword) {
        case 'type':
        case 'properties':
        case 'additionalProperties':
          break;
        case 'required':
          for (const n of value as string[]) body += `if (v[${JSON.stringify(n)}] === undefined) return false;\n`;
          break;
        case 'fhirResource':
          body += `if (!${rule(resourceCheck)}(v)) return false;\n`;
          break;
        case 'fhirRequired':
          for (const group of value as string[][]) {
            body += `if (${group.flatMap((n) => [n, twinOf(n)]).map((n) => `v[${JSON.stringify(n)}] === undefined`).join(' && ')}) return false;\n`;
          }
          break;
        case 'fhirChoice':
          body += `if (!${rule(choiceRule(value as Record<string, string>))}(v)) return false;\n`;
          break;
        case 'fhirInvariants':
          for (const key of value as string[]) body += `if (!I[${env.invariants.push(INVARIANT_BY_KEY.get(key)!) - 1}].holds(v, state.context)) return false;\n`;
          break;
        default:
          throw new Error(`schema keyword ${keyword} in an object type is not handled`);
      }
    }
    body += 'return true;';
    // Generated from the schema only (names and patterns quoted by JSON.stringify), as Ajv does.
    // Named after the definition, so a CPU profile tells the types apart.
    const name = `check_${(typeNames.get(schema) ?? 'inline').replace(/\W/g, '_')}`;
    // A type with a resourceType element holds what is below it (for ref-1), unless contained.
    const holds = props !== undefined && Object.hasOwn(props, 'resourceType');
    const code = holds
      ? `function inner(v) {\n${body}\n}\nreturn function ${name}(v) {\nconst contained = state.skipHolder;\nstate.skipHolder = false;\n` +
        'if (contained || v === null || typeof v !== "object" || typeof v.resourceType !== "string") return inner(v);\n' +
        'const outer = state.holder;\nstate.holder = v;\nconst ok = inner(v);\nstate.holder = outer;\nreturn ok;\n};'
      : `return function ${name}(v) {\n${body}\n};`;
    return new Function('C', 'P', 'S', 'R', 'I', 'state', code)(env.cells, env.patterns, env.sets, env.rules, env.invariants, state) as Check;
  };

  const top = env.cells[cellOf(definitionOf(`#/definitions/${root}`))];
  return (v) => {
    state.holder = v as Json;
    state.skipHolder = false;
    return top.check(v);
  };
}

/** fhirChoice: one type per choice element (`_` twins count as their element). */
function choiceRule(names: Record<string, string>): Check {
  const baseOf = new Map(Object.entries(names));
  return (v) => {
    let chosen: Map<string, string> | undefined;
    for (const k in v as Json) {
      const base = baseOf.get(k);
      if (base === undefined) continue;
      const typed = k.startsWith('_') ? k.slice(1) : k;
      chosen ??= new Map();
      const before = chosen.get(base);
      if (before === undefined) chosen.set(base, typed);
      else if (before !== typed) return false;
    }
    return true;
  };
}
