import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { MESHD } from '../support/cli';
import { V8_FLAGS } from '../../src/v8-flags';

/**
 * meshd's V8 settings (src/v8-flags.ts) change only speed, so what is checked is that they
 * reach V8: each is one this Node.js knows, and a meshd process runs with all of them. V8's
 * cached-data version tag is a hash over its flags, so it tells which a process has set.
 */
describe('meshd runs with its V8 settings', () => {
  const flagsModule = resolve(__dirname, '..', '..', 'src', 'v8-flags.js');
  const node = (args: string[]) => spawnSync(process.execPath, args, { encoding: 'utf8' });

  it('each setting is one this Node.js V8 recognises', () => {
    for (const flag of V8_FLAGS) {
      const r = node(['-e', `require('v8').setFlagsFromString(${JSON.stringify(flag)})`]);
      expect(r.status, flag).to.equal(0);
      expect(r.stdout + r.stderr, flag).to.equal('');
    }
  });

  it('bin/meshd.js sets all of them before its command runs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshd-v8-'));
    try {
      // Preloaded into the meshd process: reports the tag as the process ends.
      const probe = join(dir, 'probe.js');
      writeFileSync(probe, "process.on('exit', () => process.stderr.write('tag=' + require('v8').cachedDataVersionTag() + '\\n'));\n");
      const tagOf = (out: string) => /tag=(\d+)/.exec(out)?.[1];
      const plain = node(['-r', probe, '-e', '0']);
      const applied = node(['-r', probe, '-e', `require(${JSON.stringify(flagsModule)}).applyV8Flags()`]);
      const meshd = node(['-r', probe, MESHD, '--version']);
      expect(meshd.status, meshd.stderr).to.equal(0);
      expect(tagOf(applied.stderr)).to.be.a('string').and.not.equal(tagOf(plain.stderr));
      expect(tagOf(meshd.stderr)).to.equal(tagOf(applied.stderr));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
