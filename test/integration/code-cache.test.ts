import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { codeCacheDir, parseCache, type CodeCacheReport } from '../../src/code-cache';
import { runMeshd } from '../support/cli';

const run = promisify(execFile);
const CODE_CACHE = resolve(__dirname, '../../src/code-cache.js');

/** A package folder (the cache's root), the cache folder, and a loader script outside both. */
function setup(): { base: string; root: string; cache: string; file: string } {
  const base = mkdtempSync(join(tmpdir(), 'meshd-code-cache-'));
  const root = join(base, 'pkg');
  const cache = join(base, 'cache');
  mkdirSync(root);
  mkdirSync(cache, { mode: 0o700 });
  writeFileSync(join(root, 'a.js'), "const b = require('./b');\nexports.say = () => 'AAAA' + b.say();\n");
  writeFileSync(join(root, 'b.js'), "exports.say = () => '-b';\nexports.self = () => [require.resolve('./a'), __filename, __dirname, typeof require.cache];\n");
  writeFileSync(join(root, 'c.js'), "exports.load = () => import('./b.js').then((m) => m.say());\n");
  writeFileSync(
    join(base, 'load.js'),
    `const report = require(${JSON.stringify(CODE_CACHE)}).useCodeCache(${JSON.stringify(root)});
const said = { a: require(${JSON.stringify(join(root, 'a.js'))}).say(), self: require(${JSON.stringify(join(root, 'b.js'))}).self() };
require(${JSON.stringify(join(root, 'c.js'))}).load().then((viaImport) => { said.viaImport = viaImport; });
process.on('exit', () => process.stdout.write(JSON.stringify({ report, said })));
`,
  );
  return { base, root, cache, file: join(cache, `modules-${process.version}-${process.arch}.bin`) };
}

interface Loaded {
  report: CodeCacheReport;
  said: { a: string; self: string[]; viaImport: string };
}

async function load(base: string, cache: string, nodeArgs: string[] = []): Promise<Loaded> {
  const { stdout } = await run(process.execPath, [...nodeArgs, join(base, 'load.js')], { env: { ...process.env, CACHE_DIRECTORY: cache, NODE_OPTIONS: '' } });
  return JSON.parse(stdout) as Loaded;
}

describe('code cache (src/code-cache.ts)', function () {
  this.timeout(60000);
  let t: ReturnType<typeof setup>;
  beforeEach(() => {
    t = setup();
  });
  afterEach(() => rmSync(t.base, { recursive: true, force: true }));

  it('saves V8 code for the modules under its root at exit and uses it the next time', async () => {
    const first = await load(t.base, t.cache);
    // c.js uses import(), which a script made from cached data cannot on Node.js 20: not cached.
    expect(first.report).to.include({ used: 0, compiled: 2, saved: true, file: t.file });
    expect(statSync(t.file).mode & 0o777).to.equal(0o600);
    expect([...parseCache(readFileSync(t.file)).keys()].sort()).to.deep.equal(['a.js', 'b.js'].map((f) => join(t.root, f)));

    const second = await load(t.base, t.cache);
    expect(second.report).to.include({ used: 2, compiled: 0, saved: false });
    // Modules load as Node.js loads them: require, require.resolve, __filename, import().
    expect(second.said).to.deep.equal(first.said);
    expect(second.said.a).to.equal('AAAA-b');
    expect(second.said.self).to.deep.equal([join(t.root, 'a.js'), join(t.root, 'b.js'), t.root, 'object']);
    expect(second.said.viaImport).to.equal('-b');
  });

  it('never runs old code for a changed module, even of the same length (V8 compares only lengths)', async () => {
    await load(t.base, t.cache);
    writeFileSync(join(t.root, 'a.js'), readFileSync(join(t.root, 'a.js'), 'utf8').replace('AAAA', 'BBBB'));
    const after = await load(t.base, t.cache);
    expect(after.said.a).to.equal('BBBB-b');
    expect(after.report).to.include({ used: 1, compiled: 1, saved: true });
    expect((await load(t.base, t.cache)).report).to.include({ used: 2, compiled: 0 });
  });

  it('ignores a cache file others may write, one behind a link, or a folder others may write', async () => {
    await load(t.base, t.cache);
    chmodSync(t.file, 0o666);
    expect((await load(t.base, t.cache)).report).to.include({ used: 0, compiled: 2 });

    const elsewhere = join(t.base, 'elsewhere');
    mkdirSync(elsewhere, { mode: 0o700 });
    await load(t.base, elsewhere);
    rmSync(t.file);
    symlinkSync(join(elsewhere, `modules-${process.version}-${process.arch}.bin`), t.file);
    expect((await load(t.base, t.cache)).report).to.include({ used: 0, compiled: 2 });

    chmodSync(elsewhere, 0o777);
    const open = await load(t.base, elsewhere);
    expect(open.report).to.include({ used: 0, compiled: 2, saved: false });
  });

  it('treats a damaged cache file as no cache and writes a good one', async () => {
    await load(t.base, t.cache);
    const whole = readFileSync(t.file);
    writeFileSync(t.file, whole.subarray(0, whole.length - 10), { mode: 0o600 });
    const damaged = await load(t.base, t.cache);
    expect(damaged.said.a).to.equal('AAAA-b');
    expect(damaged.report).to.include({ used: 0, compiled: 2, saved: true });
    expect((await load(t.base, t.cache)).report).to.include({ used: 2, compiled: 0 });
    expect(parseCache(Buffer.from('not a cache')).size).to.equal(0);
  });

  it('leaves nothing half-written behind when the cache cannot be written', async () => {
    mkdirSync(t.file); // a folder where the file should go: the rename fails
    const blocked = await load(t.base, t.cache);
    expect(blocked.said.a).to.equal('AAAA-b');
    expect(blocked.report).to.include({ compiled: 2, saved: false });
    expect(readdirSync(t.cache)).to.deep.equal([basename(t.file)]);
  });

  it('stays out of the way under any Node.js option (a debugger, a profiler)', async () => {
    const flagged = await load(t.base, t.cache, ['--no-warnings']);
    expect(flagged.report).to.deep.equal({ used: 0, compiled: 0, saved: false });
    expect(flagged.said.a).to.equal('AAAA-b');
    expect(existsSync(t.file)).to.equal(false);
  });

  it("uses systemd's CacheDirectory, else XDG_CACHE_HOME, else ~/.cache", () => {
    expect(codeCacheDir({ CACHE_DIRECTORY: '/var/cache/meshd:/other', HOME: '/home/x' })).to.equal('/var/cache/meshd');
    expect(codeCacheDir({ XDG_CACHE_HOME: '/xdg', HOME: '/home/x' })).to.equal('/xdg/meshd');
    expect(codeCacheDir({ HOME: '/home/x' })).to.equal('/home/x/.cache/meshd');
  });

  it('is used by bin/meshd.js', async () => {
    const res = await runMeshd(['--version'], { env: { CACHE_DIRECTORY: t.cache } });
    expect(res.code).to.equal(0);
    const modules = [...parseCache(readFileSync(t.file)).keys()];
    expect(modules).to.include(resolve(__dirname, '../../src/cli/main.js'));
  });
});
