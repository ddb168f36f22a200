import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';

// dist/test/unit → repository root.
const ROOT = join(__dirname, '..', '..', '..');
const UNIT = join(ROOT, 'systemd', 'meshd.service');

/** Directive values of the [Service] section (repeatable directives keep every value). */
function directives(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    map.set(m[1], [...(map.get(m[1]) ?? []), m[2]]);
  }
  return map;
}

describe('systemd unit (systemd/meshd.service)', function () {
  this.timeout(30000);
  const text = readFileSync(UNIT, 'utf8');
  const d = directives(text);
  const one = (k: string) => d.get(k)?.at(-1);

  it('has an overall exposure of 2.0 or lower in systemd-analyze security', () => {
    // The CI script installs systemd (Debian) so systemd-analyze is present.
    const out = execFileSync('systemd-analyze', ['security', '--offline=true', UNIT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const m = /Overall exposure level for meshd\.service:\s*([0-9.]+)/.exec(out);
    expect(m, 'no "Overall exposure level" line in systemd-analyze output').to.not.equal(null);
    expect(Number(m![1])).to.be.at.most(2.0);
  });

  it('runs as a dedicated user with state and config directories', () => {
    expect(one('User')).to.equal('meshd');
    expect(one('StateDirectory')).to.equal('meshd');
    expect(one('ConfigurationDirectory')).to.equal('meshd');
  });

  it('gives the compile cache a directory of its own that only meshd can read (src/compile-cache.ts)', () => {
    expect(one('CacheDirectory')).to.equal('meshd');
    expect(one('CacheDirectoryMode')).to.equal('0700');
  });

  it('loads the password, shared key and private key as credentials', () => {
    const creds = (d.get('LoadCredential') ?? []).map((v) => v.split(':')[0]);
    expect(creds).to.include.members(['mesh-password-X26ABC1', 'mesh-shared-key', 'client-key']);
  });

  it('restarts on failure with limits, stops with SIGTERM and 45 s to finish a chunk', () => {
    expect(one('Restart')).to.equal('on-failure');
    expect(one('StartLimitBurst')).to.match(/^\d+$/);
    expect(one('StartLimitIntervalSec')).to.match(/^\d+/);
    expect(one('KillSignal')).to.equal('SIGTERM');
    expect(one('TimeoutStopSec')).to.equal('45');
  });

  it('leaves MemoryDenyWriteExecute off (V8 JIT) and makes filtered syscalls fail with EPERM', () => {
    expect(d.has('MemoryDenyWriteExecute')).to.equal(false);
    expect(one('SystemCallErrorNumber')).to.equal('EPERM');
    expect(one('ProtectSystem')).to.equal('strict');
    expect(one('NoNewPrivileges')).to.equal('yes');
  });

  it('is a valid unit apart from the binary not being installed here', () => {
    let out = '';
    try {
      execFileSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      out = String((err as { stderr?: string }).stderr ?? '') + String((err as { stdout?: string }).stdout ?? '');
    }
    const complaints = out
      .split('\n')
      .filter((l) => l.trim() && !/Command \S+ is not executable: No such file or directory/.test(l));
    expect(complaints, complaints.join('\n')).to.deep.equal([]);
  });

  describe('ledger backup units (meshd-backup.service, meshd-backup.timer)', () => {
    const BACKUP = join(ROOT, 'systemd', 'meshd-backup.service');
    const TIMER = join(ROOT, 'systemd', 'meshd-backup.timer');

    it('has an overall exposure of 2.0 or lower and no network', () => {
      const out = execFileSync('systemd-analyze', ['security', '--offline=true', BACKUP], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      const m = /Overall exposure level for meshd-backup\.service:\s*([0-9.]+)/.exec(out);
      expect(m, out).to.not.equal(null);
      expect(Number(m![1])).to.be.at.most(2.0);
      expect(directives(readFileSync(BACKUP, 'utf8')).get('PrivateNetwork')).to.deep.equal(['yes']);
    });

    it('loads the same credentials as the daemon and runs meshd ledger backup daily', () => {
      const b = directives(readFileSync(BACKUP, 'utf8'));
      expect(b.get('LoadCredential')).to.deep.equal(d.get('LoadCredential'));
      expect(b.get('ExecStart')?.[0]).to.include('ledger backup /var/backups/meshd/');
      expect(directives(readFileSync(TIMER, 'utf8')).get('OnCalendar')).to.deep.equal(['*-*-* 02:15:00']);
      execFileSync('systemd-analyze', ['verify', BACKUP, TIMER], { stdio: ['ignore', 'pipe', 'pipe'] });
    });
  });
});
