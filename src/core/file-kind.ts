import type { Stats } from 'node:fs';

/** What a file that is not a regular one is, for messages: "not a regular file (a FIFO)". */
export function fileKind(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'of an unknown kind';
}
