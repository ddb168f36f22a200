import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, type Stats } from 'node:fs';
import NodeModule from 'node:module';
import { homedir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { Script } from 'node:vm';
import { tempPathFor, writeNewSync } from './safe-fs';

/**
 * A V8 code cache for meshd's modules and its dependencies (docs/performance.md §2).
 *
 * Node.js 20 compiles every module from source at each start: ~65 ms of an idle `meshd run
 * --once`. Node.js 22's module.enableCompileCache() keeps V8's compiled code between runs; this
 * is the same for Node.js 20. When the process exits, V8's code for each module (including the
 * functions that ran) is saved; the next start hands it back to V8, which refuses data from
 * another V8 version or other V8 flags and then compiles as usual.
 *
 * The cache is code, so it is trusted exactly as far as meshd's own files:
 * - it lives in systemd's CacheDirectory= ($CACHE_DIRECTORY) or else ~/.cache/meshd;
 * - the folder and the file must belong to this user and be writable by nobody else, and the
 *   file is opened without following a link;
 * - an entry is used only for the module file it was made from, with the same SHA-256 of its
 *   source (V8 itself compares only the source's length), so an upgrade never runs old code.
 * Anything amiss and a module is compiled from source; the cache never stops meshd.
 */

/** What a run did with the cache; `saved` is set when the process exits. */
export interface CodeCacheReport {
  file?: string;
  /** Modules whose cached code V8 accepted. */
  used: number;
  /** Modules compiled from source (no entry, another source, or V8 refused it). */
  compiled: number;
  saved: boolean;
}

/** An entry's header: module path, SHA-256 of its source, length of V8's data. */
type Entry = [path: string, sha256: string, bytes: number];

const MAGIC = 'meshd-code-cache-1\n';
/** Larger than any real cache (~1–3 MB); a bigger file is not read. */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

interface ModuleInternals {
  prototype: { _compile(this: LoadedModule, content: string, filename: string): unknown };
  _resolveFilename(request: string, parent: LoadedModule, isMain: boolean, options?: unknown): string;
  _resolveLookupPaths(request: string, parent: LoadedModule): string[] | null;
  _extensions: unknown;
  _cache: unknown;
  wrap(source: string): string;
}
interface LoadedModule {
  exports: unknown;
  require(id: string): unknown;
}

/** The folder the cache lives in, or undefined when there is none to use. */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const systemd = env.CACHE_DIRECTORY?.split(':')[0];
  if (systemd) return systemd;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'meshd');
  const home = env.HOME || homedir();
  return home ? join(home, '.cache', 'meshd') : undefined;
}

/** This user's, and nobody else may write it. */
function isOwnAndPrivate(st: Stats): boolean {
  return st.uid === process.geteuid?.() && (st.mode & 0o022) === 0;
}

/**
 * Installs the cache for modules under `root` (meshd's package folder). Call before loading
 * anything else. With any Node.js option (a debugger, a profiler, a loader) it does nothing:
 * modules then load exactly as Node.js loads them.
 */
export function useCodeCache(root: string, dir = codeCacheDir()): CodeCacheReport {
  const report: CodeCacheReport = { used: 0, compiled: 0, saved: false };
  if (!dir || process.execArgv.length > 0 || process.env.NODE_OPTIONS || typeof process.geteuid !== 'function') return report;
  const file = join(dir, `modules-${process.version}-${process.arch}.bin`);
  report.file = file;
  const cached = readCache(dir, file);
  const scripts = new Map<string, { sha256: string; script: Script }>();
  const Module = NodeModule as unknown as ModuleInternals;
  const compile = Module.prototype._compile;
  const under = root.endsWith(sep) ? root : root + sep;

  Module.prototype._compile = function (content: string, filename: string) {
    // import() in a script made from cached data finds no loader on Node.js 20: such modules,
    // few and none on meshd's start-up path, are compiled as Node.js compiles them.
    if (!filename.startsWith(under) || !filename.endsWith('.js') || content.startsWith('#!') || content.includes('import(')) return compile.call(this, content, filename);
    const sha256 = createHash('sha256').update(content).digest('base64');
    const hit = cached.get(filename);
    const cachedData = hit && hit.sha256 === sha256 ? hit.data : undefined;
    const script = new Script(Module.wrap(content), { filename, cachedData });
    if (cachedData && !script.cachedDataRejected) report.used++;
    else report.compiled++;
    scripts.set(filename, { sha256, script });
    return (script.runInThisContext() as ModuleWrapper).call(this.exports, this.exports, requireFor(Module, this), this, filename, dirname(filename));
  };

  process.once('exit', () => {
    if (report.compiled === 0) return;
    try {
      report.saved = saveCache(dir, file, scripts, cached);
    } catch {
      // A cache that cannot be written is only a slower next start.
    }
  });
  return report;
}

type ModuleWrapper = (this: unknown, exports: unknown, require: NodeJS.Require, module: LoadedModule, filename: string, dirname: string) => unknown;

/** The `require` Node.js gives a module (lib/internal/modules/helpers.js, makeRequireFunction). */
function requireFor(Module: ModuleInternals, mod: LoadedModule): NodeJS.Require {
  const require = ((id: string) => mod.require(id)) as NodeJS.Require;
  const resolve = ((request: string, options?: unknown) => Module._resolveFilename(request, mod, false, options)) as NodeJS.RequireResolve;
  resolve.paths = (request: string) => Module._resolveLookupPaths(request, mod);
  require.resolve = resolve;
  require.main = process.mainModule;
  require.extensions = Module._extensions as NodeJS.Require['extensions'];
  require.cache = Module._cache as NodeJS.Require['cache'];
  return require;
}

/** The entries of a trusted cache file; an empty map for anything else. */
function readCache(dir: string, file: string): Map<string, { sha256: string; data: Buffer }> {
  const entries = new Map<string, { sha256: string; data: Buffer }>();
  let fd: number | undefined;
  try {
    const folder = lstatSync(dir);
    if (!folder.isDirectory() || !isOwnAndPrivate(folder)) return entries;
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (!st.isFile() || !isOwnAndPrivate(st) || st.size > MAX_FILE_BYTES) return entries;
    const bytes = Buffer.allocUnsafe(st.size);
    let got = 0;
    while (got < bytes.length) {
      const n = readSync(fd, bytes, got, bytes.length - got, got);
      if (n === 0) return entries;
      got += n;
    }
    return parseCache(bytes);
  } catch {
    return entries;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** MAGIC, a JSON line of entries, then each entry's data in that order. Malformed: nothing. */
export function parseCache(bytes: Buffer): Map<string, { sha256: string; data: Buffer }> {
  const entries = new Map<string, { sha256: string; data: Buffer }>();
  if (bytes.toString('latin1', 0, MAGIC.length) !== MAGIC) return entries;
  const end = bytes.indexOf(10, MAGIC.length);
  if (end < 0) return entries;
  let index: Entry[];
  try {
    index = JSON.parse(bytes.toString('utf8', MAGIC.length, end)) as Entry[];
  } catch {
    return entries;
  }
  if (!Array.isArray(index)) return entries;
  let at = end + 1;
  for (const entry of index) {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'string' || !Number.isSafeInteger(entry[2]) || entry[2] < 0) return new Map();
    if (at + entry[2] > bytes.length) return new Map();
    entries.set(entry[0], { sha256: entry[1], data: bytes.subarray(at, at + entry[2]) });
    at += entry[2];
  }
  return at === bytes.length ? entries : new Map();
}

/**
 * Writes this run's modules (with the code of every function that ran) and keeps the entries of
 * modules this run did not load while the file stays under half of MAX_FILE_BYTES (entries for
 * files long gone do not pile up for ever); written under a fresh name and renamed into place.
 */
function saveCache(dir: string, file: string, scripts: Map<string, { sha256: string; script: Script }>, earlier: Map<string, { sha256: string; data: Buffer }>): boolean {
  const index: Entry[] = [];
  const data: Buffer[] = [];
  for (const [path, { sha256, script }] of scripts) {
    const code = script.createCachedData();
    index.push([path, sha256, code.length]);
    data.push(code);
  }
  let bytes = data.reduce((n, code) => n + code.length, 0);
  for (const [path, { sha256, data: code }] of earlier) {
    if (scripts.has(path) || bytes + code.length > MAX_FILE_BYTES / 2) continue;
    index.push([path, sha256, code.length]);
    data.push(code);
    bytes += code.length;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || !isOwnAndPrivate(st)) return false;
  const temp = tempPathFor(file);
  try {
    writeNewSync(temp, Buffer.concat([Buffer.from(`${MAGIC}${JSON.stringify(index)}\n`), ...data]), 0o600);
    renameSync(temp, file);
  } catch (err) {
    // A full disk must not leave a half-written file behind at every exit.
    rmSync(temp, { force: true });
    throw err;
  }
  return true;
}
