import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigInvalidError, loadConfig } from '../../src/config';

/** `node`: this process among several hosts on a PostgreSQL ledger (id, lease length). */
describe('config node section', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'meshd-node-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function load(node: string, env: NodeJS.ProcessEnv = {}) {
    const path = join(dir, 'meshd.yaml');
    writeFileSync(path, `environment: local\nurl: http://127.0.0.1:8700\nsharedKey: k\n${node}mailboxes:\n  - id: X26ABC1\n    password: p\n`);
    return loadConfig(path, env);
  }

  it('defaults to a 30 s lease and no id (meshd run then takes hostname-pid)', async () => {
    expect((await load('')).node).to.deep.equal({ leaseSeconds: 30 });
  });

  it('reads node.id and leaseSeconds; MESHD_NODE_ID wins over node.id', async () => {
    expect((await load('node: { id: host-1, leaseSeconds: 9 }\n')).node).to.deep.equal({ id: 'host-1', leaseSeconds: 9 });
    expect((await load('node: { id: host-1 }\n', { MESHD_NODE_ID: 'host-2' })).node).to.deep.equal({ id: 'host-2', leaseSeconds: 30 });
  });

  it('refuses an id that is not a plain name (it names a lock file) and a lease under 3 s', async () => {
    const problems = async (node: string, env: NodeJS.ProcessEnv = {}) => {
      const err = await load(node, env).then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(ConfigInvalidError);
      return (err as ConfigInvalidError).problems.map((p) => p.key);
    };
    expect(await problems('node: { id: ../x, leaseSeconds: 2 }\n')).to.have.members(['node.id', 'node.leaseSeconds']);
    expect(await problems('', { MESHD_NODE_ID: 'a/b' })).to.deep.equal(['MESHD_NODE_ID']);
  });
});
