import { expect } from 'chai';
import {
  MeshAuthError,
  MeshNotFoundError,
  MeshRejectedError,
  MeshTlsError,
  MeshTransientError,
  errorForStatus,
  parseErrorBody,
  tlsFailureOf,
} from '../../src/mesh/errors';
import { MeshdError } from '../../src/errors';
import { metaFromHeaders } from '../../src/mesh/meta';
import { _internal } from '../../src/mesh/client';

describe('MESH error bodies', () => {
  it('parses v2 bodies', () => {
    expect(parseErrorBody('{"message_id":"X","internal_id":"I","detail":[{"event":"SEND","code":"12","msg":"Unregistered to address"}]}')).to.deep.equal({
      code: '12',
      event: 'SEND',
      description: 'Unregistered to address',
    });
  });

  it('parses v1 bodies', () => {
    expect(parseErrorBody('{"messageID":"X","errorEvent":"SEND","errorCode":"06","errorDescription":"Malformed"}')).to.deep.equal({
      code: '06',
      event: 'SEND',
      description: 'Malformed',
    });
  });

  it('never crashes on HTML/XML/garbage bodies', () => {
    expect(parseErrorBody('<html><body>502 Bad Gateway</body></html>')).to.equal(undefined);
    expect(parseErrorBody('<?xml version="1.0"?><soap:Fault/>')).to.equal(undefined);
    expect(parseErrorBody('{not json')).to.equal(undefined);
    expect(parseErrorBody('')).to.equal(undefined);
    expect(parseErrorBody('null')).to.equal(undefined);
    const e = errorForStatus(500, '<?xml version="1.0"?><soap:Fault/>', 'send');
    expect(e).to.be.instanceOf(MeshTransientError);
    expect(e.status).to.equal(500);
  });

  it('maps statuses to typed errors with the right kind', () => {
    const cases: Array<[number, new (...a: any[]) => MeshdError, string]> = [
      [403, MeshAuthError, 'auth'],
      [404, MeshNotFoundError, 'rejected'],
      [410, MeshNotFoundError, 'rejected'],
      [400, MeshRejectedError, 'rejected'],
      [417, MeshRejectedError, 'rejected'],
      [422, MeshRejectedError, 'rejected'],
      [423, MeshRejectedError, 'rejected'],
      [425, MeshTransientError, 'transient'],
      [429, MeshTransientError, 'transient'],
      [503, MeshTransientError, 'transient'],
    ];
    for (const [status, cls, kind] of cases) {
      const e = errorForStatus(status, '', 'call');
      expect(e, String(status)).to.be.instanceOf(cls);
      expect(e.kind, String(status)).to.equal(kind);
      expect(e).to.be.instanceOf(MeshdError);
    }
  });

  it('carries the MESH error code from a 417 body', () => {
    const e = errorForStatus(417, '{"detail":[{"event":"SEND","code":"12","msg":"Unregistered to address"}]}', 'send');
    expect(e.meshCode).to.equal('12');
    expect(e.message).to.contain('12').and.contain('Unregistered');
  });

  it('treats a 403 that talks about the certificate as a refused client certificate', () => {
    const e = errorForStatus(403, '{"detail":[{"msg":"client certificate not recognised"}]}', 'handshake');
    expect(e).to.be.instanceOf(MeshTlsError);
    expect(e.message).to.contain('refused our client certificate');
  });
});

describe('TLS failure classification', () => {
  const err = (code: string, message = '') => Object.assign(new Error(message || code), { code });
  it('says which side failed', () => {
    expect(tlsFailureOf(err('UNABLE_TO_VERIFY_LEAF_SIGNATURE'))?.failure).to.equal('server-untrusted');
    expect(tlsFailureOf(err('SELF_SIGNED_CERT_IN_CHAIN'))?.failure).to.equal('server-untrusted');
    expect(tlsFailureOf(err('ERR_TLS_CERT_ALTNAME_INVALID'))?.failure).to.equal('server-hostname');
    expect(tlsFailureOf(err('CERT_HAS_EXPIRED'))?.failure).to.equal('server-expired');
    expect(tlsFailureOf(err('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'))?.failure).to.equal('client-refused');
    expect(tlsFailureOf(err('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'))?.failure).to.equal('client-refused');
    expect(tlsFailureOf(err('ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED'))?.failure).to.equal('client-expired');
    expect(tlsFailureOf(err('ERR_OSSL_X509_KEY_VALUES_MISMATCH'))?.failure).to.equal('key-mismatch');
    expect(tlsFailureOf(err('ECONNRESET'))).to.equal(undefined);
  });
  it('gives each failure its own stable code and kind auth', () => {
    const e = new MeshTlsError('server-hostname');
    expect(e.code).to.equal('MESH_TLS_SERVER_HOSTNAME');
    expect(e.kind).to.equal('auth');
  });
});

describe('message metadata', () => {
  it('understands REPORTs with chunk range 1:0 and no sender', () => {
    const meta = metaFromHeaders(
      {
        'mex-messagetype': 'REPORT',
        'mex-chunk-range': '1:0',
        'mex-total-chunks': '0',
        'mex-statuscode': '14',
        'mex-statusevent': 'TRANSFER',
        'mex-statusdescription': 'Message not collected by recipient after 5 days',
        'mex-statussuccess': 'ERROR',
        'mex-linkedmsgid': 'ORIG1',
        'mex-messageid': 'REP1',
      },
      'REP1',
    );
    expect(meta.messageType).to.equal('REPORT');
    expect(meta.totalChunks).to.equal(0);
    expect(meta.linkedMessageId).to.equal('ORIG1');
    expect(meta.statusCode).to.equal('14');
    expect(meta.from).to.equal(undefined);
  });
  it('reads chunk counts and flags', () => {
    const meta = metaFromHeaders({ 'mex-chunk-range': '1:3', 'mex-content-compressed': 'Y', 'content-type': 'text/csv' }, 'M');
    expect(meta).to.include({ messageType: 'DATA', totalChunks: 3, contentCompressed: true, contentType: 'text/csv', messageId: 'M' });
  });
});

describe('send headers', () => {
  const { sendHeaders } = _internal;
  it('refuses control characters and over-long values before sending', () => {
    expect(() => sendHeaders({ to: 'X26ABC2', workflowId: 'WF', subject: 'a\nb' })).to.throw(/control characters/);
    expect(() => sendHeaders({ to: 'X26ABC2', workflowId: 'W'.repeat(301) })).to.throw(/longer than 300/);
    expect(() => sendHeaders({ to: '', workflowId: 'WF' })).to.throw(/recipient/);
  });
  it('writes Y/N flags', () => {
    expect(sendHeaders({ to: 'X26ABC2', workflowId: 'WF', contentCompressed: false })).to.include({ 'mex-content-compressed': 'N' });
  });
});
