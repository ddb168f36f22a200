import { expect } from 'chai';
import { SimClock, meshTimestamp } from '../../src/sim/clock';
import { acceptsGzip, apiVersion } from '../../src/sim/http';
import { MessageIdFactory, MESSAGE_ID_PATTERN } from '../../src/sim/ids';
import { decodeContinue, encodeContinue, workflowFilter } from '../../src/sim/routes/inbox';
import { mexHeaderProblem } from '../../src/sim/routes/headers';
import { odsOf } from '../../src/sim/pki';

describe('sim protocol helpers', () => {
  it('makes MESH-shaped message ids that stay distinct and ordered within one millisecond', () => {
    const ids = new MessageIdFactory();
    const at = new Date('2026-03-02T10:30:05.123Z');
    const made = Array.from({ length: 5 }, () => ids.next(at));
    for (const id of made) expect(id).to.match(MESSAGE_ID_PATTERN);
    expect(made[0].startsWith('20260302103005123000_')).to.equal(true);
    expect(made[4].startsWith('20260302103005123004_')).to.equal(true);
    expect(new Set(made).size).to.equal(5);
  });

  it('reads the API version from Accept', () => {
    expect(apiVersion(undefined)).to.deep.equal({ ok: true, version: 1 });
    expect(apiVersion('application/json')).to.deep.equal({ ok: true, version: 1 });
    expect(apiVersion('application/vnd.mesh.v1+json')).to.deep.equal({ ok: true, version: 1 });
    expect(apiVersion('application/vnd.mesh.v2+json')).to.deep.equal({ ok: true, version: 2 });
    expect(apiVersion('application/json, application/vnd.mesh.v2+json;q=0.9')).to.deep.equal({ ok: true, version: 2 });
    expect(apiVersion('application/vnd.mesh.v9+json')).to.deep.equal({ ok: false });
    expect(apiVersion('application/vnd.mesh.two+json')).to.deep.equal({ ok: false });
    expect(apiVersion('application/vnd.mesh.v2')).to.deep.equal({ ok: false });
  });

  it('reads Accept-Encoding, honouring q=0', () => {
    expect(acceptsGzip(undefined)).to.equal(false);
    expect(acceptsGzip('gzip')).to.equal(true);
    expect(acceptsGzip('gzip, deflate, br')).to.equal(true);
    expect(acceptsGzip('deflate')).to.equal(false);
    expect(acceptsGzip('gzip;q=0')).to.equal(false);
    expect(acceptsGzip('gzip;q=0.5')).to.equal(true);
    expect(acceptsGzip('*')).to.equal(true);
    expect(acceptsGzip('*, gzip;q=0')).to.equal(false);
    expect(acceptsGzip('identity')).to.equal(false);
  });

  it('matches the six workflow_filter forms', () => {
    const cases: Array<[string, string, boolean]> = [
      ['WF_A', 'WF_A', true],
      ['WF_A', 'WF_AB', false],
      ['!WF_A', 'WF_A', false],
      ['!WF_A', 'WF_B', true],
      ['WF_*', 'WF_ANY', true],
      ['WF_*', 'XWF_', false],
      ['!WF_*', 'WF_ANY', false],
      ['!WF_*', 'OTHER', true],
      ['*ACK*', 'X_ACK_Y', true],
      ['*ACK*', 'NOPE', false],
      ['!*ACK*', 'X_ACK', false],
      ['!*ACK*', 'NOPE', true],
    ];
    for (const [filter, wf, expected] of cases) expect(workflowFilter(filter)(wf), `${filter} vs ${wf}`).to.equal(expected);
  });

  it('round-trips continue_from tokens only for the mailbox they were issued to', () => {
    const token = encodeContinue('X26ABC1', 42);
    expect(decodeContinue(token, 'X26ABC1')).to.equal(42);
    expect(decodeContinue(token, 'X26ABC2')).to.equal(undefined);
    expect(decodeContinue('not-base64-json', 'X26ABC1')).to.equal(undefined);
    expect(decodeContinue(Buffer.from('{"m":"X26ABC1","s":-1}').toString('base64url'), 'X26ABC1')).to.equal(undefined);
  });

  it('checks mex header lengths, control characters, URLs and checksum characters', () => {
    expect(mexHeaderProblem({ 'mex-to': 'X26ABC2', 'mex-workflowid': 'WF' })).to.equal(undefined);
    expect(mexHeaderProblem({ 'mex-to': 'X'.repeat(101) })).to.match(/longer than 100/);
    expect(mexHeaderProblem({ 'mex-localid': 'a\u0001b' })).to.match(/control characters/);
    expect(mexHeaderProblem({ 'mex-to': 'http://evil' })).to.match(/URL/);
    expect(mexHeaderProblem({ 'mex-content-checksum': 'md5:abc;drop' })).to.match(/checksum|only letters/);
    expect(mexHeaderProblem({ 'mex-content-checksum': 'sha256:ABC-def/0 1' })).to.equal(undefined);
  });

  it('moves its clock forward only, and writes MESH status timestamps', () => {
    const clock = new SimClock(() => new Date('2026-03-02T10:00:00Z'));
    clock.advance(90_061_000);
    expect(clock.now().toISOString()).to.equal('2026-03-03T11:01:01.000Z');
    expect(() => clock.advance(-1)).to.throw(RangeError);
    expect(meshTimestamp(clock.now())).to.equal('20260303110101');
  });

  it('takes the ODS code from the mailbox id', () => {
    expect(odsOf('X26ABC1')).to.equal('X26');
    expect(odsOf('x27abc3')).to.equal('X27');
  });
});
