import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapePathBytes, pathOfBytes } from '../../src/core/path-text.js';
import { printable, printableLines } from '../../src/core/printable.js';

/** The escape's inverse, as a reader of the documented format would write it. */
function unescape(text: string): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < text.length;) {
    if (text[i] === '\\' && text[i + 1] === '\\') {
      parts.push(Buffer.from('\\'));
      i += 2;
    } else if (text[i] === '\\' && text[i + 1] === 'x') {
      parts.push(Buffer.from([parseInt(text.slice(i + 2, i + 4), 16)]));
      i += 4;
    } else {
      const cp = text.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      parts.push(Buffer.from(ch, 'utf8'));
      i += ch.length;
    }
  }
  return Buffer.concat(parts);
}

test('path text: UTF-8 names are themselves; others are escaped (\\xHH, \\\\) and keep their bytes', () => {
  assert.deepEqual(pathOfBytes(Buffer.from('a/é 😀\\x.jpg')), { path: 'a/é 😀\\x.jpg' });
  const cases: [number[], string][] = [
    [[0x62, 0xff, 0xfe], 'b\\xff\\xfe'],
    [[0x63, 0x61, 0x66, 0xe9], 'caf\\xe9'], // Latin-1 é
    [[0x5c, 0xe9], '\\\\\\xe9'], // a literal backslash doubles, so "\\xe9" typed in a name is not a byte
    [[0xc3, 0xa9, 0xff], 'é\\xff'], // valid sequences stay text
    [[0xe2, 0x82], '\\xe2\\x82'], // a sequence cut short
    [[0xc0, 0xaf], '\\xc0\\xaf'], // overlong '/'
    [[0xed, 0xa0, 0x80], '\\xed\\xa0\\x80'], // a UTF-16 surrogate
    [[0xf4, 0x90, 0x80, 0x80], '\\xf4\\x90\\x80\\x80'], // past U+10FFFF
    [[0xf0, 0x9f, 0x98, 0x80, 0x80], '😀\\x80'],
  ];
  for (const [bytes, escaped] of cases) {
    const b = Buffer.from(bytes);
    const p = pathOfBytes(b);
    assert.equal(p.path, escaped, b.toString('hex'));
    assert.ok(p.pathBytes?.equals(b));
    assert.ok(unescape(escapePathBytes(b)).equals(b), `the escape is lossless: ${b.toString('hex')}`);
  }
});

test('printable: ESC, BEL, newlines, DEL and C1 are shown escaped; other text is kept', () => {
  assert.equal(printable('a\x1b]0;owned\x07b\x1b[2J'), 'a\\x1b]0;owned\\x07b\\x1b[2J');
  assert.equal(printable('one\ntwo\r\tthree\x00\x7f\u009b'), 'one\\ntwo\\r\\tthree\\x00\\x7f\\u009b');
  assert.equal(printable('é 😀 → \\x1b'), 'é 😀 → \\x1b');
  assert.equal(printableLines('usage\n\x1b[31mred\n'), 'usage\n\\x1b[31mred\n');
});
