import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { compileCacheDir, enableCompileCache } from '../../src/compile-cache';

// dist/test/unit → repository root.
const MESHD = join(__dirname, '..', '..', '..', 'bin', 'meshd.js');

describe('compile cache (src/compile-cache.ts)', () => {
  let home: string;
  let asked: string[];
  /** Stands in for Node.js 22's module.enableCompileCache, which Node.js 20 lacks, answering `status`. */
  const enable = (status: number) => (dir: string) => {
    asked.push(dir);
    return { status };
  };
  const cacheIn = (h: string) => join(h, '.cache', 'meshd', 'compile');

  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'meshd-cc-'));
    asked = [];
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  it("chooses systemd's CacheDirectory, then $XDG_CACHE_HOME/meshd, then ~/.cache/meshd, absolute paths only", () => {
    expect(compileCacheDir({ CACHE_DIRECTORY: '/var/cache/meshd:/var/cache/other', XDG_CACHE_HOME: '/x', HOME: '/h' })?.dir).to.equal('/var/cache/meshd/compile');
    expect(compileCacheDir({ CACHE_DIRECTORY: 'relative', XDG_CACHE_HOME: '/x', HOME: '/h' })?.dir).to.equal('/x/meshd/compile');
    expect(compileCacheDir({ XDG_CACHE_HOME: 'relative', HOME: '/h' })).to.deep.equal({ base: '/h', dir: '/h/.cache/meshd/compile' });
    expect(compileCacheDir({ HOME: '/h//' })).to.deep.equal({ base: '/h', dir: '/h/.cache/meshd/compile' });
    expect(compileCacheDir({ HOME: 'relative' })).to.equal(undefined);
    expect(compileCacheDir({})).to.equal(undefined);
  });

  it('makes the directory readable by this user alone and hands it to Node', () => {
    expect(enableCompileCache({ HOME: `${home}/` }, enable(1))).to.equal(cacheIn(home));
    expect(asked).to.deep.equal([cacheIn(home)]);
    expect(lstatSync(cacheIn(home)).mode & 0o777).to.equal(0o700);
  });

  it('reports no cache when Node says it is disabled, already set by NODE_COMPILE_CACHE, or failed', () => {
    for (const status of [0, 2, 3]) expect(enableCompileCache({ HOME: home }, enable(status))).to.equal(undefined);
    expect(asked).to.have.length(3);
  });

  it('does nothing on a Node.js without a compile cache', () => {
    expect(enableCompileCache({ HOME: home }, null)).to.equal(undefined);
    expect(readdirSync(home)).to.deep.equal([]);
  });

  it('refuses a cache directory that is a link or under one, or that others can write', () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'meshd-cc-target-'));
    try {
      mkdirSync(join(home, '.cache', 'meshd'), { recursive: true });
      symlinkSync(elsewhere, cacheIn(home));
      expect(enableCompileCache({ HOME: home }, enable(1))).to.equal(undefined);
      rmSync(cacheIn(home));
      // A link higher up, between the home and the cache.
      rmSync(join(home, '.cache', 'meshd'), { recursive: true });
      symlinkSync(elsewhere, join(home, '.cache', 'meshd'));
      expect(enableCompileCache({ HOME: home }, enable(1))).to.equal(undefined);
      rmSync(join(home, '.cache', 'meshd'));
      mkdirSync(join(home, '.cache', 'meshd'));
      mkdirSync(cacheIn(home));
      chmodSync(cacheIn(home), 0o777);
      expect(enableCompileCache({ HOME: home }, enable(1))).to.equal(undefined);
      expect(asked).to.deep.equal([]);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it("leaves nothing in a home that is not this user's (sudo keeping the caller's HOME)", () => {
    // As root, a home given to another user; otherwise a root-owned folder stands for one.
    const uid = process.getuid?.();
    const notMine = uid === 0 ? home : '/usr';
    if (uid === 0) chownSync(home, 65534, 65534);
    expect(enableCompileCache({ HOME: notMine }, enable(1))).to.equal(undefined);
    expect(asked).to.deep.equal([]);
    expect(existsSync(cacheIn(notMine))).to.equal(false);
  });

  it('is used by bin/meshd.js exactly when this Node.js has one', function () {
    this.timeout(20000);
    const env = { ...process.env, HOME: home, XDG_CACHE_HOME: '', CACHE_DIRECTORY: '', NODE_COMPILE_CACHE: '' };
    execFileSync(process.execPath, [MESHD, '--version'], { env, stdio: 'ignore' });
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- Node.js 20's types lack the method
    const nodeHasOne = typeof (require('node:module') as { enableCompileCache?: unknown }).enableCompileCache === 'function';
    expect(existsSync(cacheIn(home))).to.equal(nodeHasOne);
    if (nodeHasOne) expect(readdirSync(cacheIn(home)), 'a directory of cached code per Node.js version').to.have.length(1);
  });
});
