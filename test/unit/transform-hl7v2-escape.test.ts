import { expect } from 'chai';
import fc from 'fast-check';
import { DEFAULT_DELIMITERS, delimitersFrom, escapeHl7, unescapeHl7 } from '../../src/transform/hl7v2/escape';

describe('HL7 v2 escape sequences', () => {
  it('unescapes the delimiter, line-break and hex sequences', () => {
    expect(unescapeHl7("O'BRIEN\\T\\SONS")).to.equal("O'BRIEN&SONS");
    expect(unescapeHl7('A\\F\\B\\S\\C\\R\\D\\E\\E')).to.equal('A|B^C~D\\E');
    expect(unescapeHl7('line 1\\.br\\line 2')).to.equal('line 1\nline 2');
    expect(unescapeHl7('caf\\XC3A9\\')).to.equal('café');
    expect(unescapeHl7('\\H\\bold\\N\\')).to.equal('bold');
  });

  it('keeps unknown or unterminated sequences as sent', () => {
    expect(unescapeHl7('a\\Zzz\\b')).to.equal('a\\Zzz\\b');
    expect(unescapeHl7('trailing\\')).to.equal('trailing\\');
    expect(unescapeHl7('\\C2842\\x')).to.equal('\\C2842\\x');
  });

  it('escapes every delimiter, CR and LF, so the value cannot break the message', () => {
    expect(escapeHl7('A|B^C~D\\E&F')).to.equal('A\\F\\B\\S\\C\\R\\D\\E\\E\\T\\F');
    expect(escapeHl7('a\nb\rc')).to.equal('a\\.br\\b\\X0D\\c');
    expect(escapeHl7('plain text')).to.equal('plain text');
  });

  it('honours non-default delimiters from MSH-1/MSH-2', () => {
    const d = delimitersFrom('#', '$%@!');
    expect(d).to.deep.equal({ field: '#', component: '$', repetition: '%', escape: '@', subcomponent: '!' });
    expect(unescapeHl7('a@F@b', d)).to.equal('a#b');
    expect(escapeHl7('a#b|c', d)).to.equal('a@F@b|c');
    expect(delimitersFrom('|', '^^\\&')).to.equal(undefined);
  });

  it('escapes the same with the default delimiters or an equal copy of them', () => {
    const copy = { ...DEFAULT_DELIMITERS };
    for (const s of ['plain', 'A|B^C~D\\E&F', 'a\nb\rc', '', 'caf\u00e9 & co']) expect(escapeHl7(s, copy)).to.equal(escapeHl7(s, DEFAULT_DELIMITERS));
    expect(escapeHl7('a&b', copy)).to.equal('a\\T\\b');
  });

  it('round-trips any text (property, fixed seed)', () => {
    const text = fc.string({ unit: fc.constantFrom('|', '^', '~', '\\', '&', '\r', '\n', 'a', 'Z', ' ', 'é', 'F', 'X', '.', 'b', 'r', '0') , maxLength: 40 });
    fc.assert(
      fc.property(fc.oneof(text, fc.string({ unit: 'binary', maxLength: 30 })), (s) => {
        const escaped = escapeHl7(s, DEFAULT_DELIMITERS);
        expect(escaped).to.not.match(/[|^~&\r\n]/);
        expect(unescapeHl7(escaped, DEFAULT_DELIMITERS)).to.equal(s);
      }),
      { seed: 20261124, numRuns: 2000 },
    );
  });
});
