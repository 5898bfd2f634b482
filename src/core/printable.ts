/**
 * Text for a terminal: a file name can hold ESC or BEL (retitle, clear or beep the terminal) or a
 * newline (fake a second message). Every message written to stderr goes through `printable`, so
 * control characters show as escapes: \n \r \t, \xHH for the other C0 codes and DEL, \u0080-\u009f
 * for C1. JSON records need none of this: JSON.stringify escapes C0 itself.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escape(c: string): string {
  const code = c.charCodeAt(0);
  return NAMED[c] ?? (code >= 0x80 ? `\\u${code.toString(16).padStart(4, '0')}` : `\\x${code.toString(16).padStart(2, '0')}`);
}

/** One message line, control characters escaped (a newline too: a message stays one line). */
export function printable(text: string): string {
  return text.replace(CONTROL, escape);
}

/** Several lines (help, usage errors): each line made printable, the line breaks kept. */
export function printableLines(text: string): string {
  return text.split('\n').map(printable).join('\n');
}
