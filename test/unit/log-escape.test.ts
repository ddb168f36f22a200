import { Writable } from 'node:stream';
import { expect } from 'chai';
import { createLogger } from '../../src/log';
import { escapeControl, jsonLine } from '../../src/safe-text';

/** A file name an attacker with write access to out/ could choose: it carries a whole forged log line. */
const FORGED = 'x.dat\n2026-12-01T00:00:00.000Z ERROR [FORGED] fake\r\x1b[2J\x1b]0;title\x07\x7f\u0085\u009b31m\u2028';

function sink(): { stream: Writable; lines: () => string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean) };
}

const tick = () => new Promise((r) => setImmediate(r));
/** Every control character a terminal or a line-based log reader acts on. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const RAW_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

describe('control characters in logs and output', () => {
  it('escapeControl writes every C0, DEL and C1 character as a visible escape', () => {
    expect(escapeControl('a\nb\rc\td\x1be\x00f\x7fg\u0085h\u009bi\u2028')).to.equal('a\\nb\\rc\\td\\x1be\\x00f\\x7fg\\u0085h\\u009bi\\u2028');
    expect(escapeControl('plain ünïcode €')).to.equal('plain ünïcode €');
    for (let c = 0; c < 0xa0; c++) expect(escapeControl(String.fromCharCode(c))).not.to.match(RAW_CONTROL);
  });

  it('jsonLine stays valid JSON with the same value and no raw DEL or C1', () => {
    const value = { file: FORGED, nested: [FORGED] };
    for (const text of [jsonLine(value), jsonLine(value, 2)]) {
      expect(JSON.parse(text)).to.deep.equal(value);
      expect(text.replace(/\n {0,4}/g, '')).not.to.match(RAW_CONTROL);
    }
  });

  it('a file name cannot forge a line in the text log', async () => {
    const out = sink();
    const log = createLogger({ format: 'text', stream: out.stream });
    log.info('TRANSFER_CLAIMED', `claimed ${FORGED}`, { file: FORGED, detail: { name: FORGED } });
    await tick();
    expect(out.lines()).to.have.length(1);
    expect(out.lines()[0]).not.to.match(RAW_CONTROL);
    expect(out.lines()[0]).to.include('x.dat\\n2026-12-01T00:00:00.000Z ERROR [FORGED]');
  });

  it('the JSON log keeps one valid object per line with the value intact', async () => {
    const out = sink();
    const log = createLogger({ format: 'json', stream: out.stream });
    log.info('TRANSFER_CLAIMED', FORGED, { file: FORGED });
    await tick();
    expect(out.lines()).to.have.length(1);
    expect(out.lines()[0]).not.to.match(RAW_CONTROL);
    expect(JSON.parse(out.lines()[0])).to.include({ message: FORGED, file: FORGED });
  });
});
