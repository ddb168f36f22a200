import { lstatSync, mkdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';

/**
 * Node.js 22.1 and later can keep V8's compiled code for each module on disk
 * (`module.enableCompileCache`), so a command starts without compiling meshd and its
 * dependencies again: an idle `meshd run --once` ~30 ms sooner (docs/performance.md §2).
 * Node.js 20 has no such cache, and there this does nothing.
 *
 * The cache holds code that Node will run, so it is used only from a directory of this user's
 * that no one else can write: systemd's `CacheDirectory=` (both units set it), else
 * `$XDG_CACHE_HOME/meshd`, else `~/.cache/meshd`. Node's own `NODE_DISABLE_COMPILE_CACHE=1`
 * turns it off. A cache that cannot be made is left out: it only ever saves time.
 */
type Enable = (dir: string) => { status: number };

const nodeEnable = (): Enable | null => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a method Node.js 20's types do not declare
  const mod = require('node:module') as { enableCompileCache?: Enable };
  return mod.enableCompileCache ?? null;
};

/** Turns the cache on where Node has one; returns the directory in use, else undefined. */
export function enableCompileCache(env: NodeJS.ProcessEnv = process.env, enable: Enable | null = nodeEnable()): string | undefined {
  if (!enable) return undefined;
  const where = compileCacheDir(env);
  if (!where || !privateDir(where.base, where.dir)) return undefined;
  const { status } = enable(where.dir);
  // 1 ENABLED; 2 ALREADY_ENABLED (NODE_COMPILE_CACHE chose a directory at start); 3 DISABLED; 0 FAILED.
  return status === 1 ? where.dir : undefined;
}

/** The cache directory, and the existing directory it goes under (which must be this user's). */
export function compileCacheDir(env: NodeJS.ProcessEnv): { base: string; dir: string } | undefined {
  const under = (base: string, ...parts: string[]) => ({ base: resolve(base), dir: resolve(base, ...parts) });
  const systemd = env.CACHE_DIRECTORY?.split(':')[0];
  if (systemd && isAbsolute(systemd)) return under(systemd, 'compile');
  // The XDG base directory spec: a relative $XDG_CACHE_HOME is invalid and is ignored.
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && isAbsolute(xdg)) return under(xdg, 'meshd', 'compile');
  return env.HOME && isAbsolute(env.HOME) ? under(env.HOME, '.cache', 'meshd', 'compile') : undefined;
}

/**
 * Makes `dir` (0700) under `base` and says whether each folder from `base` down to it is a real
 * directory (not a link) of this user's that only it can write. `base` must be this user's
 * already: `sudo meshd …` keeping the caller's HOME leaves nothing of root's in that home.
 */
function privateDir(base: string, dir: string): boolean {
  const uid = process.getuid?.();
  try {
    if (statSync(base).uid !== uid) return false;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (let path = dir; path !== base; path = dirname(path)) {
      const st = lstatSync(path);
      if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) return false;
    }
    return true;
  } catch {
    return false;
  }
}
