/**
 * File names are bytes; records and messages are text. A name whose bytes are valid UTF-8 is that
 * text. Any other is written as an escape, and its bytes are kept beside it (records: `path_bytes`,
 * base64): each byte that is not part of a valid UTF-8 sequence becomes `\xHH` (lowercase hex) and a
 * backslash becomes `\\`, so the escape is unambiguous; valid sequences stay as they are.
 */
import { isUtf8 } from 'node:buffer';

/** A path as text, with its exact bytes when the text cannot hold them. */
export interface PathText {
  readonly path: string;
  /** Only when the bytes are not valid UTF-8: what the file system is asked for. */
  readonly pathBytes?: Buffer;
}

/** How long the UTF-8 sequence starting with `lead` is; 0 for a byte no valid sequence starts with. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/** The escape of bytes that are not valid UTF-8 (see the module comment). */
export function escapePathBytes(bytes: Uint8Array): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let out = '';
  for (let i = 0; i < b.length;) {
    const n = sequenceLength(b[i]!);
    if (n > 0 && i + n <= b.length && isUtf8(b.subarray(i, i + n))) {
      const ch = b.toString('utf8', i, i + n);
      out += ch === '\\' ? '\\\\' : ch;
      i += n;
    } else {
      out += `\\x${b[i]!.toString(16).padStart(2, '0')}`;
      i++;
    }
  }
  return out;
}

/** The text form of a path's bytes: the UTF-8 text, or the escape plus the bytes. */
export function pathOfBytes(bytes: Buffer): PathText {
  return isUtf8(bytes) ? { path: bytes.toString('utf8') } : { path: escapePathBytes(bytes), pathBytes: bytes };
}

/** What to hand the file system: the bytes when the text is an escape. */
export function fsPath(p: PathText): string | Buffer {
  return p.pathBytes ?? p.path;
}
