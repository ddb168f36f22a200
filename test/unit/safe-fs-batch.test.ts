import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chmodBatched, fileWorkerRunning, lstatBatched, renameBatched, startFileWorker, stopFileWorker } from '../../src/safe-fs-batch';
import { fileFacts } from '../../src/transfer/spool';
import { writeTemp } from '../../src/safe-fs';

describe("safe-fs's worker thread (lstat and file facts in batches)", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'meshd-batch-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  // The same calls made in the worker thread and, as a call that comes alone with no worker
  // running is, through libuv's pool: both must keep safe-fs's rules.
  for (const where of ['in the worker', 'on the pool'] as const) {
    describe(where, () => {
      beforeEach(async () => {
        if (where === 'in the worker') startFileWorker();
        else await stopFileWorker();
      });
      afterEach(() => stopFileWorker());

      it('answers lstat as fs.lstat does: the link itself, never its target; a missing name with ENOENT', async () => {
        const file = join(dir, 'a.dat');
        writeFileSync(file, 'x'.repeat(2048));
        symlinkSync(file, join(dir, 'link'));
        const [st, link] = await Promise.all([lstatBatched(file), lstatBatched(join(dir, 'link'))]);
        const direct = lstatSync(file);
        expect(st.isFile()).to.equal(true);
        expect([st.size, st.nlink, st.mtimeMs, st.ino, st.mode]).to.deep.equal([2048, 1, direct.mtimeMs, direct.ino, direct.mode]);
        expect(st.mtime.getTime()).to.equal(direct.mtime.getTime());
        expect(link.isSymbolicLink()).to.equal(true);
        expect(link.isFile()).to.equal(false);
        const missing = await lstatBatched(join(dir, 'none')).catch((err: NodeJS.ErrnoException) => err);
        expect(missing).to.be.instanceOf(Error);
        expect(missing).to.include({ code: 'ENOENT', syscall: 'lstat', path: join(dir, 'none') });
        expect(fileWorkerRunning()).to.equal(where === 'in the worker');
      });

      it('reads facts only from a regular file with one link: a FIFO, a hard link and a missing file are refused unread', async () => {
        const fifo = join(dir, 'fifo.dat');
        execFileSync('mkfifo', [fifo]);
        writeFileSync(join(dir, 'one.dat'), 'one');
        linkSync(join(dir, 'one.dat'), join(dir, 'two.dat'));
        const [fromFifo, fromLink, fromNothing] = await Promise.all(
          [fifo, join(dir, 'two.dat'), join(dir, 'none.dat')].map((p) => fileFacts(p).then(() => undefined, (err: NodeJS.ErrnoException) => err)),
        );
        // The FIFO is opened without waiting for a writer, seen for what it is and closed.
        expect(fromFifo).to.include({ code: 'NOT_REGULAR_FILE' });
        expect(fromFifo!.message).to.contain('a FIFO');
        expect(fromLink).to.include({ code: 'NOT_REGULAR_FILE' });
        expect(fromLink!.message).to.contain('2 hard links');
        expect(fromNothing).to.include({ code: 'ENOENT', syscall: 'open' });
      });

      it('renames as rename(2) does (a link moves as itself, unfollowed) and sets a mode by name; errors keep their codes', async () => {
        const target = join(dir, 'target.dat');
        writeFileSync(target, 'kept');
        symlinkSync(target, join(dir, 'link'));
        writeFileSync(join(dir, 'own.dat'), 'own');
        await Promise.all([renameBatched(join(dir, 'link'), join(dir, 'moved-link')), chmodBatched(join(dir, 'own.dat'), 0o600)]);
        expect(lstatSync(join(dir, 'moved-link')).isSymbolicLink()).to.equal(true);
        expect(readFileSync(target, 'utf8')).to.equal('kept');
        expect(lstatSync(join(dir, 'own.dat')).mode & 0o7777).to.equal(0o600);
        const missing = await renameBatched(join(dir, 'none'), join(dir, 'x')).catch((err: NodeJS.ErrnoException) => err);
        expect(missing).to.include({ code: 'ENOENT', syscall: 'rename' });
        const gone = await chmodBatched(join(dir, 'none'), 0o600).catch((err: NodeJS.ErrnoException) => err);
        expect(gone).to.include({ code: 'ENOENT', syscall: 'chmod' });
      });

      it('writes a new file: exact mode under any umask, a leftover or planted link at its name replaced unfollowed', async () => {
        const worker = where === 'in the worker' ? `require(${JSON.stringify(require.resolve('../../src/safe-fs-batch'))}).startFileWorker();` : '';
        const script = `${worker}require(${JSON.stringify(require.resolve('../../src/safe-fs'))}).writeTemp(process.argv[1], 'under umask', 0o640).then(() => {
          process.stdout.write((require('fs').statSync(process.argv[1]).mode & 0o777).toString(8));
        });`;
        const made = execFileSync('sh', ['-c', 'umask 077; exec "$0" -e "$1" "$2"', process.execPath, script, join(dir, 'umask.part')], { encoding: 'utf8', timeout: 20_000 });
        expect(made).to.equal('640');
        expect(readFileSync(join(dir, 'umask.part'), 'utf8')).to.equal('under umask');
        const victim = join(dir, 'victim.txt');
        writeFileSync(victim, 'not to be touched');
        symlinkSync(victim, join(dir, 'planted.part'));
        writeFileSync(join(dir, 'leftover.part'), 'a killed run left this, and more than the new content');
        await Promise.all([writeTemp(join(dir, 'planted.part'), 'ours', 0o600), writeTemp(join(dir, 'leftover.part'), Buffer.from('new'), 0o600)]);
        expect(readFileSync(victim, 'utf8')).to.equal('not to be touched');
        expect(lstatSync(join(dir, 'planted.part')).isFile()).to.equal(true);
        expect(readFileSync(join(dir, 'planted.part'), 'utf8')).to.equal('ours');
        expect(readFileSync(join(dir, 'leftover.part'), 'utf8')).to.equal('new');
        expect(lstatSync(join(dir, 'leftover.part')).mode & 0o777).to.equal(0o600);
        mkdirSync(join(dir, 'folder.part'));
        const refused = await writeTemp(join(dir, 'folder.part'), 'x', 0o600).catch((err: NodeJS.ErrnoException) => err.code);
        expect(refused).to.be.oneOf(['EISDIR', 'EPERM']);
        expect(lstatSync(join(dir, 'folder.part')).isDirectory()).to.equal(true);
      });
    });
  }

  it('fails the calls a worker had when it ends, and starts a new one for the next call', async () => {
    // A sparse 512 MiB file: hashing it keeps the worker busy while it is ended.
    const big = join(dir, 'big.dat');
    writeFileSync(big, '');
    truncateSync(big, 512 * 1024 * 1024);
    startFileWorker();
    const pending = fileFacts(big).then(() => 'answered', (err: NodeJS.ErrnoException) => err.code);
    await new Promise((resolve) => setImmediate(resolve)); // the call goes at the end of the turn
    await stopFileWorker();
    expect(await pending).to.equal('FILE_WORKER_FAILED');
    writeFileSync(join(dir, 'a.dat'), 'a');
    expect((await lstatBatched(join(dir, 'a.dat'))).size).to.equal(1);
  });

  it('makes a turn of fewer than four calls on the pool while no worker runs; a turn of four starts it, and the next lone call goes to it', async () => {
    await stopFileWorker();
    writeFileSync(join(dir, 'a.dat'), 'a');
    const a = join(dir, 'a.dat');
    await Promise.all([lstatBatched(a), lstatBatched(a), lstatBatched(a)]);
    expect(fileWorkerRunning()).to.equal(false);
    const sizes = await Promise.all([a, a, a, a].map(async (p) => (await lstatBatched(p)).size));
    expect(sizes).to.deep.equal([1, 1, 1, 1]);
    expect(fileWorkerRunning()).to.equal(true);
    // The worker is ended mid-call only if the call went to it.
    const big = join(dir, 'big.dat');
    writeFileSync(big, '');
    truncateSync(big, 512 * 1024 * 1024);
    const pending = fileFacts(big).then(() => 'answered', (err: NodeJS.ErrnoException) => err.code);
    await new Promise((resolve) => setImmediate(resolve));
    await stopFileWorker();
    expect(await pending).to.equal('FILE_WORKER_FAILED');
  });

  it('never keeps a process alive once nothing waits on the worker', () => {
    const script = `const b = require(${JSON.stringify(require.resolve('../../src/safe-fs-batch'))}); b.startFileWorker(); b.lstatBatched(process.argv[1]).then((st) => process.stdout.write(String(st.isDirectory())));`;
    expect(execFileSync(process.execPath, ['-e', script, dir], { encoding: 'utf8', timeout: 20_000 })).to.equal('true');
  });
});
