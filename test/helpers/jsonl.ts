import { readFileSync } from 'node:fs';

/** Parses JSONL text: one JSON value per non-empty line. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function parseJsonl(text: string): any[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

/** Reads and parses a JSONL file (a manifest, a .jsonl output). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function readJsonl(path: string): any[] {
  return parseJsonl(readFileSync(path, 'utf8'));
}
