import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { globToRegExp, isInProgressName, prepareFolders } from '../../src/transfer/folders';
import { createOwnTemp, freeName, moveOwnFile, removeTempDebris, safeFileName, tempPathFor, writeFileAtomic } from '../../src/safe-fs';
import { fileFacts } from '../../src/transfer/spool';
import { inboundFileName } from '../../src/transfer/inbound';

describe('mailbox folders and file names', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'meshd-files-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('never lets a MESH file name or id choose a path', () => {
    for (const hostile of ['../../x', 'a/b', '/etc/passwd', '..', '.hidden', 'a\\b', 'nul\u0000byte', '\u001b[31mred']) {
      const name = safeFileName(hostile, 'fallback');
      // eslint-disable-next-line no-control-regex -- checking that control characters are gone
      expect(name, hostile).not.to.match(/[/\\\u0000-\u001f]/);
      expect(name.startsWith('.'), hostile).to.equal(false);
    }
    expect(inboundFileName('../../etc/cron.d/x')).to.equal('_.._etc_cron.d_x.dat');
    expect(inboundFileName('20261124100000123456_ABCDEF')).to.equal('20261124100000123456_ABCDEF.dat');
  });

  it('matches route globs on file names', () => {
    expect(globToRegExp('*.csv').test('patients.csv')).to.equal(true);
    expect(globToRegExp('*.csv').test('patients.csv.tmp')).to.equal(false);
    expect(globToRegExp('adt_??.hl7').test('adt_01.hl7')).to.equal(true);
    expect(globToRegExp('[!x]*.txt').test('a.txt')).to.equal(true);
    expect(globToRegExp('[!x]*.txt').test('x.txt')).to.equal(false);
    expect(globToRegExp('a.b').test('axb')).to.equal(false);
  });

  it('removes only the temp files a killed write left: regular files under a tempPathFor name', async () => {
    const left = tempPathFor(join(dir, 'm1.csv.ctl'));
    writeFileSync(left, '<DTSControl>');
    writeFileSync(join(dir, 'm1.csv'), 'kept');
    writeFileSync(join(dir, '.user-file.part'), 'kept: not a meshd temp name');
    symlinkSync('/etc/passwd', join(dir, `.link.${'a'.repeat(16)}.part`));
    expect(await removeTempDebris(dir)).to.deep.equal([left.slice(dir.length + 1)]);
    expect(readdirSync(dir).sort()).to.deep.equal([`.link.${'a'.repeat(16)}.part`, '.user-file.part', 'm1.csv']);
  });

  it('ignores files still being written', () => {
    for (const n of ['.upload', 'x.tmp', 'x.part', 'x.csv~', 'x.filepart']) expect(isInProgressName(n), n).to.equal(true);
    expect(isInProgressName('x.csv')).to.equal(false);
  });

  it('creates in/ out/ sent/ failed/ temp/ and keeps an existing upper-case layout', async () => {
    const lower = await prepareFolders(join(dir, 'a'));
    expect(readdirSync(join(dir, 'a')).sort()).to.deep.equal(['failed', 'in', 'out', 'sent', 'temp']);
    expect(lower.out).to.equal(join(dir, 'a', 'out'));
    await prepareFolders(join(dir, 'b'));
    rmSync(join(dir, 'b', 'out'), { recursive: true });
    rmSync(join(dir, 'b', 'in'), { recursive: true });
    for (const n of ['OUT', 'IN']) mkdirSync(join(dir, 'b', n));
    const upper = await prepareFolders(join(dir, 'b'));
    expect(upper.out).to.equal(join(dir, 'b', 'OUT'));
    expect(upper.in).to.equal(join(dir, 'b', 'IN'));
  });

  it('writes atomically and picks free names without overwriting', async () => {
    const target = join(dir, 'x.dat');
    await writeFileAtomic(target, 'one');
    expect(readFileSync(target, 'utf8')).to.equal('one');
    expect(readdirSync(dir)).to.deep.equal(['x.dat']); // no temp file left behind
    writeFileSync(join(dir, 'x.1.dat'), '');
    expect(await freeName(dir, 'x.dat')).to.equal('x.2.dat');
    expect(await freeName(dir, 'y.dat')).to.equal('y.dat');
    // A name is free only with the files written beside it: a .ctl or .reason already there takes it.
    writeFileSync(join(dir, 'z.ctl'), '');
    writeFileSync(join(dir, 'z.1.dat.reason'), '');
    expect(await freeName(dir, 'z.dat', (n) => [n.replace(/\.dat$/, '.ctl'), `${n}.reason`])).to.equal('z.2.dat');
    expect(await freeName(dir, 'z.dat')).to.equal('z.dat');
  });

  it('hashes a file of any size through one descriptor (0 bytes, small, the read size exactly and beyond)', async () => {
    for (const size of [0, 1, 2048, 1024 * 1024, 1024 * 1024 + 1, 3 * 1024 * 1024 + 17]) {
      const bytes = Buffer.alloc(size, size % 251);
      const path = join(dir, `f${size}`);
      writeFileSync(path, bytes);
      const facts = await fileFacts(path);
      expect(facts.size, String(size)).to.equal(size);
      expect(facts.sha256, String(size)).to.equal(createHash('sha256').update(bytes).digest('hex'));
      expect(facts.bytes, String(size)).to.equal(undefined);
      // Asked for, the bytes come back only from a file read whole in one call (under 1 MiB)
      // and no larger than asked.
      const kept = await fileFacts(path, { keepBytesUpTo: 1024 * 1024 });
      expect(kept.sha256).to.equal(facts.sha256);
      if (size > 0 && size < 1024 * 1024) expect(kept.bytes?.equals(bytes), String(size)).to.equal(true);
      else expect(kept.bytes, String(size)).to.equal(undefined);
      expect((await fileFacts(path, { keepBytesUpTo: size - 1 })).bytes, String(size)).to.equal(undefined);
    }
  });

  it('creates files with exactly their mode under any umask, and sets it again only when the umask took bits', () => {
    // Each run is a fresh process started with that umask, counting the chmods on descriptors.
    const script = `
      const fs = require('fs');
      const { createExclusive } = require(${JSON.stringify(require.resolve('../../src/safe-fs'))});
      (async () => {
        const probe = await fs.promises.open('/proc/self/status');
        const proto = Object.getPrototypeOf(probe);
        await probe.close();
        let chmods = 0;
        const chmod = proto.chmod;
        proto.chmod = function (mode) { chmods++; return chmod.call(this, mode); };
        const out = [];
        for (const mode of [0o640, 0o600]) {
          const path = process.argv[1] + '/f' + mode.toString(8);
          await (await createExclusive(path, mode)).close();
          out.push((fs.statSync(path).mode & 0o777).toString(8));
        }
        process.stdout.write(out.join(',') + ' ' + chmods);
      })();`;
    const run = (umask: string) => {
      const sub = mkdtempSync(join(dir, `u${umask}-`));
      return execFileSync('sh', ['-c', `umask ${umask}; exec "$0" -e "$1" "$2"`, process.execPath, script, sub], { encoding: 'utf8' });
    };
    expect(run('022')).to.equal('640,600 0');
    expect(run('000')).to.equal('640,600 0');
    expect(run('077')).to.equal('640,600 1');
    expect(run('277')).to.equal('640,600 2');
  });

  it('creates at a temp name of its own whatever stood there: a leftover replaced, a planted link removed unfollowed', async () => {
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'not to be touched');
    const temp = join(dir, 'row.part');
    symlinkSync(victim, temp);
    const handle = await createOwnTemp(temp, 0o600);
    await handle.writeFile('ours');
    await handle.close();
    expect(readFileSync(victim, 'utf8')).to.equal('not to be touched');
    expect(readFileSync(temp, 'utf8')).to.equal('ours');
    await (await createOwnTemp(temp, 0o600)).close(); // a killed run's leftover
    expect(statSync(temp).size).to.equal(0);
    mkdirSync(join(dir, 'dir.part'));
    const refused = await createOwnTemp(join(dir, 'dir.part'), 0o600).catch((err: NodeJS.ErrnoException) => err.code);
    expect(refused).to.be.oneOf(['EISDIR', 'EPERM']);
  });

  it('sets a mode through the descriptor it hashes from, and refuses a link', async () => {
    const path = join(dir, 'claimed.dat');
    writeFileSync(path, 'x');
    chmodSync(path, 0o666);
    await fileFacts(path, { mode: 0o600 });
    expect(statSync(path).mode & 0o7777).to.equal(0o600);
    symlinkSync(path, join(dir, 'link.dat'));
    let refused: unknown;
    await fileFacts(join(dir, 'link.dat'), { mode: 0o644 }).catch((err) => (refused = err));
    expect(refused).to.have.property('code', 'NOT_REGULAR_FILE');
    expect(statSync(path).mode & 0o7777).to.equal(0o600);
  });

  it('moves a spool file with its mode set, and says false once it was moved already', async () => {
    const source = join(dir, 'spool.dat');
    writeFileSync(source, 'payload');
    chmodSync(source, 0o600);
    expect(await moveOwnFile(source, join(dir, 'sent.dat'), 0o640)).to.equal(true);
    expect(statSync(join(dir, 'sent.dat')).mode & 0o7777).to.equal(0o640);
    expect(readFileSync(join(dir, 'sent.dat'), 'utf8')).to.equal('payload');
    expect(await moveOwnFile(source, join(dir, 'sent.dat'), 0o640)).to.equal(false);
  });
});
